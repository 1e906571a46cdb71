"""The algorithms, written once over a Communicator, with the torch.optim API.

One step() = one operator evaluation (the gradients already in `.grad`, or a closure) and one
communication phase, both players at once. Three switches describe every method:

    direction    "sgd" (u = -lr g) or "adam" (u = -lr m_hat/(sqrt(v_hat)+eps))
    optimistic   re-use the last update for the extrapolation point (DESIGN.md §3)
    centralized  g <- mean over all workers (all-reduce) and no gossip

Optimistic methods (DPOSG, DPOAdam, CPOSG, CPOAdam): the parameters hold z_k, the point where
the next operator is evaluated; `self.state` holds the iterate x_k and its mixture x_hat_k
(z_{k+1} - x_hat_k is the last update, so it need not be kept). A step with g_k = T(z_k) in
`.grad` does

    x_k = x_hat_{k-1} + u_k,   x_hat_k = mix(x_k),   z_{k+1} = x_hat_k + u_k

and the very first step (parameters = x_0, g_0 = T(x_0)) sets x_hat_0 = mix(x_0),
z_1 = x_hat_0 + u_0. Non-optimistic methods (DPSGDA, DPAdam): x_k = mix(x_{k-1}) + u(x_{k-1}).

Parameters may carry the worker axis (the simulator: shape [N, ...]) or not (one worker per
process under torch.distributed): each is viewed as [n_local, -1] for communication.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from gossipgan.comm.base import Communicator
from gossipgan.errors import ConfigError
from gossipgan.optim import guards
from gossipgan.optim.functional import adam_updates, sgd_updates
from gossipgan.optim.options import check_hyperparameters, compression_layer


class GossipOptimizer(Optimizer):
    """Base of every algorithm; subclasses only fix the three switches.

    `initial`: what the first step does with x_0, which the method needs equal on every
    worker: "check" (refuse different parameters, the default), "sync" (copy worker 0's to
    every worker first) or "any" (neither: workers started apart on purpose).
    """

    direction: str = "sgd"
    optimistic: bool = True
    centralized: bool = False
    comm_phases: int = 1  # communication phases per step (extragradient: 2)
    comm_copies: int = 1  # tensors of the iterate's size per gossip message (tracking: x, y)

    def __init__(
        self,
        params: Iterable,
        comm: Communicator,
        lr: float = 1e-3,
        rounds: int = 1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        moments: str = "local",
        compression: str = "none",
        consensus_step: float | None = None,
        compression_seed: int = 0,
        initial: str = "check",
    ):
        if not isinstance(comm, Communicator):
            raise ConfigError(f"comm must be a gossipgan Communicator, got {type(comm).__name__}")
        check_hyperparameters(lr, rounds, betas, eps)
        if moments not in ("local", "mixed"):
            raise ConfigError(f"Invalid moments: {moments!r} (allowed: 'local', 'mixed')")
        if moments == "mixed" and (self.direction != "adam" or self.centralized):
            raise ConfigError("moments='mixed' applies only to decentralized Adam methods")
        self.comm = comm
        self.compression = compression_layer(self, comm, compression, consensus_step,
                                             compression_seed)
        self.initial = guards.check_initial(initial)  # x_0: "check", "sync" or "any"
        defaults = dict(lr=lr, rounds=rounds, betas=tuple(betas), eps=eps, moments=moments)
        super().__init__(params, defaults)
        for group in self.param_groups:
            check_hyperparameters(group["lr"], group["rounds"], group["betas"], group["eps"])
        rounds_used = {g["rounds"] for g in self.param_groups}
        if len(rounds_used) > 1:
            raise ConfigError(f"all parameter groups must use the same rounds, got {rounds_used}")
        guards.register(self)

    # --- the worker-axis view -------------------------------------------------------------
    def _view(self, t: Tensor) -> Tensor:
        return t.view(self.comm.n_local, -1)

    def _params(self) -> list[tuple[dict, Tensor]]:
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    raise RuntimeError(
                        "every parameter needs a gradient: the operator covers both players")
                out.append((group, p))
        return out

    @property
    def iteration(self) -> int:
        """Completed step() calls."""
        first = self.param_groups[0]["params"][0]
        return int(self.state[first].get("iteration", 0))

    def _communicate(self, tensors: list[Tensor], step: int, phase: int = 0,
                     scratch: bool = False) -> list[Tensor]:
        """Gossip `tensors` in communication phase `phase` of step `step`: global gossip
        round indices advance by `rounds` per phase, so a time-varying schedule moves on once
        per phase. Centralized methods do not gossip (their all-reduce is of the gradients).
        With compression, CHOCO rounds on the public copies in the state (`scratch`: on
        throw-away zero copies, for `communicate`)."""
        if self.centralized or not tensors:
            return tensors
        rounds = self.param_groups[0]["rounds"]
        views = [self._view(t) for t in tensors]
        index = step * self.comm_phases + phase
        if self.compression is None:
            return self.comm.mix(views, rounds, index)
        hats, sums = self._public_copies(views, index * rounds, scratch)
        return self.compression.mix(views, hats, sums, rounds, index * rounds)

    def _public_copies(self, views: list[Tensor], round_index: int, scratch: bool
                       ) -> tuple[list[Tensor], list[Tensor]]:
        """Compressed gossip's memory (x̂, s) of each gossiped tensor, kept in the state of
        the parameter it has the size of: tensor j is role j // n of parameter j % n (x, then
        the tracker, then the moments). Set up on first use; `scratch`: zeros, state untouched
        (`communicate`)."""
        params = [p for group in self.param_groups for p in group["params"]]
        keys = [(self.state[params[j % len(params)]], f"pub_hat{j // len(params)}",
                 f"pub_sum{j // len(params)}") for j in range(len(views))]
        if scratch:
            return [v.new_zeros(v.shape) for v in views], [v.new_zeros(v.shape) for v in views]
        missing = [j for j, (s, hat, _) in enumerate(keys) if hat not in s]
        if missing:
            hats, sums = self.compression.init_memory([views[j] for j in missing], round_index)
            for j, h, m in zip(missing, hats, sums, strict=True):
                s, hat, total = keys[j]
                s[hat], s[total] = h, m
        return [s[hat] for s, hat, _ in keys], [s[total] for s, _, total in keys]

    # --- the two places a variant changes (gossipgan.optim.tracking overrides both) ----------
    def _operator_estimate(self, states: list[dict], grads: list[Tensor]) -> list[Tensor]:
        """What the step moves along: the operator evaluation g itself (tracking: y)."""
        return grads

    def _gossip(self, states: list[dict], params: list[Tensor], x: list[Tensor],
                y: list[Tensor], grads: list[Tensor], step: int, phase: int = 0
                ) -> list[Tensor]:
        """Mix x (and Adam's moments, when mixed) in ONE call; returns mix(x) shaped like the
        parameters, the moments mixed in place."""
        extra = self._mixed_moments(states)
        mixed = self._communicate(list(x) + extra, step, phase)
        n = len(params)
        for buf, m in zip(extra, mixed[n:], strict=True):
            buf.copy_(m.view_as(buf))
        return [m.view_as(p) for m, p in zip(mixed[:n], params, strict=True)]

    def _mixed_moments(self, states: list[dict]) -> list[Tensor]:
        if self.param_groups[0]["moments"] != "mixed":
            return []
        # role-major (all first moments, then all second): gossiped tensor j has parameter
        # j % n's size, which is where compressed gossip keeps its public copies
        return [s[key] for key in ("exp_avg", "exp_avg_sq") for s in states]

    def communicate(self, step: int | None = None) -> None:
        """One step's communication alone, on tensors of the parameters' sizes, nothing moved.

        What `step()` sends, without computing anything: `comm_phases` gossip phases of
        `rounds` rounds of x (and of mixed moments), or the all-reduce of the gradients for the
        centralized methods. For timing the network (the benchmark's "communication alone");
        `step` picks the rounds of a time-varying schedule (default: the next step's). With
        compression: the compressed rounds of every step after the first (whose one dense
        set-up round of the public copies is not repeated), the copies left untouched.
        """
        step = self.iteration if step is None else step
        params = [p.detach() for group in self.param_groups for p in group["params"]]
        sent = params + [torch.zeros_like(p) for p in params
                         for _ in range(self.gossip_copies() - 1)]
        with torch.no_grad():
            for phase in range(self.comm_phases):
                if self.centralized:
                    self.comm.mean([self._view(p) for p in params])
                else:
                    self._communicate(sent, step, phase, scratch=True)

    def gossip_copies(self) -> int:
        """Tensors of the iterate's size each gossip message carries: x (and the tracker y of
        the tracking methods), plus Adam's two moments when they are mixed."""
        return self.comm_copies + (2 if self.param_groups[0]["moments"] == "mixed" else 0)

    def message_bytes(self) -> int:
        """Bytes of one gossip message of one worker (compressed when compression is on):
        `gossip_copies()` tensors of each parameter's size."""
        views = [self._view(p) for group in self.param_groups for p in group["params"]]
        if self.compression is not None:
            one = self.compression.message_bytes(views)
        else:
            one = sum(v.shape[1] * v.element_size() for v in views)
        return one * self.gossip_copies()

    def _updates(self, pairs: list[tuple[dict, Tensor]], grads: list[Tensor]) -> list[Tensor]:
        """u = -lr d for every parameter, per group (per-player step sizes)."""
        updates: list[Tensor] = [None] * len(pairs)  # type: ignore[list-item]
        for group in self.param_groups:
            ids = [i for i, (g, _) in enumerate(pairs) if g is group]
            if not ids:
                continue
            gs = [grads[i] for i in ids]
            if self.direction == "sgd":
                us = sgd_updates(gs, group["lr"])
            else:
                states = [self.state[pairs[i][1]] for i in ids]
                for s, g in zip(states, gs, strict=True):
                    if "exp_avg" not in s:
                        s["exp_avg"] = torch.zeros_like(g)
                        s["exp_avg_sq"] = torch.zeros_like(g)
                        s["adam_step"] = torch.zeros((), dtype=torch.float32, device=g.device)
                us = adam_updates(
                    gs, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                    [s["adam_step"] for s in states],
                    lr=group["lr"], betas=group["betas"], eps=group["eps"],
                )
            for i, u in zip(ids, us, strict=True):
                updates[i] = u
        return updates

    @torch.no_grad()
    def step(self, closure: Callable[[], object] | None = None):
        """One iteration, both players at once: `closure` (if given) puts g_k = T(z_k) in
        every parameter's `.grad`, then one gossip phase moves the iterate.

        What the parameters hold: for the optimistic methods, z_{k+1} after the step, the point
        where the NEXT gradient is taken, not the iterate x_k (that is `iterates()`, and the
        run's output is the average x_bar: `gossipgan.own.iterate_state_dict` and
        `use_iterate` for modules). Before the first step they hold x_0, which must be the
        same on every worker (checked: see `initial`). Every parameter needs a `.grad`, each
        player's the gradient of its own loss only (`gossipgan.own.simultaneous_backward`).
        """
        guards.before_step(self)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pairs = self._params()
        params = [p for _, p in pairs]
        grads = [p.grad.detach() for p in params]
        if self.centralized:
            means = self.comm.mean([self._view(g) for g in grads])
            grads = [g.view_as(p) for g, p in zip(means, params, strict=True)]
        k = self.iteration
        states = [self.state[p] for p in params]
        y = self._operator_estimate(states, grads)
        updates = self._updates(pairs, y)

        if self.optimistic:
            if k == 0:
                x = [p.detach().clone() for p in params]
            else:
                x = torch._foreach_add([s["x_hat"] for s in states], updates)
        else:
            x = params  # x_{k-1}: mixed first, then moved by u(x_{k-1})

        x_hat = self._gossip(states, params, x, y, grads, k)

        if self.optimistic:
            for s, xi, xh in zip(states, x, x_hat, strict=True):
                s["x"] = xi
                # Centralized: mix is the identity and x_hat is a view of x (`is` cannot see
                # that: view_as makes a new tensor object); state buffers are never aliased.
                shared = xh.untyped_storage().data_ptr() == xi.untyped_storage().data_ptr()
                s["x_hat"] = xh.clone() if shared else xh
        for p, xh, u in zip(params, x_hat, updates, strict=True):
            torch.add(xh, u, out=p)  # straight into p: no temporary to copy from
        for s in states:
            s["iteration"] = k + 1
        return loss

    def iterates(self) -> list[Tensor]:
        """The iterate x_k of every parameter (what metrics and the output model use).

        For optimistic methods the parameters hold the extrapolation point z_{k+1}; x_k is in
        the state. Before the first step the parameters are x_0.
        """
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p, {})
                out.append(s["x"] if self.optimistic and "x" in s else p.detach())
        return out
