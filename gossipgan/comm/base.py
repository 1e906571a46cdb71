"""The Communicator: the only thing the algorithms know about the network.

Every tensor passed in carries a leading *worker axis*: size N in the simulator (all workers
in one process), size 1 under torch.distributed (this process's worker). `mix` and `mean`
work along that axis, so element-wise maths in the optimizers is the same code on both.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from gossipgan.topology import Topology


@dataclass
class Traffic:
    """What a real network would carry for the workers held by this process."""

    messages: int = 0
    bytes: int = 0
    gossip_rounds: int = 0
    allreduces: int = 0
    seconds: float = 0.0  # wall time spent inside mix / mean

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, type(getattr(self, key))(value))


class Communicator(abc.ABC):
    """mix: t rounds of neighbour averaging; mean: the all-worker average (all-reduce)."""

    topology: Topology
    traffic: Traffic

    @property
    def n_workers(self) -> int:
        """N, the number of workers in the whole run."""
        return self.topology.n_workers

    @property
    @abc.abstractmethod
    def workers(self) -> list[int]:
        """Global ids of the workers whose tensors this process holds (the worker axis)."""

    @property
    def n_local(self) -> int:
        return len(self.workers)

    def mix(self, tensors: list[Tensor], rounds: int, step: int) -> list[Tensor]:
        """x^i <- sum_j W[i, j] x^j, `rounds` times, for iteration `step`.

        Gossip round r of the whole run is `step * rounds + j` (j < rounds), which is what
        time-varying schedules index by; returns new tensors, inputs are not modified.
        """
        start = time.perf_counter()
        self._count_gossip(tensors, rounds, step)
        out = self._mix(tensors, rounds, step)
        self.traffic.seconds += time.perf_counter() - start
        return out

    def mean(self, tensors: list[Tensor]) -> list[Tensor]:
        """The average over ALL workers, returned with this process's worker axis."""
        start = time.perf_counter()
        self._count_allreduce(tensors)
        out = self._mean(tensors)
        self.traffic.seconds += time.perf_counter() - start
        return out

    def mix_encoded(self, payload: list[Tensor], decode: Callable[[list[Tensor]], list[Tensor]],
                    local: list[Tensor], round_index: int) -> list[Tensor]:
        """One gossip round of encoded (compressed) messages, global round `round_index`.

        `payload`: what each worker puts on the wire, tensors of any dtype with the worker
        axis; `decode` turns a payload into dense tensors and `local` is decode(payload),
        already computed by the caller. Returns sum_j W[i, j] decode(payload_j) over i's
        in-neighbours j and i itself. Traffic counts the payload's bytes, not dense ones.
        """
        start = time.perf_counter()
        self._count_gossip(payload, 1, round_index)
        out = self._mix_encoded(payload, decode, local, round_index)
        self.traffic.seconds += time.perf_counter() - start
        return out

    @abc.abstractmethod
    def _mix_encoded(self, payload: list[Tensor], decode: Callable[[list[Tensor]], list[Tensor]],
                     local: list[Tensor], round_index: int) -> list[Tensor]:
        """The backend's round of encoded messages (see `mix_encoded`)."""

    @abc.abstractmethod
    def _mix(self, tensors: list[Tensor], rounds: int, step: int) -> list[Tensor]:
        """The backend's gossip (see `mix`)."""

    @abc.abstractmethod
    def _mean(self, tensors: list[Tensor]) -> list[Tensor]:
        """The backend's all-reduce average (see `mean`)."""

    @abc.abstractmethod
    def average(self, tensors: list[Tensor]) -> list[Tensor]:
        """The average over ALL workers WITHOUT the worker axis, for metrics (not counted as
        traffic: a real deployment would not pay for it every iteration)."""

    def broadcast(self, tensors: list[Tensor]) -> list[Tensor]:
        """Worker 0's tensors for every held worker (with the worker axis; not counted as
        traffic: it runs once, for the common start). Here: a process holding every worker."""
        if self.workers != list(range(self.n_workers)):
            raise NotImplementedError(f"{type(self).__name__} has no broadcast")
        return [t[:1].expand_as(t).clone() for t in tensors]

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's shared outputs."""
        return True

    def barrier(self) -> None:  # noqa: B027 - a no-op default, not abstract: one process
        """Wait for every worker (no-op in one process)."""

    def gather_objects(self, obj) -> list:
        """`obj` from every process, in rank order (one process: [obj])."""
        return [obj]

    def any_true(self, flag: bool) -> bool:
        """Whether `flag` is true on any process (for stopping all ranks at the same step)."""
        return flag

    def _count_gossip(self, tensors: list[Tensor], rounds: int, step: int) -> None:
        """Messages and bytes of `rounds` rounds: one message per directed edge per round."""
        per_worker = sum(t[0].numel() * t.element_size() for t in tensors) if tensors else 0
        for j in range(rounds):
            sent = self._messages_per_round(step * rounds + j)
            self.traffic.messages += sent
            self.traffic.bytes += sent * per_worker
        self.traffic.gossip_rounds += rounds

    def _messages_per_round(self, round_index: int) -> int:
        cache = self.__dict__.setdefault("_sent_cache", {})
        key = round_index % self.topology.period
        if key not in cache:
            cache[key] = sum(len(self.topology.out_neighbors(i, round_index)) for i in self.workers)
        return cache[key]

    def _count_allreduce(self, tensors: list[Tensor]) -> None:
        """Ring all-reduce: each worker sends 2(N-1) messages carrying 2(N-1)/N of the data."""
        n = self.n_workers
        per_worker = sum(t[0].numel() * t.element_size() for t in tensors) if tensors else 0
        self.traffic.messages += 2 * (n - 1) * self.n_local
        self.traffic.bytes += (2 * (n - 1) * per_worker // n) * self.n_local
        self.traffic.allreduces += 1
