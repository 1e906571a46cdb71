"""Gradient-tracking variants: DPOSG-GT, DPOAdam-GT, DExtraGrad-GT.

Why: with a constant step, methods that gossip only the iterates stop at a distance from the
solution that grows with how much the workers' operators T_i differ. At a consensual fixed
point x of DPOSG each worker's step is x = mix(x) - lr T_i(x), so T_i(x) = 0 for every i: no
single x does that when the T_i differ, and the iterates settle where the gossip pull balances
the local operators (a floor of order lr * heterogeneity / (1 - rho)). Each worker therefore
keeps a tracker y^i of the NETWORK-AVERAGE operator and steps along it instead of its own g^i:

    y_k = mix(y_{k-1}) + g_k - g_{k-1},    y_0 = g_0

(gradient tracking: DIGing, Nedic, Olshevsky & Shi 2017; NEXT, Di Lorenzo & Scutari 2016).
W is doubly stochastic, so mean_i y_k^i = mean_i g_k^i at every k; at a fixed point y is
consensual, hence equal to the average operator, and x = mix(x) - lr y forces it to zero: the
fixed points solve the AVERAGE game whatever the heterogeneity.

The tracker is gossiped in the same `comm.mix` call as x (one phase, t rounds): one more
message of the same size per round, so a tracked step carries 2x the bytes (`comm_copies`).
mix(y_k) is produced in step k and used in step k+1, so nothing waits for a second exchange.
Per parameter `self.state` keeps, besides the untracked method's buffers, ONE tensor
`y_hat_minus_g` = mix(y_k) - g_k, because y_{k+1} = g_{k+1} + (mix(y_k) - g_k) needs nothing
else; computed in that order it is exactly g_{k+1} when mix is the identity (one worker), so
the one-worker variants equal the untracked methods bit for bit.

Optimistic tracked step (DPOSG-GT; the optimistic gradient method of DESIGN.md §3 with y in
place of g, as in the distributed optimistic gradient tracking method DOGT, arXiv 2508.21431,
and the tracked extragradient of Mukherjee & Chakraborty, CDC 2020; decentralized VIs with
tracking: Beznosikov et al. 2021, Kovalev et al. 2022), with g_k = T(z_k) in `.grad`:

    y_k = g_k + (mix(y_{k-1}) - g_{k-1});  x_k = x_hat_{k-1} - lr y_k
    (x_hat_k, mix(y_k)) = mix(x_k, y_k);   z_{k+1} = x_hat_k - lr y_k

and the first step (parameters x_0, g_0 = T(x_0)) sets y_0 = g_0, x_hat_0 = mix(x_0),
z_1 = x_hat_0 - lr g_0: the untracked method's set-up step.

DPOAdam-GT puts Adam's scaling on the TRACKED operator: the moments are EMAs of y_k (local, or
gossiped with moments="mixed" as in DPOAdam), u_k = -lr m_hat/(sqrt(v_hat)+eps). This is
GTAdam (Carnevale, Farina, Notarnicola & Notarstefano, IEEE TCNS 2023): track the raw
gradient, adapt on the tracker. The alternative, tracking each worker's Adam direction
d_i = m_hat_i/sqrt(v_hat_i) of its OWN g_i, has fixed points with mean_i d_i = 0, which is not
mean_i g_i = 0 when the workers' scalings differ: the heterogeneity floor comes back through
the stepsizes. D-AdaST (Huang et al., NeurIPS 2024) shows that inconsistent local adaptive
stepsizes alone leave such a steady-state error and fixes it by tracking the stepsize
accumulators; here the moments' INPUT y^i is itself driven to consensus (y^i -> the average
operator), so local moments become consistent as the run converges and the fixed point is
exact with no traffic beyond the tracker (2x bytes). moments="mixed" (DADAM-style gossiped
moments, Nazari et al. 2019) stays available at 4x bytes. The choice was measured against
tracking the Adam direction (BENCHMARKS.md, "Gradient tracking").

DExtraGrad-GT: the two phases of DExtraGrad each move along the tracker, which follows the
latest operator evaluation (T(x_{k-1}), then T(z_k)):

    z_k = mix(x_{k-1} - lr y),  y <- tracked with g = T(x_{k-1})
    x_k = mix(x_{k-1} - lr y),  y <- tracked with g = T(z_k)

each phase mixing (iterate, tracker) together. The steps themselves are GossipOptimizer's and
DExtraGrad's: the tracker enters through their two hooks, `_operator_estimate` and `_gossip`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gossipgan.optim.extragradient import DExtraGrad
from gossipgan.optim.gossip import GossipOptimizer

TRACK = "y_hat_minus_g"  # the state key of mix(y_k) - g_k


class _Tracking:
    """The tracker, as the two hooks of GossipOptimizer.step (and DExtraGrad.step) that a
    variant changes: what the step moves along (y, not g) and what is gossiped (x and y)."""

    comm_copies: int = 2  # tensors of the iterate's size per gossip message: x and y

    def _operator_estimate(self: GossipOptimizer, states: list[dict], grads: list[Tensor]
                           ) -> list[Tensor]:
        """y = g + (mix(y_prev) - g_prev); y_0 = g_0 (no tracker in the state yet)."""
        if TRACK not in states[0]:
            return grads
        return torch._foreach_add(grads, [s[TRACK] for s in states])

    def _gossip(self: GossipOptimizer, states: list[dict], params: list[Tensor],
                x: list[Tensor], y: list[Tensor], grads: list[Tensor], step: int,
                phase: int = 0) -> list[Tensor]:
        """Mix (x, y[, Adam moments]) in ONE call; keep mix(y) - g; return mix(x) shaped
        like the parameters."""
        extra = self._mixed_moments(states)
        n = len(params)
        mixed = self._communicate(list(x) + list(y) + extra, step, phase)
        for buf, m in zip(extra, mixed[2 * n:], strict=True):
            buf.copy_(m.view_as(buf))
        y_hat = [m.view_as(p) for m, p in zip(mixed[n:2 * n], params, strict=True)]
        for s, offset in zip(states, torch._foreach_sub(y_hat, grads), strict=True):
            s[TRACK] = offset  # a new tensor: never aliases the gradient or the mixture
        return [m.view_as(p) for m, p in zip(mixed[:n], params, strict=True)]


class DPOSGGT(_Tracking, GossipOptimizer):
    """DPOSG with gradient tracking (`dposg-gt`): no heterogeneity floor, 2x bytes per round."""

    direction, optimistic, centralized = "sgd", True, False


class DPOAdamGT(_Tracking, GossipOptimizer):
    """DPOAdam with gradient tracking (`dpoadam-gt`): Adam's moments of the tracked operator
    (GTAdam), local by default or gossiped with moments='mixed'."""

    direction, optimistic, centralized = "adam", True, False


class DExtraGradGT(_Tracking, DExtraGrad):
    """Decentralized extragradient with gradient tracking (`dextragrad-gt`), after Mukherjee &
    Chakraborty (CDC 2020): two operator calls and two phases per step, each phase mixing the
    iterate and the tracker."""
