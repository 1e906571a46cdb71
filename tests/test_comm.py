"""SimComm: sparse and dense mixing against an independent W^t @ X, the all-worker mean, the
traffic counters (gossip: one message per directed edge per round; all-reduce: ring model),
no mutation of the inputs, and preservation of the worker-axis average."""

import numpy as np
import pytest
import torch

from gossipgan import topology as topo
from gossipgan.comm import Communicator, SimComm, Traffic
from gossipgan.errors import ConfigError

torch.set_num_threads(1)
F64 = torch.float64

# name -> builder; every static and time-varying kind the simulator must handle
TOPOLOGIES = {
    "ring8": lambda: topo.ring(8),
    "ring2": lambda: topo.ring(2),
    "torus9": lambda: topo.torus(9),
    "torus12": lambda: topo.torus(12),
    "hypercube8": lambda: topo.hypercube(8),
    "exponential12": lambda: topo.exponential(12),  # directed, not symmetric
    "one_peer8": lambda: topo.one_peer_exponential(8),  # time-varying, period 3
    "one_peer6": lambda: topo.one_peer_exponential(6),  # time-varying, N not a power of 2
    "star5": lambda: topo.star(5),
    "erdos_renyi10": lambda: topo.erdos_renyi(10, p=0.4, seed=3),
    "complete4": lambda: topo.complete(4),
}


WIDE = 10_000  # elements per worker: above any sparse-path switch point of these graphs


def reference_mix(t: topo.Topology, x: torch.Tensor, rounds: int, step: int) -> torch.Tensor:
    """W_{r+t-1} ... W_r @ X with r = step * rounds, one plain dense round at a time."""
    out = x.reshape(x.shape[0], -1).clone()
    for r in range(step * rounds, step * rounds + rounds):
        w = torch.tensor(t.matrices[r % len(t.matrices)], dtype=x.dtype)
        out = w @ out
    return out.view_as(x)


def directed_edges(t: topo.Topology, round_index: int) -> int:
    m = np.asarray(t.matrices[round_index % len(t.matrices)])
    return int(((m > 0) & ~np.eye(len(m), dtype=bool)).sum())


