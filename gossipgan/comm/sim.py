"""SimComm: all N workers in one process, their tensors stacked on the worker axis.

Two ways to mix, chosen per topology (settable):
- "dense": one precomputed product W^t applied as a matmul, O(N^2 d) but a single kernel;
  fastest for small N (DESIGN.md §8: 3-4x faster than t separate rounds).
- "sparse": each round gathers only the in-neighbours (K = max in-degree + 1 slots),
  O(N K d), so the cost grows with the edges, not N^2.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gossipgan.comm.base import Communicator, Traffic
from gossipgan.errors import check_choice
from gossipgan.topology import Topology

DENSE_MAX_WORKERS = 32


class SimComm(Communicator):
    def __init__(self, topology: Topology, mode: str = "auto"):
        self.topology = topology
        self.mode = check_choice("mixing mode", mode, ("auto", "dense", "sparse"))
        if mode == "auto":
            dense = topology.n_workers <= DENSE_MAX_WORKERS or 2 * topology.max_degree >= topology.n_workers
            self.mode = "dense" if dense else "sparse"
        self.traffic = Traffic()
        self._dense_cache: dict[tuple, Tensor] = {}
        self._slot_cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    @property
    def workers(self) -> list[int]:
        return list(range(self.topology.n_workers))

    def _mix(self, tensors: list[Tensor], rounds: int, step: int) -> list[Tensor]:
        first = step * rounds
        if self.mode == "dense":
            return [self._dense(first, rounds, t) for t in tensors]
        out = list(tensors)
        for j in range(rounds):
            out = [self._sparse_round(first + j, t) for t in out]
        return out

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

    def _slots(self, round_index: int, dtype: torch.dtype, device) -> tuple[Tensor, Tensor]:
        """[N, K] source indices and weights of round r (self first, padded with weight 0)."""
        key = (round_index % self.topology.period, dtype, device)
        if key not in self._slot_cache:
            n = self.topology.n_workers
            rows = []
            for i in range(n):
                rows.append([(i, self.topology.self_weight(i, round_index))]
                            + self.topology.in_neighbors(i, round_index))
            k = max(len(r) for r in rows)
            idx = np.zeros((n, k), dtype=np.int64)
            wts = np.zeros((n, k), dtype=np.float64)
            for i, row in enumerate(rows):
                for s, (j, w) in enumerate(row):
                    idx[i, s], wts[i, s] = j, w
                idx[i, len(row):] = i
            self._slot_cache[key] = (torch.tensor(idx, device=device),
                                     torch.tensor(wts, dtype=dtype, device=device))
        return self._slot_cache[key]

    def _sparse_round(self, round_index: int, x: Tensor) -> Tensor:
        idx, wts = self._slots(round_index, x.dtype, x.device)
        flat = x.reshape(x.shape[0], -1)
        out = flat * wts[:, :1]
        for s in range(1, idx.shape[1]):
            out.addcmul_(flat.index_select(0, idx[:, s]), wts[:, s:s + 1])
        return out.view_as(x)
