"""A live peer: decent-dp's neighbour exchange beside DistComm's, same schedule, same bytes.

decent-dp (PyPI `decent-dp`, an optional extra of the benchmark, never a dependency of the
package) expresses pairwise schedules: each round every worker averages with exactly one
partner. Its `one-peer-exp` (round r pairs j with j + 2^r) and its alternating `ring` (pairs
(2i, 2i+1), then (2i, 2i−1)) are compared here; it has no way to express the 3-neighbour ring.

decent-dp's step, copied from `DecentralizedDataParallel._ddp_fn` without the optimizer:
scale a copy of the parameters, `all_reduce` it in the 2-rank process group of this round's
edge, then `x = w·x + buffer`. gossipgan's step: `DistComm.mix` on a `Topology` built from the
SAME edge list (W_r averages each pair), i.e. one batched send/recv with the partner. Both run
back to back for the same number of steps on the same number of float32s; the slowest rank's
mean time per step is reported.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.distributed as dist

from gossipgan.comm.dist import DistComm
from gossipgan.topology import Topology

SCHEDULES = ("one-peer-exp", "ring")
STEPS = 12


def unavailable_reason(n_workers: int, name: str) -> str | None:
    """Why decent-dp cannot run `name` on `n_workers` workers (None: it can)."""
    if name == "one-peer-exp" and n_workers & (n_workers - 1):
        return "decent-dp's one-peer-exp needs a power-of-two number of workers"
    if name == "ring" and n_workers % 2:
        return "decent-dp's ring needs an even number of workers"
    return None


def schedule_topology(edges: list[list], n_workers: int, name: str) -> Topology:
    """gossipgan's Topology for decent-dp's edge lists (one list of pairs per round)."""
    mats = []
    for round_edges in edges:
        w = np.zeros((n_workers, n_workers))
        for edge in round_edges:
            ranks = list(edge.ranks)
            share = 1.0 / len(ranks)
            for a in ranks:
                for b in ranks:
                    w[a, b] = share
        mats.append(w)
    return Topology(f"decent-dp {name}", tuple(mats))


def _slowest_mean(seconds: float) -> float:
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, seconds)
    return max(everyone)


def _time_decent(topo, x: torch.Tensor, delay_s: float) -> float:
    buf = torch.empty_like(x)

    def step(k: int) -> None:
        edge = topo.get_edge(k)
        w, size = edge.weight, len(edge.ranks)
        buf.copy_(x).mul_((1 - w) / (size - 1))
        if delay_s:
            time.sleep(delay_s)  # the same application-level per-hop delay DistComm adds
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=edge.group, async_op=True).wait()
        x.mul_(w - (1 - w) / (size - 1)).add_(buf)

    step(0)
    dist.barrier()
    t0 = time.perf_counter()
    for k in range(1, STEPS + 1):
        step(k)
    return _slowest_mean((time.perf_counter() - t0) / STEPS)


def _time_gossipgan(topology: Topology, x: torch.Tensor, delay_s: float) -> float:
    comm = DistComm(topology, delay_s=delay_s)
    xs = [x.view(1, -1)]
    xs = comm.mix(xs, 1, 0)
    dist.barrier()
    t0 = time.perf_counter()
    for k in range(1, STEPS + 1):
        xs = comm.mix(xs, 1, k)
    return _slowest_mean((time.perf_counter() - t0) / STEPS)


def compare(n_floats: int, spec: dict) -> list[dict]:
    """One row per schedule: seconds per step for decent-dp and gossipgan, and their ratio."""
    n = dist.get_world_size()
    try:
        from decent_dp import topo as dtopo
    except ImportError as err:
        return [{"schedule": s, "status": f"decent-dp not installed ({err}); "
                 "pip install --no-deps decent-dp loguru"} for s in SCHEDULES]
    delay = spec["delay_s"] if spec["emulation"] == "app-delay" else 0.0
    rows = []
    for name in SCHEDULES:
        reason = unavailable_reason(n, name)
        if reason:
            rows.append({"schedule": name, "status": reason})
            continue
        peer = dtopo.TopologyReg.registry[name](1)  # one process per node
        topology = schedule_topology(peer._get_topo_edges(), n, name)
        torch.manual_seed(dist.get_rank())
        x = torch.randn(n_floats)
        # Alternate the order so neither side always runs on the warmer connection.
        g1 = _time_gossipgan(topology, x.clone(), delay)
        d1 = _time_decent(peer, x.clone(), delay)
        d2 = _time_decent(peer, x.clone(), delay)
        g2 = _time_gossipgan(topology, x.clone(), delay)
        ours, theirs = statistics.mean([g1, g2]), statistics.mean([d1, d2])
        rows.append({"schedule": name, "status": "ok", "bytes": 4 * n_floats,
                     "gossipgan_s": ours, "decent_dp_s": theirs, "ratio": ours / theirs,
                     "steps": 2 * STEPS})
    return rows