@pytest.mark.parametrize("mode", ["sparse", "dense"])
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_mix_equals_w_power_times_x(name, mode):
    t = TOPOLOGIES[name]()
    comm = SimComm(t, mode=mode)
    assert comm.mode == mode
    gen = torch.Generator().manual_seed(1)
    # narrow and wide rows: the sparse mixer may take a different path for each (gathered
    # neighbour slots for short rows, in-place diagonal runs for long ones)
    xs = [torch.randn(t.n_workers, 3, 2, generator=gen, dtype=F64),
          torch.randn(t.n_workers, 5, generator=gen, dtype=F64),
          torch.randn(t.n_workers, 4, WIDE // 4, generator=gen, dtype=F64)]
    for step in (0, 1, 2, 5):
        for rounds in (1, 2, 3):
            out = comm.mix(xs, rounds, step)
            for x, o in zip(xs, out, strict=True):
                assert o.shape == x.shape
                torch.testing.assert_close(o, reference_mix(t, x, rounds, step),
                                           rtol=0, atol=1e-12)


def test_time_varying_rounds_are_indexed_by_step():
    """One-peer exponential, N=8: round r pairs i with i + 2^(r mod 3); one round from step s
    with t=1 is W_s, and 3 rounds from step 0 give the exact average."""
    t = topo.one_peer_exponential(8)
    comm = SimComm(t, mode="sparse")
    x = torch.arange(8, dtype=F64).unsqueeze(1)
    for step in range(4):
        hop = 2 ** (step % 3)
        expect = (x + x.roll(hop, dims=0)) / 2  # i receives from i - 2^r
        torch.testing.assert_close(comm.mix([x], 1, step)[0], expect, rtol=0, atol=0)
    full = comm.mix([x], 3, 0)[0]
    torch.testing.assert_close(full, torch.full_like(x, 3.5), rtol=0, atol=1e-14)
    # rounds 3..5 (step 1 with t = 3) are the same three matrices: still exact
    torch.testing.assert_close(comm.mix([x], 3, 1)[0], torch.full_like(x, 3.5), rtol=0,
                               atol=1e-14)
    # two rounds are not enough
    assert (comm.mix([x], 2, 0)[0] - 3.5).abs().max() > 0.5


def test_sparse_and_dense_agree_in_float32():
    t = topo.exponential(16)
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(2))
    a = SimComm(t, mode="sparse").mix([x], 3, 4)[0]
    b = SimComm(t, mode="dense").mix([x], 3, 4)[0]
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_auto_mode_picks_sparse_for_large_sparse_graphs():
    assert SimComm(topo.ring(8)).mode == "dense"
    assert SimComm(topo.ring(64)).mode == "sparse"
    assert SimComm(topo.complete(64)).mode == "dense"
    with pytest.raises(ConfigError, match="mixing mode"):
        SimComm(topo.ring(8), mode="fast")


@pytest.mark.parametrize("mode", ["sparse", "dense"])
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_mix_does_not_modify_inputs_and_preserves_average(name, mode):
    t = TOPOLOGIES[name]()
    comm = SimComm(t, mode=mode)
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(t.n_workers, 7, generator=gen, dtype=F64),
          torch.randn(t.n_workers, WIDE, generator=gen, dtype=F64)]
    keep = [x.clone() for x in xs]
    for rounds in (1, 4):
        outs = comm.mix(xs, rounds, 1)
        for x, k, out in zip(xs, keep, outs, strict=True):
            assert torch.equal(x, k)
            assert out.data_ptr() != x.data_ptr()
            out.add_(1.0)  # the result is a new tensor: writing it leaves the input alone
            assert torch.equal(x, k)
            torch.testing.assert_close(out.sub_(1.0).mean(0), x.mean(0), rtol=0, atol=1e-13)
            assert not torch.allclose(out, x)  # it did mix something


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_mean_and_average(name):
    t = TOPOLOGIES[name]()
    comm = SimComm(t)
    x = torch.randn(t.n_workers, 2, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    keep = x.clone()
    m = comm.mean([x])[0]
    assert m.shape == x.shape
    expect = x.sum(0) / t.n_workers
    for i in range(t.n_workers):
        torch.testing.assert_close(m[i], expect, rtol=0, atol=1e-14)
    m[0].add_(1.0)  # not an expanded view: rows are independent storage
    torch.testing.assert_close(m[1], expect, rtol=0, atol=1e-14)
    assert torch.equal(x, keep)
    avg = comm.average([x])[0]
    assert avg.shape == x.shape[1:]
    torch.testing.assert_close(avg, expect, rtol=0, atol=1e-14)
    assert comm.traffic.allreduces == 1  # average() is for metrics: not counted


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_gossip_traffic_counts_directed_edges(name):
    t = TOPOLOGIES[name]()
    comm = SimComm(t)
    assert comm.traffic == Traffic()
    xs = [torch.zeros(t.n_workers, 3, 4), torch.zeros(t.n_workers, 5, dtype=F64)]
    per_worker = 3 * 4 * 4 + 5 * 8
    expect_msgs = 0
    calls = [(1, 0), (2, 1), (3, 2), (1, 7)]
    for rounds, step in calls:
        comm.mix(xs, rounds, step)
        expect_msgs += sum(directed_edges(t, r) for r in range(step * rounds, (step + 1) * rounds))
    assert comm.traffic.messages == expect_msgs
    assert comm.traffic.bytes == expect_msgs * per_worker
    assert comm.traffic.gossip_rounds == sum(r for r, _ in calls)
    assert comm.traffic.allreduces == 0
    assert comm.traffic.seconds > 0


@pytest.mark.parametrize(
    "topology, edges_per_round",
    [(topo.ring(8), 16), (topo.torus(9), 36), (topo.hypercube(8), 24),
     (topo.exponential(8), 24), (topo.one_peer_exponential(8), 8), (topo.star(6), 10),
     (topo.complete(5), 20)],
    ids=["ring", "torus", "hypercube", "exponential", "one_peer", "star", "complete"],
)
def test_gossip_traffic_known_edge_counts(topology, edges_per_round):
    comm = SimComm(topology)
    x = torch.zeros(topology.n_workers, 10)  # 40 bytes per worker
    comm.mix([x], 3, 0)
    assert comm.traffic.messages == 3 * edges_per_round
    assert comm.traffic.bytes == 3 * edges_per_round * 40


@pytest.mark.parametrize("n", [2, 5, 8])
def test_allreduce_traffic_ring_model(n):
    comm = SimComm(topo.complete(n) if n == 5 else topo.ring(n))
    xs = [torch.zeros(n, 100), torch.zeros(n, 3, dtype=F64)]
    per_worker = 100 * 4 + 3 * 8
    comm.mean(xs)
    comm.mean(xs)
    assert comm.traffic.allreduces == 2
    assert comm.traffic.messages == 2 * (2 * (n - 1) * n)
    assert comm.traffic.bytes == 2 * (2 * (n - 1) * per_worker // n) * n
    assert comm.traffic.gossip_rounds == 0


def test_traffic_state_dict_round_trip():
    comm = SimComm(topo.ring(4))
    comm.mix([torch.zeros(4, 2)], 2, 0)
    comm.mean([torch.zeros(4, 2)])
    saved = comm.traffic.state_dict()
    other = SimComm(topo.ring(4))
    other.traffic.load_state_dict(saved)
    assert other.traffic == comm.traffic
    assert isinstance(other.traffic.messages, int)


def test_simcomm_is_a_communicator_over_all_workers():
    comm = SimComm(topo.ring(6))
    assert isinstance(comm, Communicator)
    assert comm.workers == list(range(6))
    assert comm.n_workers == comm.n_local == 6
    assert comm.is_main
    comm.barrier()
