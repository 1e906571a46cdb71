"""The interface every min-max problem implements.

A game is described for ONE worker: its parameters are a dict of named tensors without a
worker axis, and `operator` is a pure function of those parameters and one batch. That is
what lets the simulator map it over N stacked workers (torch.func.vmap, or a loop) and the
distributed backend apply it to its single worker, with the same code.

Convention: the "min" player (generator, x) descends its own loss, the "max" player
(discriminator, y) descends ITS own loss too (for a zero-sum f, l_max = -f), so the operator
is T = (dl_min/dx, dl_max/dy) and every algorithm moves along -T.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from gossipgan.data import Dataset

Params = dict[str, Tensor]
Batch = dict[str, Tensor]


class Game(abc.ABC):
    """A stochastic min-max game split over `n_workers` data shards."""

    n_workers: int
    shard_size: float | None = None  # mean samples per worker's shard, for epochs (if any)
    dataset: Dataset | None = None  # the real data a generating game learns (GANs)

    @abc.abstractmethod
    def init_params(self, seed: int) -> Params:
        """The common starting point x_0 of every worker (no worker axis)."""

    @abc.abstractmethod
    def player(self, name: str) -> str:
        """'min' or 'max': which player owns parameter `name` (for per-player step sizes)."""

    @abc.abstractmethod
    def sample(self, worker: int, generator: torch.Generator, batch_size: int) -> Batch:
        """A minibatch from `worker`'s shard (data and any noise), drawn from `generator` only.

        Every random number the operator needs is drawn here, outside `operator`, so the
        operator is deterministic and vmap-able and a worker sees the same numbers whether it
        runs in the simulator or in its own process.
        """

    @abc.abstractmethod
    def operator(self, params: Params, batch: Batch) -> Params:
        """T(x; batch): each player's gradient of its own loss, both at the same point."""

    @abc.abstractmethod
    def large_batch(self, generator: torch.Generator, size: int) -> Batch:
        """A batch drawn from the union of all shards, for estimating ||T(x_bar)||^2."""

    def init_buffers(self) -> Params:
        """State a forward updates in place, per worker (BatchNorm's running statistics), as
        {name: tensor} without a worker axis. Optional (default: none). The simulator stacks
        it on the worker axis like the parameters and passes it to `player_losses` inside
        `params` (keys disjoint from the parameters'); it is never gossiped nor stepped."""
        return {}

    def player_losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        """Each player's own scalar loss at ONE worker's point: {'min': l_min, 'max': l_max}.

        Optional. A game that overrides it promises `operator(params, batch)[name]` =
        d player_losses(params, batch)[player(name)] / d params[name]. The simulator then maps
        only this forward over the worker axis and differentiates the sum over workers with
        plain autograd (workers are independent, so each stacked row gets its own gradient),
        which is much faster than mapping torch.func.grad; both players share the forward.
        Random numbers: as in `operator`, none (they come in `batch`).
        """
        raise NotImplementedError(f"{type(self).__name__} has no player_losses")

    @property
    def has_player_losses(self) -> bool:
        """Whether `player_losses` is overridden (the simulator's fast path applies)."""
        return type(self).player_losses is not Game.player_losses

    def eval_operator(self, params: Params, batch: Batch) -> Params:
        """T at `params` for ||T(x_bar)||^2: the operator on the large `batch`, or the exact
        operator over every shard where a game knows it (the analytic games)."""
        return self.operator(params, batch)

    def generate(self, params: Params, n: int, generator: torch.Generator) -> Tensor:
        """`n` samples of the generator at `params` (games that generate: see `generates`)."""
        raise NotImplementedError(f"{type(self).__name__} generates no samples")

    @property
    def generates(self) -> bool:
        """Whether the game has a generator (`generate` is overridden)."""
        return type(self).generate is not Game.generate

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        """Scalar losses to log, e.g. {'loss_min': ..., 'loss_max': ...}. Optional."""
        return {}

    def solution(self) -> Params | None:
        """The known solution x*, if there is one."""
        return None
