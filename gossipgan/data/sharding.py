"""Splitting a dataset over workers, and each worker's deterministic minibatch order.

Schemes of :func:`shard`:

- ``iid``: a `seed`-seeded permutation cut into `n_workers` equal shards; the remainder
  (n mod n_workers samples) is dropped so that every worker holds the same number of samples.
- ``dirichlet`` (Hsu et al. 2019): for each class, the shares of its samples across workers
  are drawn from Dir(alpha, ..., alpha); small alpha gives workers few dominant classes,
  large alpha approaches IID. Shards have unequal sizes. A worker left empty by the draw
  receives, deterministically, the last index of the currently largest shard, until every
  worker holds at least one sample.

:class:`WorkerSampler` walks one worker's shard epoch by epoch; each epoch's order is a
permutation from a generator seeded by (seed, worker, epoch), so any (epoch, position) state
is reproducible and a resumed run continues exactly. Incomplete final batches are dropped so
that all batches have the same size (workers are stacked on one axis).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from gossipgan.errors import ConfigError, check_choice

SCHEMES: tuple[str, ...] = ("iid", "dirichlet")


def _labels_and_size(data) -> tuple[torch.Tensor | None, int]:
    """Accept a Dataset (anything with `.y` and `len`), a label tensor, or a sample count."""
    if isinstance(data, int) and not isinstance(data, bool):
        return None, data
    if isinstance(data, torch.Tensor | np.ndarray):
        labels = torch.as_tensor(data)
    elif hasattr(data, "y") and hasattr(data, "__len__"):
        labels = data.y
        if labels is None:
            return None, len(data)
    else:
        raise ConfigError(f"shard() takes a Dataset, a label tensor or a sample count, got "
                          f"{type(data).__name__}")
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigError(f"labels must be a 1-D integer tensor, got {labels.dtype} "
                          f"{list(labels.shape)}")
    if len(labels) and int(labels.min()) < 0:
        raise ConfigError(f"labels must be >= 0, got {int(labels.min())}")
    return labels.long(), len(labels)


def shard(
    dataset_or_labels, n_workers: int, scheme: str = "iid", alpha: float = 1.0, seed: int = 0
) -> list[torch.Tensor]:
    """Split sample indices over `n_workers`; returns one sorted int64 index tensor per worker.

    `dataset_or_labels` is a Dataset, a 1-D label tensor, or (IID only) a sample count.
    `alpha` is the Dirichlet concentration (must be > 0) and only used by "dirichlet".
    """
    check_choice("sharding scheme", scheme, SCHEMES)
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"number of workers must be a positive integer, got {n_workers!r}")
    labels, n = _labels_and_size(dataset_or_labels)
    if n < n_workers:
        raise ConfigError(f"cannot shard {n} samples over {n_workers} workers: every worker "
                          f"needs at least one sample")
    if scheme == "iid":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        size = n // n_workers
        return [perm[i * size:(i + 1) * size].sort().values for i in range(n_workers)]
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"non-IID alpha must be > 0, got {alpha!r}")
    if labels is None:
        raise ConfigError("dirichlet sharding needs class labels, but the dataset has none; "
                          "use scheme 'iid'")
    return _dirichlet(labels, n_workers, float(alpha), seed)


def _dirichlet(labels: torch.Tensor, n_workers: int, alpha: float, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    parts: list[list[np.ndarray]] = [[] for _ in range(n_workers)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        shares = rng.dirichlet(np.full(n_workers, alpha))
        # Cut points from cumulative shares; rounding keeps every sample exactly once.
        cuts = np.round(np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
        for w, piece in enumerate(np.split(idx, cuts)):
            parts[w].append(piece)
    shards = [np.sort(np.concatenate(p)) if p else np.empty(0, np.int64) for p in parts]
    for w in range(n_workers):
        if len(shards[w]) == 0:
            donor = max(range(n_workers), key=lambda i: (len(shards[i]), -i))
            shards[w], shards[donor] = shards[donor][-1:], shards[donor][:-1]
    assert sum(map(len, shards)) == len(y) and all(len(s) for s in shards)
    return [torch.from_numpy(s.astype(np.int64)) for s in shards]


def _epoch_seed(seed: int, worker: int, epoch: int) -> int:
    """A 63-bit generator seed that mixes (seed, worker, epoch) with no collisions in practice."""
    digest = hashlib.blake2b(f"{seed}:{worker}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class WorkerSampler:
    """Deterministic minibatches of one worker's shard, reshuffled every epoch.

    Iterating (or calling :meth:`next_batch`) yields int64 tensors of `batch_size` dataset
    indices, forever. `state_dict()` holds (epoch, position): the epoch of the next batch and
    how many batches of it were already served.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, seed: int = 0, worker: int = 0):
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        if self.indices.ndim != 1:
            raise ConfigError(f"shard indices must be 1-D, got shape {list(self.indices.shape)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
        if batch_size > len(self.indices):
            raise ConfigError(f"batch size {batch_size} is larger than worker {worker}'s shard "
                              f"of {len(self.indices)} samples")
        self.batch_size = batch_size
        self.seed = seed
        self.worker = worker
        self._epoch = 0
        self._position = 0
        self._order: torch.Tensor | None = None  # current epoch's permutation, built lazily

    @property
    def epoch(self) -> int:
        """Epoch of the next batch (0-based); equals the number of completed epochs."""
        return self._epoch

    @property
    def position(self) -> int:
        """Batches already served in the current epoch."""
        return self._position

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per pass over the shard (the incomplete last one is dropped)."""
        return len(self.indices) // self.batch_size

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            gen = torch.Generator().manual_seed(_epoch_seed(self.seed, self.worker, self._epoch))
            self._order = self.indices[torch.randperm(len(self.indices), generator=gen)]
        return self._order

    def next_batch(self) -> torch.Tensor:
        """The next minibatch of dataset indices; rolls over to a new epoch when one ends."""
        start = self._position * self.batch_size
        batch = self._epoch_order()[start:start + self.batch_size]
        self._position += 1
        if self._position == self.batches_per_epoch:
            self._epoch, self._position, self._order = self._epoch + 1, 0, None
        return batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.next_batch()

    def state_dict(self) -> dict[str, int]:
        """The data position, enough to continue exactly after a restart."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a position saved by :meth:`state_dict` (same shard, batch size and seed)."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position < self.batches_per_epoch:
            raise ConfigError(f"sampler state (epoch {epoch}, position {position}) is out of "
                              f"range for {self.batches_per_epoch} batches per epoch")
        self._epoch, self._position, self._order = epoch, position, None


def make_samplers(
    shards: Sequence[torch.Tensor], batch_size: int, seed: int = 0
) -> list[WorkerSampler]:
    """One :class:`WorkerSampler` per shard, worker ids 0..len(shards)-1."""
    return [WorkerSampler(s, batch_size, seed=seed, worker=w) for w, s in enumerate(shards)]
