"""Decentralized extragradient: two operator evaluations and two gossip phases per step.

    z_k = mix(x_{k-1} - lr T(x_{k-1})),    x_k = mix(x_{k-1} - lr T(z_k))

The baseline DPOSG is measured against: the same accuracy per iteration at twice the
gradient and communication cost (the optimistic method re-uses the last gradient instead).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gossipgan.errors import ConfigError
from gossipgan.optim import guards
from gossipgan.optim.gossip import GossipOptimizer


class DExtraGrad(GossipOptimizer):
    direction = "sgd"
    optimistic = False
    centralized = False
    comm_phases = 2

    @torch.no_grad()
    def step(self, closure: Callable[[], object] | None = None):
        if closure is None:
            raise ConfigError(
                f"{type(self).__name__}.step needs a closure that recomputes the gradients: "
                "extragradient evaluates the operator twice per step"
            )
        guards.before_step(self)
        with torch.enable_grad():
            loss = closure()
        pairs = self._params()
        params = [p for _, p in pairs]
        states = [self.state[p] for p in params]
        k = self.iteration
        x = [p.detach().clone() for p in params]
        for phase in (0, 1):
            if phase == 1:
                with torch.enable_grad():
                    closure()
            grads = [p.grad.detach() for p in params]
            y = self._operator_estimate(states, grads)
            moved = torch._foreach_add(x, self._updates(pairs, y))
            for p, m in zip(params, self._gossip(states, params, moved, y, grads, k, phase),
                            strict=True):
                p.copy_(m)
        for s in states:
            s["iteration"] = k + 1
        return loss  # the closure's value at x_{k-1}, as torch.optim returns the first call's
