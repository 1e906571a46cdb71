"""The α–β model of communication time (DESIGN.md §7): `time = hops·α + bytes/β`.

α is the one-way time of a tiny message between two workers (latency plus software overhead),
β the bytes per second one worker's link carries in each direction. Each worker has ONE link
(a NIC into a switch), so messages a worker sends to several neighbours in the same round
share its upload, and messages it receives share its download:

- ring all-reduce (reduce-scatter + all-gather, what gloo runs): 2(N−1) steps one after the
  other, each moving n/N bytes per worker: `2(N−1)·α + 2(N−1)/N · n/β`
- one gossip round: every worker sends n bytes to each of its out-neighbours and receives n
  bytes from each in-neighbour, all at once: `α + fan·n/β` with fan the largest in- or
  out-degree of that round (ring: 2; static exponential, N=8: 3; one-peer exponential: 1)
- t rounds: the sum over the rounds (a time-varying schedule may change fan by round)

Those are the textbook hop counts (`protocol="textbook"`). gloo, which carries the CPU runs,
pays more latency (`protocol="gloo"`, measured on the emulated link, DESIGN.md §7): its
send of an unbound buffer starts only once the receiver's "recv ready" notice has arrived, so
a send and receive posted together cost TWO one-way latencies (`2α + fan·n/β` per gossip
round); its ring all-reduce splits the data into >= 2N segments with two in flight, each
pair of segments waiting for that notice, which costs 4(N−1)·α (2(N−1)·α when fewer than 2N
elements leave segments empty) plus the same 2(N−1)/N · n/β.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gossipgan.errors import ConfigError
from gossipgan.topology import Topology

PROTOCOLS = ("textbook", "gloo")
P2P_HOPS = 2  # gloo: the receiver's ready notice, then the data


def _check(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown α–β protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


@dataclass(frozen=True)
class AlphaBeta:
    """α, β of one link; `app_delay_s` is a delay the application adds once per textbook hop
    (the no-root fallback's DistComm sleep), which no transport handshake repeats."""

    alpha_s: float    # one-way time of a tiny message, seconds
    beta_Bps: float   # link bandwidth per direction, bytes per second
    app_delay_s: float = 0.0

    def __post_init__(self):
        if not (self.alpha_s >= 0 and self.beta_Bps > 0 and self.app_delay_s >= 0):
            raise ConfigError(f"α–β model needs α >= 0, β > 0 and a delay >= 0, got "
                              f"α={self.alpha_s}, β={self.beta_Bps}, delay={self.app_delay_s}")

    def _latency(self, hops: int, protocol_hops: int) -> float:
        return protocol_hops * self.alpha_s + hops * self.app_delay_s

    def message(self, nbytes: float) -> float:
        """One message of `nbytes` over one link."""
        return self._latency(1, 1) + nbytes / self.beta_Bps

    def allreduce(self, n_workers: int, nbytes: float, protocol: str = "textbook") -> float:
        """Ring all-reduce of `nbytes` per worker over `n_workers` workers."""
        if n_workers < 2:
            return 0.0
        steps = 2 * (n_workers - 1)
        hops = steps
        if _check(protocol) == "gloo" and nbytes >= 4 * 2 * n_workers:
            hops = 2 * steps
        return self._latency(steps, hops) + steps / n_workers * nbytes / self.beta_Bps

    def gossip_round(self, fan: int, nbytes: float, protocol: str = "textbook") -> float:
        """One round in which the busiest worker sends (or receives) `fan` messages."""
        if not fan:
            return 0.0
        hops = P2P_HOPS if _check(protocol) == "gloo" else 1
        return self._latency(1, hops) + fan * nbytes / self.beta_Bps

    def mix(self, topology: Topology, rounds: int, nbytes: float, start_round: int = 0,
            protocol: str = "textbook") -> float:
        """`rounds` gossip rounds of `topology` starting at global round `start_round`."""
        return sum(self.gossip_round(round_fan(topology, start_round + j), nbytes, protocol)
                   for j in range(rounds))

    def mix_average(self, topology: Topology, rounds: int, nbytes: float,
                    protocol: str = "textbook") -> float:
        """Average over one period of the schedule of `mix` (what a long run pays per call)."""
        period = topology.period
        calls = period // math.gcd(period, rounds)  # calls until the start round repeats
        return sum(self.mix(topology, rounds, nbytes, c * rounds, protocol)
                   for c in range(calls)) / calls


def round_fan(topology: Topology, round_index: int) -> int:
    """The largest number of messages one worker sends or receives in that round."""
    n = topology.n_workers
    return max(max(len(topology.out_neighbors(i, round_index)),
                   len(topology.in_neighbors(i, round_index))) for i in range(n))


def fit(sizes: list[float], times: list[float]) -> AlphaBeta:
    """Least-squares α, β from one-way times of messages of several sizes (>= 2 sizes)."""
    if len(sizes) != len(times) or len(set(sizes)) < 2:
        raise ConfigError("fitting α and β needs one-way times for at least two message sizes")
    n = len(sizes)
    mean_s, mean_t = sum(sizes) / n, sum(times) / n
    var = sum((s - mean_s) ** 2 for s in sizes)
    slope = sum((s - mean_s) * (t - mean_t) for s, t in zip(sizes, times, strict=True)) / var
    if slope <= 0:
        raise ConfigError(f"message time does not grow with size (sizes {sizes}, times "
                          f"{times}): cannot estimate bandwidth")
    return AlphaBeta(max(0.0, mean_t - slope * mean_s), 1.0 / slope)


def from_two_points(tiny_s: float, big_bytes: float, big_s: float) -> AlphaBeta:
    """α from a tiny message's one-way time, β from a big one's: β = bytes / (t_big − α)."""
    if big_s <= tiny_s:
        raise ConfigError(f"a {big_bytes:.0f}-byte message took no longer than a tiny one "
                          f"({big_s:.6f} s vs {tiny_s:.6f} s): cannot estimate bandwidth")
    return AlphaBeta(tiny_s, big_bytes / (big_s - tiny_s))


def from_exchange(tiny_s: float, nbytes: float, exchange_s: float,
                  fallback: AlphaBeta | None = None) -> AlphaBeta:
    """α from a tiny message's one-way time, β from a two-way exchange of `nbytes` posted as
    gloo posts it: `exchange_s = P2P_HOPS·α + nbytes/β`. If the exchange took no longer than
    its latency (a measurement swamped by noise), `fallback` is returned when given."""
    left = exchange_s - P2P_HOPS * tiny_s
    if left <= 0:
        if fallback is not None:
            return fallback
        raise ConfigError(f"a {nbytes:.0f}-byte exchange took {exchange_s:.6f} s, no longer "
                          f"than {P2P_HOPS} one-way latencies of {tiny_s:.6f} s: cannot "
                          "estimate bandwidth")
    return AlphaBeta(tiny_s, nbytes / left)


def predict(model: AlphaBeta, topology: Topology, *, centralized: bool, rounds: int,
            nbytes: float, phases: int = 1, protocol: str = "textbook") -> float:
    """Communication time of one training iteration: `phases` all-reduces (centralized) or
    `phases` gossip phases of `rounds` rounds each, averaged over the schedule's period."""
    if centralized:
        return phases * model.allreduce(topology.n_workers, nbytes, protocol)
    return phases * model.mix_average(topology, rounds, nbytes, protocol)
