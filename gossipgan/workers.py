"""The workers this process holds: their stacked parameters, data streams and operator.

Parameters live in leaf tensors of shape [n_local, ...] (the worker axis): n_local = N in the
simulator, 1 under torch.distributed. The game's operator is a pure function of ONE worker's
parameters and batch; here it is mapped over the worker axis with torch.func.vmap, or with a
Python loop where that is faster (small batches of big models), chosen by timing both once.
Each worker draws its batches from its own generator seeded by (seed, worker id), so a worker
sees the same numbers in the simulator and in its own process.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torch.func import vmap

from gossipgan.errors import check_choice
from gossipgan.games.base import Batch, Game, Params

log = logging.getLogger(__name__)

VECTORIZE = ("auto", "vmap", "loop")
# The vmap-or-loop rule (BENCHMARKS.md; CPU time, 1 thread, batch 64, N = 16 and 64). vmap
# turns each worker's matmuls into one batched matmul: the MLP GAN gains 3.7x at 19k
# parameters per worker, 1.3-1.4x at 273k, 1.04-1.08x at 606k and breaks even at 1.07M. It
# turns convolutions into grouped convolutions, slow on CPU: the digits DCGAN gains 3.2x at
# 4k parameters in conv kernels, 1.06-1.26x at 67k, and loses from 149k (0.78-0.87x).
VMAP_MAX_PARAMS = 600_000
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
        self.generators = [torch.Generator().manual_seed(worker_seed(seed, w))
                           for w in self.workers]
        self._vmapped = vmap(game.operator, in_dims=(0, 0), randomness="error")

    # --- data ---------------------------------------------------------------------------
    def sample(self) -> Batch:
        """One minibatch per worker, stacked on the worker axis."""
        batches = [self.game.sample(w, g, self.batch_size)
                   for w, g in zip(self.workers, self.generators, strict=True)]
        return {k: torch.stack([b[k] for b in batches]).to(self.device) for k in batches[0]}

    # --- the operator -------------------------------------------------------------------
    def operator(self, params: Params, batch: Batch) -> Params:
        """T for every held worker at once: {name: [n_local, ...]}."""
        if self.vectorize == "auto":
            self.vectorize = self._choose(params, batch)
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

    def compute_grads(self) -> None:
        """Draw a batch per worker and put T(params) into each parameter's .grad."""
        grads = self.operator(self.params, self.sample())
        for k, p in self.params.items():
            p.grad = grads[k].detach()

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
        }

    def load_state_dict(self, state: dict) -> None:
        assert list(state["workers"]) == self.workers, "checkpoint holds other workers"
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
        for g, s in zip(self.generators, state["generators"], strict=True):
            g.set_state(s)
        self.vectorize = state["vectorize"]
