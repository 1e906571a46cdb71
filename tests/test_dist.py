"""torch.distributed backend (issue 6): real gloo process groups launched with torchrun.

- the simulator and a 4-process run give the same iterates (three algorithms, two games, two
  topologies, one launch for all of them: tests/dist_helpers.py is the driver);
- a worker killed with SIGKILL mid-run: torchrun restarts the group, it resumes from the newest
  checkpoint every rank holds and ends bit-for-bit where an uninterrupted run ends;
- ranks disagreeing on the newest checkpoint (CheckpointStore against a fake communicator);
- two "machines": two network namespaces joined by a veth pair (root and `ip` only);
- bad inputs: exit status 2 and one line on stderr on every rank, never a hang.

Every subprocess runs under a timeout; launches are few (torchrun costs seconds each).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dist_helpers as h
import pytest
import torch

from gossipgan.errors import ConfigError
from gossipgan.train import train
from gossipgan.train.build import build_game
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.store import CheckpointStore

ATOL = 1e-5
EQUIVALENCE = [name for name in h.CONFIGS if name != "crash-reference"]


@pytest.fixture(scope="module")
def dist_runs(tmp_path_factory) -> Path:
    """Every config of dist_helpers.CONFIGS run by one 4-process torchrun launch."""
    out = tmp_path_factory.mktemp("dist")
    proc = h.run(h.torchrun(h.N, str(h.REPO / "tests" / "dist_helpers.py"), str(out), *h.CONFIGS),
                 timeout=240, env=h.child_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


# --- simulator == distributed ---------------------------------------------------------------

def _simulate(cfg, out: Path, monkeypatch) -> dict:
    """The simulator's final checkpoint for `cfg` (train() sets the thread count: restored)."""
    h.skip_pictures(monkeypatch.setattr)  # the driver did the same on every rank
    threads = torch.get_num_threads()
    try:
        train(cfg, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return load_checkpoint(out / "checkpoint.pt")


@pytest.mark.slow
@pytest.mark.parametrize("name", EQUIVALENCE)
def test_simulator_equals_distributed(name, dist_runs, tmp_path, monkeypatch):
    cfg = h.make_config(name, "sim")
    sim = _simulate(cfg, tmp_path, monkeypatch)
    assert sim["iteration"] == cfg.run.iters
    start = build_game(cfg, h.N).init_params(cfg.run.seed)
    for rank in range(h.N):
        mine = h.rank_params(dist_runs / name, rank, cfg.run.iters)
        assert set(mine) == set(sim["workers"]["params"])
        for key, value in mine.items():
            torch.testing.assert_close(value, sim["workers"]["params"][key][rank], rtol=0,
                                       atol=ATOL, msg=lambda m, k=key: f"{name} {k}: {m}")
    # The comparison means something only if the iterates moved and (gossip) workers differ.
    params = sim["workers"]["params"]
    moved = max((params[k] - start[k]).abs().max().item() for k in start)
    spread = max((params[k] - params[k][:1]).abs().max().item() for k in params)
    assert moved > 100 * ATOL
    if cfg.optim.algo.startswith("c"):
        assert spread == 0  # centralized: one all-reduced operator, identical workers
    else:
        assert spread > 10 * ATOL


# --- a worker dies, the run survives ---------------------------------------------------------

def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} was written"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_worker_restarts_and_matches_uninterrupted_run(dist_runs, tmp_path):
    out, logs = tmp_path / "run", tmp_path / "logs"
    # delay_ms (a per-hop sleep, not part of the maths) keeps the run going long after the
    # kill point on any machine, so the kill always lands mid-run.
    cmd = h.torchrun(h.N, "-m", "gossipgan", "train", "--backend", "dist", "--auto-resume",
                     "--out", str(out), "--no-progress",
                     *h.set_args(h.CRASH + ["run.delay_ms=25"]),
                     extra=("--max-restarts=1", "--log-dir", str(logs), "--redirects", "3"))
    proc = subprocess.Popen(cmd, env=h.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(out / "checkpoints" / "rank2-00000015.pt", proc, timeout=120)
        victim = h.rank_pid(proc.pid, rank=2)
        assert victim is not None, "no process with RANK=2 under torchrun"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        h.kill_group(proc)
    assert proc.returncode == 0, err[-4000:]
    attempts = sorted(p.name for p in logs.glob("*/attempt_*"))
    assert attempts == ["attempt_0", "attempt_1"], attempts  # exactly one restart
    restarted = next(logs.glob("*/attempt_1/0/stderr.log")).read_text()
    resumed = [line for line in restarted.splitlines() if "resuming from step" in line]
    assert resumed, restarted[-3000:]
    step = int(resumed[0].split("resuming from step ")[1].split()[0].rstrip(","))
    assert 15 <= step < 40  # from a checkpoint written before the kill, not from scratch
    final = h.CRASH_ITERS
    for rank in range(h.N):
        got = h.rank_params(out, rank, final)
        want = h.rank_params(dist_runs / "crash-reference", rank, final)
        for key in want:
            # same process layout, same ops in the same order: bitwise, not just close
            assert torch.equal(got[key], want[key]), f"rank {rank} {key}"


# --- ranks disagreeing on the newest checkpoint ----------------------------------------------

class FakeComm:
    """One rank's view: `steps` are the checkpoint steps every rank reports."""

    def __init__(self, rank: int, steps: list[list[int]]):
        self.rank, self.reported, self.calls = rank, steps, 0
        self.n_workers, self.n_local, self.workers = len(steps), 1, [rank]
        self.is_main = rank == 0

    def gather_objects(self, obj) -> list:
        self.calls += 1
        assert obj == self.reported[self.rank], "this rank must report the files it holds"
        return self.reported


def _touch(folder: Path, rank: int, steps: list[int]) -> None:
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    for s in steps:
        (folder / "checkpoints" / f"rank{rank}-{s:08d}.pt").write_bytes(b"x")


@pytest.mark.parametrize("reported, rank, expected", [
    ([[10, 15], [10, 15], [10, 15]], 1, 15),     # agreement: the newest
    ([[10, 15], [5, 10], [10, 15]], 0, 10),      # rank 1 died saving 15: the newest all have
    ([[10, 15], [5, 10], [10, 15]], 1, 10),
    ([[15, 20], [5, 10], [15, 20]], 2, None),    # nothing in common: start afresh
    ([[10, 15], [], [10, 15]], 0, None),         # a rank with nothing
])
def test_resume_uses_newest_step_every_rank_holds(tmp_path, reported, rank, expected):
    _touch(tmp_path, rank, reported[rank])
    comm = FakeComm(rank, reported)
    store = CheckpointStore(tmp_path, comm)
    path = store.resume_path()
    assert path == (None if expected is None else
                    tmp_path / "checkpoints" / f"rank{rank}-{expected:08d}.pt")
    assert store.resume_path() == path and comm.calls == 1  # asked twice, agreed once


def test_disagreement_is_reported(tmp_path, caplog):
    _touch(tmp_path, 0, [10, 15])
    store = CheckpointStore(tmp_path, FakeComm(0, [[10, 15], [5, 10]]))
    with caplog.at_level("INFO", logger="gossipgan.train.store"):
        store.resume_path()
    assert "disagree" in caplog.text and "step 10" in caplog.text


def test_save_keeps_two_newest_and_drops_stale_later_steps(tmp_path):
    # a run restarted afresh in a folder that held checkpoints of steps 20 and 30
    _touch(tmp_path, 1, [20, 30])
    store = CheckpointStore(tmp_path, FakeComm(1, [[], [], []]))
    for step in (5, 10, 15):
        store.save({"iteration": step}, step)
        assert store.steps() == [s for s in (5, 10, 15) if s <= step][-2:]
    assert load_checkpoint(tmp_path / "checkpoints" / "rank1-00000015.pt")["iteration"] == 15


def test_checkpoints_of_more_workers_are_refused(tmp_path):
    _touch(tmp_path, 3, [10])
    with pytest.raises(ConfigError, match="checkpoints of 4 workers but this run has 2"):
        CheckpointStore(tmp_path, FakeComm(0, [[], []])).check_world()
    CheckpointStore(tmp_path, FakeComm(0, [[]] * 4)).check_world()  # same world: fine


# --- two machines: two network namespaces joined by a veth pair --------------------------------

NAMESPACES = ("ggtest_a", "ggtest_b")
VETHS = ("ggveth_a", "ggveth_b")
ADDRS = ("10.77.0.1", "10.77.0.2")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=20, capture_output=True)


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="needs root and iproute2 for network namespaces")
def test_two_hosts_over_veth_match_simulator(tmp_path, monkeypatch):
    name = "gan-dposg-ring"
    try:
        for ns in NAMESPACES:
            subprocess.run(["ip", "netns", "del", ns], timeout=20, capture_output=True)
            _ip("netns", "add", ns)
        _ip("link", "add", VETHS[0], "netns", NAMESPACES[0], "type", "veth",
            "peer", "name", VETHS[1], "netns", NAMESPACES[1])
        for ns, veth, addr in zip(NAMESPACES, VETHS, ADDRS, strict=True):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
            _ip("-n", ns, "link", "set", veth, "up")
        procs = []
        for node, (ns, veth) in enumerate(zip(NAMESPACES, VETHS, strict=True)):
            # each host writes to its own folder: no shared filesystem between machines
            cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "torch.distributed.run",
                   "--nnodes=2", "--nproc_per_node=2", f"--node_rank={node}",
                   f"--master_addr={ADDRS[0]}", "--master_port=29533",
                   str(h.REPO / "tests" / "dist_helpers.py"), str(tmp_path / f"host{node}"), name]
            procs.append(subprocess.Popen(cmd, env=h.child_env(GLOO_SOCKET_IFNAME=veth),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        try:
            errs = [p.communicate(timeout=150)[1] for p in procs]
        finally:
            for p in procs:
                h.kill_group(p)
        for p, err in zip(procs, errs, strict=True):
            assert p.returncode == 0, err[-4000:]
    finally:
        for ns in NAMESPACES:
            subprocess.run(["ip", "netns", "del", ns], timeout=20, capture_output=True)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20)
    assert not any(ns in left.stdout for ns in NAMESPACES), left.stdout

    cfg = h.make_config(name, "sim")
    sim = _simulate(cfg, tmp_path / "sim", monkeypatch)["workers"]["params"]
    for rank in range(h.N):
        got = h.rank_params(tmp_path / f"host{rank // 2}" / name, rank, cfg.run.iters)
        for key, value in got.items():
            torch.testing.assert_close(value, sim[key][rank], rtol=0, atol=ATOL)
    # rank 0's host holds the run's shared files; the other host only its ranks' checkpoints
    assert (tmp_path / "host0" / name / "summary.json").is_file()
    assert sorted(p.name[:5] for p in (tmp_path / "host1" / name / "checkpoints").iterdir()) \
        == ["rank2", "rank3"]


# --- bad inputs: exit 2, one line on every rank, no hang ---------------------------------------

TRAIN = ["train", "--backend", "dist", "--iters", "3", "--no-progress"]
# Cases that fail only after the run is built use the bilinear game: no dataset to load.
BILINEAR = ["--set", "game.name=bilinear"]
WORLD_LINE = ("gossipgan: error: world size 2 differs from the topology's 4 workers: set "
              "--workers to the number of processes")


def _rank_cases(tmp_path: Path, four_rank_run: Path) -> dict:
    """name: (ranks, arguments, what the one line must say), launched with launch_ranks."""
    resumed, taken = tmp_path / "resume", tmp_path / "taken"
    shutil.copytree(four_rank_run, resumed)
    shutil.copytree(four_rank_run, taken)
    cases = {
        "world size != --workers": (2, ["--workers", "4", "--out", str(tmp_path / "a")],
                                    WORLD_LINE.removeprefix("gossipgan: error: ")),
        "hypercube of 3": (3, ["--workers", "3", "--topology", "hypercube",
                               "--out", str(tmp_path / "b")], "hypercube needs a power-of-two"),
        "resume with another world size": (2, ["--workers", "2", "--resume", "--out",
                                               str(resumed), *BILINEAR],
                                           "holds checkpoints of 4 workers but this run has 2"),
        # only rank 0 looks at the run directory (see test_error_seen_by_rank0_only...)
        "rank 0 only: folder taken": (2, ["--workers", "2", "--out", str(taken), *BILINEAR],
                                      "already holds a run"),
    }
    if not torch.cuda.is_available():
        cases["nccl without a GPU"] = (2, ["--workers", "2", "--set", "run.dist_backend=nccl",
                                           "--out", str(tmp_path / "c")], "NCCL needs a CUDA GPU")
    return cases


@pytest.fixture(scope="module")
def bad_runs(dist_runs, tmp_path_factory) -> dict:
    """Every bad-input launch at once (each is mostly imports): name -> result."""
    tmp = tmp_path_factory.mktemp("bad")
    cases = _rank_cases(tmp, dist_runs / "bilinear-dposg-ring")
    logs = tmp / "logs"
    with ThreadPoolExecutor(len(cases) + 2) as pool:
        futures = {what: pool.submit(h.launch_ranks, ranks, TRAIN + args, 150)
                   for what, (ranks, args, _) in cases.items()}
        futures["outside torchrun"] = pool.submit(
            h.run, [sys.executable, "-m", "gossipgan", *TRAIN, "--out", str(tmp / "d")],
            150, env=h.child_env())
        futures["torchrun"] = pool.submit(
            h.run, h.torchrun(2, "-m", "gossipgan", *TRAIN, "--workers", "4", "--out",
                              str(tmp / "e"), extra=("--log-dir", str(logs), "--redirects", "2")),
            150, env=h.child_env())
        results = {what: f.result() for what, f in futures.items()}
    results["cases"], results["torchrun logs"] = cases, logs
    return results


BAD = ["world size != --workers", "hypercube of 3", "resume with another world size",
       "nccl without a GPU"]


@pytest.mark.slow
@pytest.mark.parametrize("what", BAD)
def test_bad_input_exits_2_with_one_line_from_rank_0(bad_runs, what):
    """Every rank exits 2; the error all of them hit is printed once, by rank 0."""
    if what not in bad_runs["cases"]:
        pytest.skip("a CUDA GPU is visible: NCCL is not a bad input here")
    message = bad_runs["cases"][what][2]
    for rank, (code, err) in enumerate(bad_runs[what]):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == (rank == 0), f"rank {rank}: exit {code}\n{err[-3000:]}"
        if rank == 0:
            assert lines[0].startswith("gossipgan: error: ") and message in lines[0], lines[0]


@pytest.mark.slow
def test_dist_outside_torchrun_says_how_to_launch(bad_runs):
    proc = bad_runs["outside torchrun"]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert "outside torchrun" in lines[0] and "torchrun --nproc_per_node" in lines[0]


@pytest.mark.slow
def test_bad_input_under_torchrun_is_one_line_from_rank_0(bad_runs):
    """What a user sees through torchrun: one line, from rank 0. The other ranks wait a few
    seconds before they exit silently, so rank 0 (exit 2) is the first to end and torchrun's
    SIGTERM finds them still waiting (-15). Every rank's own exit code is checked with
    launch_ranks above."""
    proc = bad_runs["torchrun"]
    assert proc.returncode != 0
    codes = {int(rank): int(code) for rank, code in re.findall(
        r"rank\s+: (\d+) \(local_rank.*\n\s+exitcode\s+: (-?\d+)", proc.stderr)}
    assert set(codes) == {0, 1} and 2 in codes.values(), proc.stderr[-3000:]
    for rank, code in codes.items():
        assert code in (2, -signal.SIGTERM), proc.stderr[-3000:]
        err = next(bad_runs["torchrun logs"].glob(f"*/attempt_0/{rank}/stderr.log")).read_text()
        allowed = [[WORLD_LINE]] if rank == 0 else [[]]  # the other ranks say nothing
        assert err.strip().splitlines() in allowed, err[-3000:]


@pytest.mark.slow
def test_error_seen_by_rank0_only_stops_every_rank_with_one_line(bad_runs):
    for rank, (code, err) in enumerate(bad_runs["rank 0 only: folder taken"]):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == (rank == 0), err[-3000:]
    assert "already holds a run" in bad_runs["rank 0 only: folder taken"][0][1]
