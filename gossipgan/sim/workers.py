"""The workers this process holds: their stacked parameters, data streams and operator.

Parameters live in leaf tensors of shape [n_local, ...] (the worker axis): n_local = N in the
simulator, 1 under torch.distributed. The game's operator is a pure function of ONE worker's
parameters and batch; here it is mapped over the worker axis with torch.func.vmap, or with a
Python loop where that is faster (small batches of big models), chosen by a size rule.

Games with `player_losses` (the GANs) take a faster road: only the FORWARD is mapped (vmap, or
the loop), and each player's gradient comes from one plain `torch.autograd.grad` of its loss
summed over workers, taken w.r.t. the stacked leaves. Workers share no parameters, so the
gradient of the sum w.r.t. row i is worker i's own gradient; both players share one forward.
This avoids torch.func.grad under vmap (faster: bench/sim_throughput.py, BENCHMARKS.md). In the
vmapped forward each linear layer runs in the weight's own layout (`gossipgan.sim.layout`).
Each worker draws its batches from its own generator seeded by (seed, worker id), so a worker
sees the same numbers in the simulator and in its own process.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torch.func import vmap

from gossipgan.errors import ConfigError, check_choice
from gossipgan.games.base import Batch, Game, Params
from gossipgan.sim.layout import WeightMajorLinear

log = logging.getLogger(__name__)

VECTORIZE = ("auto", "vmap", "loop")
# The vmap-or-loop rule, measured by bench/vmap_rule.py (figures in BENCHMARKS.md): vmap turns
# each worker's matmuls into one batched matmul, which pays while the model is small; it turns
# convolutions into grouped convolutions, slow on CPU, so convolution-heavy models loop.
VMAP_MAX_PARAMS = 400_000
VMAP_MAX_CONV_PARAMS = 100_000


def worker_seed(seed: int, worker: int) -> int:
    """Independent, reproducible stream per worker."""
    return (seed * 1_000_003 + worker * 7_919 + 17) % (2**63 - 1)


class Workers:
    def __init__(self, game: Game, workers: list[int], seed: int, batch_size: int,
                 vectorize: str = "auto", device: torch.device | str = "cpu"):
        self.game = game
        self.workers = list(workers)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.vectorize = check_choice("vectorize mode", vectorize, VECTORIZE)
        x0 = game.init_params(seed)
        n = len(self.workers)
        self.names = list(x0)
        self.params: dict[str, Tensor] = {
            k: v.detach().to(self.device).unsqueeze(0).repeat(n, *([1] * v.dim())).contiguous()
            for k, v in x0.items()
        }
        # Per-worker forward state (BatchNorm running statistics): updated in place by each
        # worker's own forward, row by row, never mixed (Game.init_buffers).
        self.buffers: dict[str, Tensor] = {
            k: v.detach().to(self.device).unsqueeze(0).repeat(n, *([1] * v.dim())).contiguous()
            for k, v in game.init_buffers().items()
        }
        if self.buffers and not game.has_player_losses:
            raise ConfigError(f"{type(game).__name__} has buffers but no player_losses: "
                              "buffers are passed to player_losses only")
        self.generators = [torch.Generator().manual_seed(worker_seed(seed, w))
                           for w in self.workers]
        self._vmapped = vmap(game.operator, in_dims=(0, 0), randomness="error")
        self._autograd = game.has_player_losses
        if self._autograd:
            self._vmapped_losses = vmap(game.player_losses, in_dims=(0, 0), randomness="error")
        # parameter names by player, each player's names in the game's order
        self._players: dict[str, list[str]] = {}
        for name in self.names:
            self._players.setdefault(game.player(name), []).append(name)

    # --- data ---------------------------------------------------------------------------
    def sample(self) -> Batch:
        """One minibatch per worker, stacked on the worker axis."""
        batches = [self.game.sample(w, g, self.batch_size)
                   for w, g in zip(self.workers, self.generators, strict=True)]
        return {k: torch.stack([b[k] for b in batches]).to(self.device) for k in batches[0]}

    # --- the operator -------------------------------------------------------------------
    def operator(self, params: Params, batch: Batch) -> Params:
        """T for every held worker at once: {name: [n_local, ...]}, contiguous tensors."""
        if self.vectorize == "auto":
            self.vectorize = self._choose(params, batch)
        if self._autograd:
            return self._autograd_operator(params, batch)
        if self.vectorize == "vmap":
            return self._vmapped(params, batch)
        # Each worker's result goes straight into its row: holding all N results and then
        # stacking them would keep two copies of every gradient alive.
        stacked: Params = {}
        for i in range(len(self.workers)):
            out = self.game.operator({k: v[i] for k, v in params.items()},
                                     {k: v[i] for k, v in batch.items()})
            for k, v in out.items():
                if k not in stacked:
                    stacked[k] = v.new_empty((len(self.workers), *v.shape))
                stacked[k][i] = v
        return stacked

    def _autograd_operator(self, params: Params, batch: Batch) -> Params:
        """T via the game's player_losses: mapped forward, one autograd.grad per player."""
        with torch.enable_grad():  # optimizers call the closure under no_grad
            if self.vectorize == "vmap":
                leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
                with WeightMajorLinear():
                    losses = self._vmapped_losses({**leaves, **self.buffers}, batch)
                return self._player_grads(losses, leaves)
            # Fresh per-worker leaves (views, no copy): differentiating w.r.t. the stacked
            # tensor instead would write a full-size, mostly-zero gradient for every worker.
            stacked = {k: torch.empty_like(v) for k, v in params.items()}
            for i in range(len(self.workers)):
                leaves = {k: v[i].detach().requires_grad_() for k, v in params.items()}
                own = {**leaves, **{k: v[i] for k, v in self.buffers.items()}}  # views: in place
                grads = self._player_grads(
                    self.game.player_losses(own, {k: v[i] for k, v in batch.items()}), leaves)
                for k, v in grads.items():
                    stacked[k][i] = v
            return stacked

    def _player_grads(self, losses: dict[str, Tensor], leaves: Params) -> Params:
        """Each player's loss (summed over any worker axis) differentiated w.r.t. its leaves."""
        out: Params = {}
        last = len(self._players) - 1
        for j, (player, names) in enumerate(self._players.items()):
            # a parameter its player's loss does not reach has operator 0, not an error
            grads = torch.autograd.grad(losses[player].sum(), [leaves[k] for k in names],
                                        retain_graph=j < last, materialize_grads=True)
            # The optimizers view every gradient flat along the worker axis: a gradient that
            # comes out strided (a layer other than F.linear) is laid out densely here.
            out.update((k, g.contiguous()) for k, g in zip(names, grads, strict=True))
        return {k: out[k] for k in self.names}

    def compute_grads(self, batch: Batch | None = None) -> None:
        """Put T(params) into each parameter's .grad, on `batch` (stacked on the worker axis,
        e.g. from the script's own data loaders) or on one drawn per worker (`sample`)."""
        grads = self.operator(self.params, self.sample() if batch is None else batch)
        for k, p in self.params.items():
            p.grad = grads[k].detach()

    def nonfinite(self) -> str | None:
        """The first player ('min' or 'max') with a non-finite parameter or gradient on any
        held worker, else None (the loop's divergence check)."""
        for player, names in self._players.items():
            for k in names:
                p = self.params[k]
                if not bool(torch.isfinite(p).all()) or (
                        p.grad is not None and not bool(torch.isfinite(p.grad).all())):
                    return player
        return None

    def _choose(self, params: Params, batch: Batch) -> str:
        """vmap unless the model is big or convolution-heavy (bench/sim_throughput.py).

        A rule, not a timing: the two paths differ in the last float bits, and a run must make
        the same choice every time it is started for its results to be reproducible.
        """
        if len(self.workers) == 1:
            return "loop"
        per_worker = sum(v[0].numel() for v in params.values())
        # conv kernels: >= 3-D per worker (linear weights are 2-D, biases and norms 1-D)
        conv = sum(v[0].numel() for v in params.values() if v.dim() >= 4)
        small = per_worker <= VMAP_MAX_PARAMS and conv <= VMAP_MAX_CONV_PARAMS
        return "vmap" if small else "loop"

    # --- checkpoint -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "workers": self.workers,
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "generators": [g.get_state() for g in self.generators],
            "vectorize": self.vectorize,
            **({"buffers": {k: v.clone() for k, v in self.buffers.items()}}
               if self.buffers else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state["workers"]) != self.workers:
            raise ConfigError(f"the checkpoint holds workers {list(state['workers'])}, this "
                              f"process holds {self.workers}: resume with the same workers")
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
            for k, v in state.get("buffers", {}).items():
                self.buffers[k].copy_(v)
        for g, s in zip(self.generators, state["generators"], strict=True):
            g.set_state(s)
        self.vectorize = state["vectorize"]
