"""Mixing matrices as data: `Topology` (a static or periodic time-varying gossip schedule)
with its spectral facts, and `validate` for any candidate mixing matrix.

Convention (DESIGN.md §2): one gossip round is x^i <- sum_j W[i, j] x^j, W doubly stochastic
and positive only on the diagonal and on edges j -> i. The builders live in
`gossipgan.topology.builders`; `gossipgan.topology` re-exports both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gossipgan.errors import ConfigError

_TOL = 1e-12
_TIME_VARYING_CAP = 10_000  # rounds searched by rounds_to for time-varying schedules


def validate(w: np.ndarray, adjacency: np.ndarray | None = None) -> None:
    """Raise a ConfigError unless `w` is a square, finite, non-negative, doubly stochastic
    matrix (row and column sums 1 within 1e-12) that is zero off the graph `adjacency`
    (boolean, adjacency[i, j] True when i may receive from j; the diagonal is always allowed)."""
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
        raise ConfigError(f"a mixing matrix must be square N x N, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError(f"a mixing matrix must be finite and non-negative, min {w.min()!r}")
    for axis, what in ((1, "row"), (0, "column")):
        err = np.abs(w.sum(axis=axis) - 1.0).max()
        if err > _TOL:
            raise ConfigError(f"mixing matrix {what} sums differ from 1 by up to {err:.3g}")
    if adjacency is not None:
        allowed = np.asarray(adjacency, dtype=bool) | np.eye(w.shape[0], dtype=bool)
        if allowed.shape != w.shape:
            raise ConfigError(f"adjacency shape {allowed.shape} != matrix shape {w.shape}")
        off = np.argwhere((w != 0) & ~allowed)
        if len(off):
            i, j = off[0]
            raise ConfigError(f"mixing matrix has weight {w[i, j]!r} at ({i}, {j}), not an edge")


@dataclass(frozen=True, eq=False)
class Topology:
    """A (possibly periodic, time-varying) gossip schedule over `n_workers` workers.

    `matrices` holds W_0..W_{period-1} (one matrix when static); they are copied to float64
    and made read-only on construction, and validated as doubly stochastic.
    """

    name: str
    matrices: tuple[np.ndarray, ...]
    description: str = ""

    def __post_init__(self) -> None:
        mats = tuple(np.array(m, dtype=np.float64) for m in self.matrices)
        if not mats:
            raise ConfigError(f"topology {self.name!r} needs at least one mixing matrix")
        for m in mats:
            validate(m)
            if m.shape != mats[0].shape:
                raise ConfigError(f"mixing matrices of {self.name!r} differ in shape")
            m.setflags(write=False)
        object.__setattr__(self, "matrices", mats)

    @property
    def n_workers(self) -> int:
        return self.matrices[0].shape[0]

    @property
    def period(self) -> int:
        return len(self.matrices)

    @property
    def time_varying(self) -> bool:
        return self.period > 1

    @property
    def directed(self) -> bool:
        """True when some round's graph is not symmetric (i receives from j but not j from i)."""
        return any(((m > 0) != (m.T > 0)).any() for m in self.matrices)

    def matrix(self, round_index: int) -> np.ndarray:
        """W used in global gossip round `round_index` (read-only)."""
        return self.matrices[round_index % self.period]

    def _check_worker(self, worker: int) -> None:
        if not 0 <= worker < self.n_workers:
            raise ConfigError(f"worker must be in 0..{self.n_workers - 1}, got {worker}")

    def in_neighbors(self, worker: int, round_index: int = 0) -> list[tuple[int, float]]:
        """(j, W[i, j]) for every j != i that worker i receives from in that round."""
        self._check_worker(worker)
        row = self.matrix(round_index)[worker]
        return [(int(j), float(row[j])) for j in np.flatnonzero(row > 0) if j != worker]

    def out_neighbors(self, worker: int, round_index: int = 0) -> list[tuple[int, float]]:
        """(j, W[j, i]) for every j != i that receives from worker i in that round."""
        self._check_worker(worker)
        col = self.matrix(round_index)[:, worker]
        return [(int(j), float(col[j])) for j in np.flatnonzero(col > 0) if j != worker]

    def self_weight(self, worker: int, round_index: int = 0) -> float:
        self._check_worker(worker)
        return float(self.matrix(round_index)[worker, worker])

    @property
    def max_degree(self) -> int:
        """Most in-neighbours (self excluded) of any worker in any round."""
        return max(
            int(((m > 0) & ~np.eye(self.n_workers, dtype=bool)).sum(axis=1).max())
            for m in self.matrices
        )

    def mixing_matrix(self, rounds: int, start_round: int = 0) -> np.ndarray:
        """W_{start+rounds-1} ... W_{start}: the effect of `rounds` consecutive gossip rounds."""
        if rounds < 0:
            raise ConfigError(f"number of gossip rounds must be >= 0, got {rounds}")
        if not self.time_varying:
            return np.linalg.matrix_power(self.matrices[0], rounds)
        out = np.eye(self.n_workers)
        for r in range(start_round, start_round + rounds):
            out = self.matrix(r) @ out
        return out

    @cached_property
    def _rho(self) -> float:
        deviation = self.mixing_matrix(self.period) - 1.0 / self.n_workers
        return float(np.linalg.norm(deviation, 2))

    def rho(self) -> float:
        """||W - 11^T/N||_2; for a time-varying schedule, of the product over one period."""
        return self._rho

    def spectral_gap(self) -> float:
        return 1.0 - self.rho()

    def rounds_to(self, factor: float = 1e-3) -> int | None:
        """Fewest gossip rounds that shrink the consensus error by `factor`, or None if never.

        Static: smallest t with rho^t <= factor. Time-varying: smallest t (from round 0) with
        ||W_{t-1}...W_0 - 11^T/N||_2 <= factor, searched up to 10,000 rounds.
        """
        if not 0 < factor < 1:
            raise ConfigError(f"consensus reduction factor must be in (0, 1), got {factor}")
        if self.time_varying:
            return self._rounds_to_time_varying(factor)
        rho = self.rho()
        if rho >= 1 - _TOL:
            return None
        if rho <= factor:
            return 1
        t = max(1, math.ceil(math.log(factor) / math.log(rho)))
        while rho**t > factor:  # guard the float division on either side
            t += 1
        while t > 1 and rho ** (t - 1) <= factor:
            t -= 1
        return t

    def _rounds_to_time_varying(self, factor: float) -> int | None:
        n = self.n_workers
        centre = np.full((n, n), 1.0 / n)
        # (W - J)(V - J) = WV - J for doubly stochastic W, V: track the deviation directly.
        deviation = np.eye(n) - centre
        for t in range(1, _TIME_VARYING_CAP + 1):
            deviation = (self.matrix(t - 1) - centre) @ deviation
            frob = np.linalg.norm(deviation)
            # ||D||_2 >= ||D||_F / sqrt(n): skip the SVD while that bound is still too large.
            if frob <= factor or (
                frob <= factor * math.sqrt(n) and np.linalg.norm(deviation, 2) <= factor
            ):
                return t
        return None

    def exact_average_rounds(self) -> int | None:
        """Fewest rounds t (from round 0) after which every worker holds exactly the average,
        or None. One-peer exponential with N = 2^k gives k; with N = 6 or 12 it gives None.

        Exact means W_{t-1}...W_0 - 11^T/N collapses to round-off (<= 1e-12) in one round, a
        drop by 10^6 or more that geometric convergence at rate rho does not make; a product
        that only creeps below 1e-12 is not exact. If the product is ever exact it is exact
        within n_workers * period rounds (the period product minus 11^T/N is then nilpotent),
        so the search stops there.
        """
        n = self.n_workers
        centre = np.full((n, n), 1.0 / n)
        deviation = np.eye(n) - centre
        previous = np.abs(deviation).max()
        for t in range(1, n * self.period + 1):
            deviation = (self.matrix(t - 1) - centre) @ deviation
            size = np.abs(deviation).max()
            if size <= _TOL:
                return t if size <= 1e-6 * previous else None
            previous = size
        return None

    def edges(self, round_index: int = 0) -> list[tuple[int, int]]:
        """Edges of one round: (i, j) with i < j for a symmetric graph, else directed
        (sender j, receiver i) pairs for every W[i, j] > 0, j != i."""
        m = self.matrix(round_index)
        pairs = np.argwhere((m > 0) & ~np.eye(self.n_workers, dtype=bool))
        if ((m > 0) == (m.T > 0)).all():
            return [(int(i), int(j)) for i, j in pairs if i < j]
        return sorted((int(j), int(i)) for i, j in pairs)


def exact_average_rounds(topology: Topology) -> int | None:
    """Rounds after which gossip gives the exact average, or None (see the method)."""
    return topology.exact_average_rounds()
