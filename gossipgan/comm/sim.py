"""SimComm: all N workers in one process, their tensors stacked on the worker axis.

Two ways to mix, chosen per topology (settable):
- "dense": one precomputed product W^t applied as a matmul, O(N^2 d) but a single kernel;
  fastest for small N (DESIGN.md §8: faster than t separate rounds).
- "sparse": one round at a time, O(N K d) for K = max in-degree + 1, so the cost grows with
  the edges, not N^2. A round is memory-bound, so it is written to touch memory as little as
  possible (bench/sim_throughput.py, BENCHMARKS.md): when W's non-zeros lie on a few
  (wrapped) diagonals, as for rings and exponential graphs, each diagonal run is ONE in-place
  `add_` of a row slice of X into a row slice of the output, with no temporary; other graphs
  gather each neighbour slot with `index_select` into one scratch buffer reused across slots,
  rounds and tensors. Allocating a fresh temporary per slot, as a naive gather does, costs as much
  as the arithmetic: every new large CPU tensor is page-faulted in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gossipgan.comm.base import Communicator, Traffic
from gossipgan.errors import check_choice
from gossipgan.topology import Topology

DENSE_MAX_WORKERS = 32
# What one extra kernel launch costs, in elements streamed (measured on the dev machine: a
# torus and a hypercube of 256 workers switch from gathered slots to diagonal runs at rows of
# about 1k and 4k elements, which this reproduces). Circulant graphs always take the runs.
LAUNCH_COST_ELEMENTS = 32_768

Weight = float | Tensor  # one weight for every row, or a [rows, 1] column


@dataclass(frozen=True)
class _Run:
    """out[dst:dst+rows] += weight * x[src:src+rows]."""

    dst: int
    src: int
    rows: int
    weight: Weight


@dataclass(frozen=True)
class _Round:
    """One round's sparse plan: out = self_weight * x, then the runs or the gathered slots.

    Runs touch each edge's data 3 times (read out, read x, write out) in one launch per run;
    a gathered slot 5 times (index_select into scratch, then addcmul) in 2 launches per slot.
    Runs are used for rows of at least `min_row` elements, where their extra launches pay off.
    """

    self_weight: Weight
    runs: tuple[_Run, ...]
    index: Tensor  # [N, K-1] source of each neighbour slot (padded with self, weight 0)
    weights: Tensor  # [N, K-1]
    min_row: int


def _weight(values: np.ndarray, dtype: torch.dtype, device) -> Weight:
    """A Python float when every row shares it (a scalar multiply), else a [rows, 1] column."""
    if np.all(values == values[0]):
        return float(values[0])
    return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)


def _diagonal_runs(w: np.ndarray) -> list[tuple[int, int, int]]:
    """The off-diagonal non-zeros of w as maximal runs (dst, src, rows) along diagonals."""
    rows, cols = np.nonzero(w)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    order = np.lexsort((rows, (cols - rows) % len(w)))  # by diagonal, then row
    rows, cols = rows[order], cols[order]
    # A run continues while both the destination and the source row advance by one; this
    # also splits a wrapped diagonal and separates consecutive diagonals.
    starts = np.flatnonzero(np.r_[True, (np.diff(rows) != 1) | (np.diff(cols) != 1)])
    ends = np.r_[starts[1:], len(rows)]
    return [(int(rows[a]), int(cols[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]


class SimComm(Communicator):
    def __init__(self, topology: Topology, mode: str = "auto"):
        self.topology = topology
        self.mode = check_choice("mixing mode", mode, ("auto", "dense", "sparse"))
        if mode == "auto":
            n = topology.n_workers
            dense = n <= DENSE_MAX_WORKERS or 2 * topology.max_degree >= n
            self.mode = "dense" if dense else "sparse"
        self.traffic = Traffic()
        self._dense_cache: dict[tuple, Tensor] = {}
        self._round_cache: dict[tuple, _Round] = {}

    @property
    def workers(self) -> list[int]:
        return list(range(self.topology.n_workers))

    def _mix(self, tensors: list[Tensor], rounds: int, step: int) -> list[Tensor]:
        first = step * rounds
        if self.mode == "dense":
            return [self._dense(first, rounds, t) for t in tensors]
        scratch: dict[tuple, Tensor] = {}  # gather buffer per (dtype, device), shared by tensors
        return [self._sparse(first, rounds, t, scratch) for t in tensors]

    def _mix_encoded(self, payload, decode, local: list[Tensor], round_index: int
                     ) -> list[Tensor]:
        # Every worker's payload is here, and `local` is all of them decoded: the round is
        # the plain mixing of the decoded rows (the wire format matters only between processes).
        return self._mix(local, 1, round_index)

    def _mean(self, tensors: list[Tensor]) -> list[Tensor]:
        return [t.mean(dim=0, keepdim=True).expand_as(t).clone() for t in tensors]

    def average(self, tensors: list[Tensor]) -> list[Tensor]:
        return [t.mean(dim=0) for t in tensors]

    def _dense(self, first_round: int, rounds: int, x: Tensor) -> Tensor:
        period = self.topology.period
        key = (first_round % period, rounds, x.dtype, x.device)
        w = self._dense_cache.get(key)
        if w is None:
            m = self.topology.mixing_matrix(rounds, start_round=first_round % period)
            w = self._dense_cache[key] = torch.tensor(m, dtype=x.dtype, device=x.device)
        return (w @ x.reshape(x.shape[0], -1)).view_as(x)

    # --- sparse ---------------------------------------------------------------------------
    def _sparse(self, first_round: int, rounds: int, x: Tensor,
                pool: dict[tuple, Tensor]) -> Tensor:
        if rounds == 0:
            return x
        flat = x.reshape(x.shape[0], -1)
        scratch: Tensor | None = None
        spare: Tensor | None = None  # a previous round's output nobody else holds
        for j in range(rounds):
            plan = self._plan(first_round + j, x.dtype, x.device)
            gather = flat.shape[1] < plan.min_row
            if gather and scratch is None:
                buf = pool.get((x.dtype, x.device))
                if buf is None or buf.numel() < flat.numel():
                    buf = pool[(x.dtype, x.device)] = flat.new_empty(flat.numel())
                scratch = buf[:flat.numel()].view(flat.shape)
            out = self._sparse_round(plan, flat, spare, scratch if gather else None)
            # Round j's input can be overwritten in round j+1 unless it is the caller's x.
            spare, flat = (flat if j > 0 else None), out
        return flat.view(x.shape)

    def _plan(self, round_index: int, dtype: torch.dtype, device) -> _Round:
        key = (round_index % self.topology.period, dtype, device)
        plan = self._round_cache.get(key)
        if plan is None:
            plan = self._round_cache[key] = self._build_plan(round_index, dtype, device)
        return plan

    def _build_plan(self, round_index: int, dtype: torch.dtype, device) -> _Round:
        w = self.topology.matrix(round_index)
        n = len(w)
        off = w.copy()
        np.fill_diagonal(off, 0.0)
        rows, cols = np.nonzero(off)  # in-neighbours by row, ascending like in_neighbors()
        slot = np.arange(len(rows)) - np.searchsorted(rows, rows)
        k = max(1, int(slot.max()) + 1) if len(rows) else 1
        idx = np.tile(np.arange(n)[:, None], (1, k))  # padding: self with weight 0
        wts = np.zeros((n, k))
        idx[rows, slot], wts[rows, slot] = cols, w[rows, cols]
        runs = _diagonal_runs(w)
        extra = len(runs) - 2 * k  # launches the runs add over the gather's 2 per slot
        min_row = max(0, -(-extra * LAUNCH_COST_ELEMENTS // (2 * max(1, len(rows)))))
        return _Round(
            self_weight=_weight(np.diag(w).copy(), dtype, device),
            runs=tuple(_Run(d, s, r, _weight(w[np.arange(d, d + r), np.arange(s, s + r)],
                                             dtype, device)) for d, s, r in runs),
            index=torch.tensor(idx, device=device),
            weights=torch.tensor(wts, dtype=dtype, device=device),
            min_row=min_row,
        )

    @staticmethod
    def _sparse_round(plan: _Round, flat: Tensor, out: Tensor | None,
                      scratch: Tensor | None) -> Tensor:
        """One round of [N, d] `flat` into `out` (allocated when None): by gathering the
        neighbour slots through `scratch` when given, else by the diagonal runs."""
        if out is None:
            out = torch.mul(flat, plan.self_weight)
        else:
            torch.mul(flat, plan.self_weight, out=out)
        if scratch is None:
            for run in plan.runs:
                dst, src = out[run.dst:run.dst + run.rows], flat[run.src:run.src + run.rows]
                if isinstance(run.weight, float):
                    dst.add_(src, alpha=run.weight)
                else:
                    dst.addcmul_(src, run.weight)
            return out
        for s in range(plan.index.shape[1]):
            torch.index_select(flat, 0, plan.index[:, s], out=scratch)
            out.addcmul_(scratch, plan.weights[:, s:s + 1])
        return out
