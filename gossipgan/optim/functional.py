"""Typed kernels for the step directions. The Adam maths is torch's own, not a copy.

Each kernel returns the *update* u = -lr * d (what gets added to the mixed iterate), so the
optimistic step can re-use it: x_k = x_hat_{k-1} + u_k and z_{k+1} = x_hat_k + u_k.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.adam import adam as _torch_adam

FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused Adam kernel exists


def sgd_updates(grads: list[Tensor], lr: float) -> list[Tensor]:
    """u = -lr * g."""
    return torch._foreach_mul(grads, -lr)


def adam_updates(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> list[Tensor]:
    """u = -lr * m_hat / (sqrt(v_hat) + eps), moments and step counts updated in place.

    torch's functional Adam moves its `params` argument by exactly u; applying it to zeros
    therefore yields u while every detail of the maths (bias correction, eps placement) stays
    torch.optim.Adam's. Element-wise, so the worker axis needs no special care.

    On CPU and CUDA it runs torch's fused kernel (torch.optim.Adam(fused=True)): one pass over
    memory instead of about seven, which matters for the simulator's large stacked moments
    (bench/optim_step.py measures it; figures in BENCHMARKS.md).
    """
    updates = [torch.zeros_like(g) for g in grads]
    # the kernel wants each step count on its tensor's device (a checkpoint may hold them on CPU)
    fused = all(g.device.type in FUSED_DEVICES and s.device == g.device
                for g, s in zip(grads, steps, strict=True)) or None
    _torch_adam(
        updates, grads, exp_avgs, exp_avg_sqs, [], steps,
        foreach=None, fused=fused, amsgrad=False, beta1=betas[0], beta2=betas[1], lr=lr,
        weight_decay=0.0, eps=eps, maximize=False,
    )
    return updates
