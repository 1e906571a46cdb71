"""The network benchmark: units, the α–β model, grid validation, the delay line, and (root
only) the namespace network: cleanup on failure and interruption, shaped rate and delay."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossipgan import topology as topo
from gossipgan.cli import main as cli_main
from gossipgan.errors import ConfigError
from gossipgan.netem import alphabeta, grid, namespaces, net
from gossipgan.netem.alphabeta import AlphaBeta
from gossipgan.netem.router import DelayLine
from gossipgan.netem.units import format_rate, parse_delay, parse_rate

ROOT = os.geteuid() == 0 and Path("/dev/net/tun").exists() and bool(
    subprocess.run(["which", "ip", "tc"], capture_output=True).returncode == 0)
needs_root = pytest.mark.skipif(not ROOT, reason="needs root, iproute2 and /dev/net/tun")
OURS = re.compile(r"^gg[0-9a-f]{6}(h|w\d+)$")


# --- units -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, bits", [("100mbit", 1e8), ("1gbit", 1e9), ("1Gbit/s", 1e9),
                                        ("2.5Mbps", 2.5e6), ("640kbit", 6.4e5)])
def test_parse_rate(text, bits):
    assert parse_rate(text) == pytest.approx(bits)


@pytest.mark.parametrize("text", ["100", "100mbyte", "-5mbit", "0mbit", "fast", "", "1e400gbit"])
def test_parse_rate_rejects(text):
    with pytest.raises(ConfigError, match="bandwidth"):
        parse_rate(text)


@pytest.mark.parametrize("text, seconds", [("0", 0.0), ("0ms", 0.0), ("20ms", 0.02),
                                           ("500us", 5e-4), ("0.1s", 0.1)])
def test_parse_delay(text, seconds):
    assert parse_delay(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["20", "-5ms", "5 minutes", "ms", "20h", "11s"])
def test_parse_delay_rejects(text):
    with pytest.raises(ConfigError, match="latency"):
        parse_delay(text)


def test_format_rate():
    assert format_rate(1e8) == "100Mbit/s" and format_rate(None) == "unshaped"


# --- the α–β model, against hand-computed cases --------------------------------------------
AB = AlphaBeta(alpha_s=1e-3, beta_Bps=1e6)   # 1 ms, 1 MB/s
N_BYTES = 1e6                                # one second of link time


@pytest.mark.parametrize("name, n, protocol, expected", [
    # ring: fan 2 -> α + 2 s; gloo pays 2 α per p2p round
    ("ring", 8, "textbook", 1e-3 + 2.0),
    ("ring", 8, "gloo", 2e-3 + 2.0),
    ("ring", 2, "textbook", 1e-3 + 1.0),          # two workers: one neighbour
    ("exponential", 8, "textbook", 1e-3 + 3.0),   # i+1, i+2, i+4
    ("exponential", 16, "gloo", 2e-3 + 4.0),
    ("one_peer_exponential", 8, "textbook", 1e-3 + 1.0),
    ("complete", 4, "textbook", 1e-3 + 3.0),
])
def test_gossip_prediction(name, n, protocol, expected):
    t = topo.build(name, n)
    got = alphabeta.predict(AB, t, centralized=False, rounds=1, nbytes=N_BYTES, protocol=protocol)
    assert got == pytest.approx(expected)
    two = alphabeta.predict(AB, t, centralized=False, rounds=2, nbytes=N_BYTES, protocol=protocol)
    assert two == pytest.approx(2 * expected)


@pytest.mark.parametrize("n, protocol, nbytes, expected", [
    (8, "textbook", 1e6, 14e-3 + 14 / 8),        # 2(N-1) α + 2(N-1)/N n/β
    (8, "gloo", 1e6, 28e-3 + 14 / 8),            # gloo's pipelined ring: 4(N-1) α
    (8, "gloo", 4.0, 14e-3 + 14 / 8 * 4e-6),     # one float: empty segments, 2(N-1) α
    (2, "textbook", 1e6, 2e-3 + 1.0),
    (1, "textbook", 1e6, 0.0),
])
def test_allreduce_prediction(n, protocol, nbytes, expected):
    assert AB.allreduce(n, nbytes, protocol) == pytest.approx(expected)
    t = topo.build("ring", max(n, 2))
    if n >= 2:
        got = alphabeta.predict(AB, t, centralized=True, rounds=3, nbytes=nbytes, protocol=protocol)
        assert got == pytest.approx(expected)  # rounds do not apply to all-reduce


def test_app_delay_is_added_once_per_hop():
    ab = AlphaBeta(alpha_s=1e-4, beta_Bps=1e6, app_delay_s=0.02)
    assert ab.gossip_round(2, 1e6, "gloo") == pytest.approx(2e-4 + 0.02 + 2.0)
    assert ab.allreduce(4, 1e6, "gloo") == pytest.approx(12 * 1e-4 + 6 * 0.02 + 1.5)


def test_fit_and_two_points_recover_alpha_beta():
    sizes = [4.0, 1e5, 1e6]
    ab = alphabeta.fit(sizes, [AB.message(s) for s in sizes])
    assert ab.alpha_s == pytest.approx(1e-3) and ab.beta_Bps == pytest.approx(1e6)
    two = alphabeta.from_two_points(0.001, 2e6, 2.001)  # 2 MB took 2 s more than 4 bytes
    assert two.alpha_s == pytest.approx(1e-3) and two.beta_Bps == pytest.approx(1e6)
    with pytest.raises(ConfigError):
        alphabeta.from_two_points(0.01, 1e6, 0.005)
    # a 1 MB exchange in 1.02 s with α = 10 ms: gloo's two latencies, then 1 s of bytes
    ex = alphabeta.from_exchange(0.01, 1e6, 1.02)
    assert ex.alpha_s == pytest.approx(0.01) and ex.beta_Bps == pytest.approx(1e6)
    assert alphabeta.from_exchange(0.01, 1e6, 0.015, fallback=two) is two
    with pytest.raises(ConfigError, match="no longer than 2 one-way latencies"):
        alphabeta.from_exchange(0.01, 1e6, 0.015)
    with pytest.raises(ConfigError):
        AlphaBeta(alpha_s=-1.0, beta_Bps=1.0)
    with pytest.raises(ConfigError, match="protocol"):
        AB.gossip_round(1, 1.0, "mpi")


# --- the grid and the CLI's errors ---------------------------------------------------------
def test_default_grid_cells():
    cells = grid.Grid().cells()
    assert len(cells) == 2 * 3 * 2 + 2 + 2
    central = [c for c in cells if c["topology"] == "all_reduce"]
    assert {c["algo"] for c in central} == {"cposg", "cpoadam"}
    compressed = [c["name"] for c in cells if c["compression"] != "none"]
    assert compressed == ["dpoadam-ring-t1-topk0.05", "dpoadam-ring-t1-qsgd4"]
    assert grid.Grid().baselines() == ["ddp-adam", "ddp-adam-fp16"]
    assert grid.Grid(emulation="app-delay").baselines() == []  # its delay is DistComm's
    assert all(c["compression"] == "none" for c in grid.Grid(algos=["dposg"]).cells())
    assert len(grid.Grid().conditions()) == 6


@pytest.mark.parametrize("argv, message", [
    (["--algos", "dposg,sgd"], "unknown algorithm 'sgd'"),
    (["--topologies", "ring,moebius"], "unknown topology 'moebius'"),
    (["--topologies", "hypercube", "--workers", "6"], "power-of-two"),
    (["--bandwidth", "100"], "bandwidth must be a positive number with a unit"),
    (["--latency", "20"], "latency must be a non-negative number with a unit"),
    (["--workers", "100000"], "needs 2..[0-9]+ workers on this machine"),
    (["--rounds", "1,x"], "comma list of integers"),
    (["--app-delay", "--bandwidth", "1gbit"], "cannot limit bandwidth"),
    (["--shaper", "netem"], "invalid choice: 'netem'"),
    (["--compression", "qsgd:3"], "bits must be one of 8, 4, 2"),
    (["--compression", "none"], "'none' is every other cell"),
    (["--ddp", "horovod"], "unknown DDP baseline 'horovod'"),
    (["--consensus-step", "2"], "consensus_step must be in"),
])
def test_cli_bad_input(argv, message, capsys, tmp_path):
    try:
        code = cli_main(["bench", "network", *argv, "--out", str(tmp_path)])
    except SystemExit as e:  # argparse's own usage errors (one line, exit 2)
        code = e.code
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_plots_keep_compressed_and_ddp_cells_apart():
    """Each cell is its own series with its own look: a compressed cell is not drawn into the
    uncompressed cell of the same algorithm and topology, nor DDP into CPOAdam."""
    from gossipgan.netem import plots

    base = {"algo": "dpoadam", "topology": "ring", "rounds": 1, "compression": "none",
            "bandwidth": "1Gbit/s", "latency_ms": 20.0, "wall_per_iter_ms": 1.0,
            "comm_per_iter_ms": 1.0}
    rows = [base, {**base, "compression": "topk:0.05", "consensus_step": 0.1},
            {**base, "compression": "qsgd:4", "consensus_step": 1.0},
            {**base, "algo": "cpoadam", "topology": "all_reduce"},
            {**base, "algo": "ddp-adam", "topology": "all_reduce"}]
    (cells,) = plots._series(rows, "bandwidth", "latency_ms").values()
    assert list(cells) == ["dpoadam ring t=1", "dpoadam ring t=1 topk:0.05 γ=0.1",
                           "dpoadam ring t=1 qsgd:4 γ=1", "cpoadam all-reduce", "ddp-adam"]
    looks = [tuple(sorted((k, str(v)) for k, v in plots._style(r).items())) for r in rows]
    assert len(set(looks)) == len(rows)


def test_conditions_run_fastest_rate_first():
    g = grid.Grid(bandwidths=["10mbit", "1gbit"], latencies=["20ms", "0"])
    assert g.conditions() == [(1e9, 0.0), (1e9, 0.02), (1e7, 0.0), (1e7, 0.02)]
    assert grid.Grid(emulation="app-delay").conditions() == [(None, 0.0), (None, 0.005),
                                                             (None, 0.02)]
    with pytest.raises(ConfigError, match="unknown shaper"):
        grid.Grid(shaper="netem").validate()


def test_mtu_follows_the_rate():
    assert net.mtu_for(None) == net.MTU
    assert net.mtu_for(1e9) == 62500      # 0.5 ms of link time per packet
    assert net.mtu_for(1e8) == 6250
    assert net.mtu_for(1e6) == 1500       # never below Ethernet's


def test_not_root_names_the_fallback(monkeypatch):
    monkeypatch.setattr(net, "is_root", lambda: False)
    with pytest.raises(ConfigError, match="needs root.*--app-delay"):
        grid.Grid(workers=2).validate()
    with pytest.raises(ConfigError, match="--app-delay"):
        net.Network(2)
    grid.Grid(workers=2, emulation="app-delay").validate()  # the fallback needs no root


# --- the delay line ------------------------------------------------------------------------
def test_delay_line_holds_each_packet_its_delay():
    line = DelayLine(0.02)
    line.push(b"a", now=1.0)
    line.push(b"b", now=1.005)
    assert line.timeout(1.0) == pytest.approx(0.02)
    assert line.pop_due(1.019) == []
    assert line.pop_due(1.0201) == [b"a"]
    line.delay_s = 0.0  # a changed delay applies to packets that arrive later
    line.push(b"c", now=1.021)
    assert line.pop_due(1.021) == [b"c"] and line.pop_due(1.025) == [b"b"]
    assert line.timeout(2.0) is None and line.forwarded == 3


# --- root only: the real network -------------------------------------------------------------
def _ours() -> set[str]:
    return {n for n in namespaces.list_namespaces() if OURS.match(n)}


@needs_root
def test_network_removes_everything_on_failure():
    before = namespaces.list_namespaces()
    with pytest.raises(RuntimeError, match="boom"):
        with net.Network(3) as network:
            assert set(network.workers) | {network.hub} <= set(namespaces.list_namespaces())
            network.shape(50e6, 0.005)
            network.popen(0, ["sleep", "30"])  # a process inside a namespace
            raise RuntimeError("boom")
    assert namespaces.list_namespaces() == before or not (_ours() - set(before))
    assert not (set(network.workers) | {network.hub}) & set(namespaces.list_namespaces())
    assert not (namespaces.OWNER_DIR / network.id).exists()


@needs_root
def test_interrupted_benchmark_leaves_nothing(tmp_path):
    """Ctrl-C half-way through `gossipgan bench network`: no namespace is left."""
    before = set(namespaces.list_namespaces())
    proc = subprocess.Popen([sys.executable, "-m", "gossipgan", "bench", "network", "--workers",
                             "2", "--iters", "5", "--no-peer", "--algos", "dposg",
                             "--topologies", "ring", "--rounds", "1", "--bandwidth", "50mbit",
                             "--latency", "5ms", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    created: set[str] = set()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(created) < 3:
        created |= {n for n in namespaces.list_namespaces() if OURS.match(n)} - before
        time.sleep(0.1)
    assert len(created) == 3, proc.communicate(timeout=30)[0]
    time.sleep(1.0)  # the workers are starting inside the namespaces
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert not created & set(namespaces.list_namespaces())
    assert not ({n for n in namespaces.list_namespaces() if OURS.match(n)} - before)


@needs_root
def test_remove_stale_clears_a_killed_run():
    code = ("import time; from gossipgan.netem.net import Network\n"
            "n = Network(2); n.setup(); print(n.id, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    ident = proc.stdout.readline().strip()
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    left = {n for n in namespaces.list_namespaces() if n.startswith(f"gg{ident}")}
    assert len(left) == 3
    assert left <= set(namespaces.remove_stale())
    assert not {n for n in namespaces.list_namespaces() if n.startswith(f"gg{ident}")}


@needs_root
def test_two_worker_namespace_benchmark(tmp_path, capsys):
    """10 iterations on 2 namespaced workers: the measured link matches what was asked."""
    before = set(namespaces.list_namespaces())
    code = cli_main(["bench", "network", "--workers", "2", "--iters", "10", "--algos", "dposg",
                     "--topologies", "ring", "--rounds", "1", "--bandwidth", "50mbit",
                     "--latency", "10ms", "--no-peer", "--ddp", "", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    with (tmp_path / "results.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["beta_mbit"]) == pytest.approx(50, rel=0.2), row
    assert float(row["alpha_ms"]) == pytest.approx(10, rel=0.2), row
    assert float(row["wall_per_iter_ms"]) > float(row["comm_per_iter_ms"]) > 0, row
    assert float(row["bytes_per_iter"]) == pytest.approx(float(row["message_bytes"]), rel=0.01)
    assert (tmp_path / "plots" / "iteration_vs_latency.png").is_file()
    assert set(namespaces.list_namespaces()) - before == set()


def test_app_delay_fallback_end_to_end(tmp_path, capsys):
    """The no-root fallback: real workers on loopback, DistComm's per-hop delay, labelled."""
    code = cli_main(["bench", "network", "--app-delay", "--workers", "2", "--iters", "3",
                     "--algos", "dposg", "--topologies", "ring", "--rounds", "1",
                     "--latency", "5ms", "--no-peer", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    with (tmp_path / "results.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert "FALLBACK" in row["emulation_note"] and row["bandwidth"] == "loopback"
    assert float(row["comm_alone_ms"]) >= 5.0, row  # one 5 ms hop per gossip round
    assert float(row["alpha_ms"]) >= 5.0, row


DDP_DRIVER = """
import json, sys, torch
import torch.distributed as dist
from gossipgan.comm.dist import init_process_group
from gossipgan.netem import ddp
from gossipgan.netem.grid import Grid
torch.set_num_threads(1)
init_process_group("gloo")
spec = {"config": Grid(workers=2, iters=4).config().to_dict()}
from pathlib import Path
rows = [ddp.run_ddp(spec, name, Path(".")) for name in ddp.HOOKS]
if dist.get_rank() == 0:
    print(json.dumps(rows))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_baseline_trains_measures_and_counts_bytes(tmp_path):
    """The users' DDP + Adam loop on 2 gloo ranks: cls_fid of its generator at each evaluation,
    and the hook's byte count = a ring all-reduce of both models' gradients per iteration."""
    script = tmp_path / "driver.py"
    script.write_text(DDP_DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script)], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    floats = sum(rows[0]["model_floats"])
    for row, size in zip(rows, (4, 2), strict=True):
        metrics = row["metrics"]
        assert [m["iter"] for m in metrics] == [1, 2, 3, 4]  # the grid's eval_every: 1
        assert all(m["cls_fid"] > 0 for m in metrics) and metrics[-1]["wall_s"] > 0
        # N = 2: a ring all-reduce sends 2(N-1)/N = all of each model's gradients per step
        assert [m["bytes_sent"] for m in metrics] == [k * size * floats for k in (1, 2, 3, 4)]
        assert row["iso_comm_s"] > 0
