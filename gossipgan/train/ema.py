"""An exponential moving average (EMA) of the generator, as GAN practitioners keep one.

Each worker keeps the EMA of its OWN generator iterate, locally, with no communication per
step:

    e_k^i = d_k e_{k-1}^i + (1 - d_k) x_k^i,    e_0^i = x_0^i,
    d_k   = min(decay, (1 + k) / (10 + k))      (warm-up, as tf.train.ExponentialMovingAverage)

The average over workers is linear, so (1/N) sum_i e_k^i is exactly the EMA of the average
model x_bar: `EMA.average(comm)` (one collective, at evaluation time only). The warm-up keeps
the random initialisation from lingering in short runs (with a plain 0.999, x_0 would still
weigh 5 % after 3,000 steps); decay 0 makes e_k = x_k. Only the min player (the generator) is
averaged: the discriminator's EMA is never used.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gossipgan.comm.base import Communicator
from gossipgan.errors import ConfigError

WARMUP = 10  # d_k reaches 0.9 at k = 80, 0.99 at k = 890, 0.999 at k = 8,990


def decay_at(decay: float, k: int) -> float:
    """The decay used by update number k (1-based): `decay`, capped early by the warm-up."""
    return min(decay, (1 + k) / (WARMUP + k))


class EMA:
    """EMA of some of a run's tensors (this process's workers: a leading worker axis).

    `names`, `iterates`: every parameter of the run, in the optimizer's order; `keep`: the
    positions of those averaged (default: all).
    """

    def __init__(self, names: list[str], iterates: list[Tensor], decay: float,
                 keep: list[int] | None = None):
        if not 0 <= decay < 1:
            raise ConfigError(f"the EMA decay must be in [0, 1), got {decay}")
        self.keep = list(range(len(names))) if keep is None else list(keep)
        self.names = [names[i] for i in self.keep]
        self.decay, self.updates = float(decay), 0
        self.shadow = [iterates[i].detach().clone() for i in self.keep]

    @torch.no_grad()
    def update(self, iterates: list[Tensor]) -> None:
        """One step: e <- d e + (1 - d) x for the new iterates (all of the run's, in order)."""
        self.updates += 1
        d = decay_at(self.decay, self.updates)
        # lerp_(x, w) = e + w (x - e); torch computes it as x - (x - e)(1 - w) for w >= 0.5,
        # so decay 0 (w = 1) gives x exactly and a constant x stays exactly constant.
        torch._foreach_lerp_(self.shadow, [iterates[i].detach() for i in self.keep], 1.0 - d)

    def worker(self, i: int) -> dict[str, Tensor]:
        """Local worker i's EMA, {name: tensor} without the worker axis."""
        return {n: e[i] for n, e in zip(self.names, self.shadow, strict=True)}

    def average(self, comm: Communicator) -> dict[str, Tensor]:
        """The EMA of x_bar = the average of the workers' EMAs (a collective under dist)."""
        return dict(zip(self.names, comm.average(self.shadow), strict=True))

    def consensus(self, comm: Communicator) -> float:
        """(1/N) sum_i ||e^i - e_bar||^2: how far the workers' EMAs are apart."""
        mean = comm.average(self.shadow)
        sq = sum((e.double() - m.double()).pow(2).flatten(1).sum(1)
                 for e, m in zip(self.shadow, mean, strict=True))
        return float(comm.average([sq])[0])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates,
                "shadow": {n: e.clone() for n, e in zip(self.names, self.shadow, strict=True)}}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.names):
            raise ConfigError("the checkpoint's generator EMA holds other parameters than this "
                              "run's generator")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        with torch.no_grad():
            for n, e in zip(self.names, self.shadow, strict=True):
                e.copy_(state["shadow"][n])


def generator_ema(decay: float | None, names: list[str], iterates: list[Tensor],
                  player) -> EMA | None:
    """The EMA of the min player's (generator's) iterates, or None when `decay` is None.
    `player(name)` says whose a parameter is ("min" / "max")."""
    if decay is None:
        return None
    return EMA(names, iterates, decay, [i for i, n in enumerate(names) if player(n) == "min"])


__all__ = ["EMA", "decay_at", "generator_ema"]
