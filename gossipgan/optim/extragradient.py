"""Decentralized extragradient: two operator evaluations and two gossip phases per step.

    z_k = mix(x_{k-1} - lr T(x_{k-1})),    x_k = mix(x_{k-1} - lr T(z_k))

The baseline DPOSG is measured against: the same accuracy per iteration at twice the
gradient and communication cost (the optimistic method re-uses the last gradient instead).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gossipgan.errors import ConfigError
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
                "DExtraGrad.step needs a closure that recomputes the gradients: extragradient "
                "evaluates the operator twice per step"
            )
        with torch.enable_grad():
            loss = closure()
        pairs = self._params()
        params = [p for _, p in pairs]
        k = self.iteration
        x = [p.detach().clone() for p in params]
        for phase in (0, 1):
            if phase == 1:
                with torch.enable_grad():
                    closure()
            updates = self._updates(pairs, [p.grad.detach() for p in params])
            moved = torch._foreach_add(x, updates)
            mixed = self._communicate(moved, k, phase)
            for p, m in zip(params, mixed, strict=True):
                p.copy_(m.view_as(p))
        for p in params:
            self.state[p]["iteration"] = k + 1
        return loss  # the closure's value at x_{k-1}, as torch.optim returns the first call's
