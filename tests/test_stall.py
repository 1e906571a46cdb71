"""A stalled peer ends the run (issue 13): under torchrun, one rank SIGSTOPped as a frozen
machine would be; the live ranks exit within run.comm_timeout_s (+30 s) with one line naming
the peer they waited for and the newest checkpoint, and `--resume` then continues exactly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import dist_helpers as h
import pytest
import torch

from gossipgan.train.checkpoint import load_checkpoint

N, TIMEOUT_S = 3, 6
ARGS = ["-m", "gossipgan", "train", "--backend", "dist", "--workers", str(N), "--no-progress",
        "--algo", "dposg", "--lr", "0.05", "--batch", "4", "--set", "game.name=bilinear",
        "--set", "game.dim=4", "--set", "run.checkpoint_every=5", "--set", "run.log_every=5",
        "--set", "run.eval_every=1000", "--set", f"run.comm_timeout_s={TIMEOUT_S}",
        "--set", "run.threads=1"]


def _rank_pid(root: int, rank: int) -> int | None:
    for pid in h.descendants(root):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:  # an entry of the environment, exactly
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"gossipgan" in cmd and b"torch.distributed.run" not in cmd:
                return pid
    return None


def _params(out: Path, step: int) -> list[dict]:
    return [load_checkpoint(out / "checkpoints" / f"rank{r}-{step:08d}.pt")["workers"]["params"]
            for r in range(N)]


@pytest.mark.slow
def test_stalled_peer_ends_the_run_and_resume_continues_exactly(tmp_path):
    out = tmp_path / "run"
    cmd = h.torchrun(N, *ARGS, "--iters", "100000", "--out", str(out))
    proc = subprocess.Popen(cmd, env=h.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stopped = None
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "checkpoints").glob("rank2-*.pt"))) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        stopped = _rank_pid(proc.pid, 2)
        live = [_rank_pid(proc.pid, r) for r in range(N - 1)]
        assert stopped and all(live), (stopped, live)
        os.kill(stopped, signal.SIGSTOP)
        t0 = time.monotonic()
        while time.monotonic() - t0 < TIMEOUT_S + 30 and any(
                Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in live):
            time.sleep(0.1)
        waited = time.monotonic() - t0
        assert waited < TIMEOUT_S + 30, f"live ranks still running after {waited:.0f} s"
        os.kill(stopped, signal.SIGKILL)
        _, err = proc.communicate(timeout=90)
    finally:
        if stopped:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass
        h.kill_group(proc)
    lines = [line for line in err.splitlines() if line.startswith("gossipgan: error:")]
    assert lines, err[-3000:]
    # Each line names the rank(s) its own rank waited for. That is rank 2 when the wait was on
    # it directly; a live rank blocked on a neighbour that waits for rank 2 names that
    # neighbour (what it waited for), and torchrun ends the others when the first one exits.
    for line in lines:
        me = int(re.search(r"error: rank (\d+):", line).group(1))
        m = re.search(r"rank\(s\) ([\d, ]+)", line)
        assert m, (line, err[-3000:])
        named = {int(r) for r in m.group(1).split(",")}
        assert named and me not in named and named <= set(range(N)), line
    assert all("newest checkpoint here is" in line and "--resume" in line for line in lines)
    assert "Traceback" not in "\n".join(
        line for line in err.splitlines() if "gossipgan" in line), err[-3000:]
    print(f"live ranks exited {waited:.1f} s after the SIGSTOP (timeout {TIMEOUT_S} s):", *lines,
          sep="\n")

    # --resume continues exactly: two more iterations equal an uninterrupted run of that length
    held = [sorted(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob(f"rank{r}-*.pt"))
            for r in range(N)]
    k = max(set.intersection(*map(set, held)))
    more = str(k + 2)
    h.run(h.torchrun(N, *ARGS, "--iters", more, "--out", str(out), "--resume"), 150,
          env=h.child_env())
    ref = tmp_path / "ref"
    h.run(h.torchrun(N, *ARGS, "--iters", more, "--out", str(ref)), 150, env=h.child_env())
    for a, b in zip(_params(out, k + 2), _params(ref, k + 2), strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), name


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


class _Store:
    """The part of a torch.distributed store `_laggards` uses."""

    def __init__(self, values: dict[str, str]):
        self.values = dict(values)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def check(self, keys: list[str]) -> bool:
        return all(k in self.values for k in keys)

    def get(self, key: str) -> bytes:
        return self.values[key].encode()


@pytest.mark.parametrize("beats, stuck, expected", [
    ((4, 4, 3), (), [2]),        # rank 2 froze between collectives: its count is behind
    ((4, 4, 4), (1,), [2]),      # inside one: rank 1 failed too, rank 2 stayed silent
    ((4, 4, 4), (1, 2), []),     # everyone else failed too: nobody to name
])
def test_a_failed_collective_names_the_ranks_it_waits_for(monkeypatch, beats, stuck, expected):
    from gossipgan.comm import dist as gdist

    store = _Store({gdist.HEARTBEAT.format(rank=r): str(b) for r, b in enumerate(beats)}
                   | {gdist.STUCK.format(rank=r): "1" for r in stuck})
    monkeypatch.setattr(gdist, "_store", lambda: store)
    monkeypatch.setattr(gdist, "STUCK_GRACE_S", 0.0)
    monkeypatch.setattr(gdist.dist, "get_world_size", lambda: len(beats))
    assert gdist._laggards(0) == expected
