"""Helpers for tests/test_dist.py, and the driver those tests launch under torchrun.

As a script (`torchrun --nproc_per_node=4 tests/dist_helpers.py OUT NAME...`) every rank runs
the named configs of `CONFIGS` one after the other with the distributed backend, each into
OUT/NAME: one launch (one process-group start, one import of torch) for many runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from gossipgan.train import Config, apply_overrides

REPO = Path(__file__).resolve().parents[1]
N = 4
ITERS = 6

# Small and fast: a width-8 DCGAN on 8x8 digits, batch 16; evaluation and plots all but off.
# The operator as a loop over workers in the simulator too (a rank holds one worker, so it
# loops): vmap and the loop differ in the last bits, and Adam's per-coordinate normalisation
# of near-zero gradients amplifies that to ~1e-5 in 6 steps (sim vmap vs sim loop alike), which
# would hide the backend's own error (~1e-7).
COMMON = [f"topology.workers={N}", f"run.iters={ITERS}", "run.threads=1", "run.eval_batch=32",
          "run.log_every=1000", "run.eval_every=1000", "run.sample_every=1000",
          "run.checkpoint_every=1000", "run.vectorize=loop", "run.quality_every=0"]
GAN = ["game.name=gan", "game.model=dcgan", "game.loss=nsgan",
       "game.width=8", "data.dataset=digits", "run.batch=16"]
BILINEAR = ["game.name=bilinear", "game.dim=6", "run.batch=8", "game.noise=0.5"]
ALGOS = {"dposg": ["optim.algo=dposg", "optim.lr=0.05"],
         "dpoadam": ["optim.algo=dpoadam", "optim.lr=0.01"],
         "cpoadam": ["optim.algo=cpoadam", "optim.lr=0.01"]}
TOPOLOGIES = {"ring": ["topology.name=ring"], "ope": ["topology.name=one_peer_exponential"]}

CONFIGS: dict[str, list[str]] = {
    f"{game}-{algo}-{top}": COMMON + game_over + algo_over + top_over
    for game, game_over in (("gan", GAN), ("bilinear", BILINEAR))
    for algo, algo_over in ALGOS.items()
    for top, top_over in TOPOLOGIES.items()
}
# Three rounds per step on a period-2 schedule: round r of the run is step * rounds + j.
CONFIGS["bilinear-dposg-ope-t3"] = CONFIGS["bilinear-dposg-ope"] + ["optim.rounds=3"]
# Gradient tracking (issue 16): the tracker travels in the same exchange as x.
CONFIGS["bilinear-dposg-gt-ring"] = COMMON + BILINEAR + TOPOLOGIES["ring"] + [
    "optim.algo=dposg-gt", "optim.lr=0.05", "game.heterogeneity=0.5"]
CONFIGS["gan-dpoadam-gt-ope"] = COMMON + GAN + TOPOLOGIES["ope"] + [
    "optim.algo=dpoadam-gt", "optim.lr=0.01", "data.shard=dirichlet", "data.alpha=0.3"]
# Compressed gossip (issue 17): random-k and stochastic rounding draw per (seed, worker,
# round), so the simulator's messages are the processes' own; the payload crosses the wire.
CONFIGS["bilinear-dposg-ring-randk"] = CONFIGS["bilinear-dposg-ring"] + [
    "optim.compression=randk:0.3", "optim.consensus_step=0.5"]
CONFIGS["gan-dpoadam-ring-qsgd4"] = CONFIGS["gan-dpoadam-ring"] + ["optim.compression=qsgd:4"]
CONFIGS["bilinear-dposg-gt-ring-topk"] = CONFIGS["bilinear-dposg-gt-ring"] + [
    "optim.compression=topk:0.25", "optim.consensus_step=0.7"]
# The crash test's run: long enough to kill mid-way, checkpoints every 5 steps.
CRASH_ITERS = 40
CRASH = COMMON + GAN + ALGOS["dpoadam"] + TOPOLOGIES["ope"] + [
    f"run.iters={CRASH_ITERS}", "run.checkpoint_every=5"]
CONFIGS["crash-reference"] = CRASH


def make_config(name: str, backend: str) -> Config:
    return apply_overrides(Config(), [*CONFIGS[name], f"run.backend={backend}"])


def set_args(overrides: list[str]) -> list[str]:
    """The overrides as `--set` flags for the command line."""
    return [a for o in overrides for a in ("--set", o)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict:
    """The environment for launched processes: one thread, this checkout, no torchrun vars."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def torchrun(nproc: int, *args: str, extra: tuple[str, ...] = ()) -> list[str]:
    """`torchrun --standalone` (a free port per launch) as a command line."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", *extra, *args]


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run that kills the whole process group on timeout (no stray ranks)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s: {' '.join(cmd)}\n{err[-3000:]}") \
            from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`, its process group and every process below it. torchrun starts each
    worker in a session of its own: killing torchrun's group alone leaves them running."""
    below = descendants(proc.pid)
    for kill, pid in [(os.killpg, proc.pid)] + [(os.kill, p) for p in below]:
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def launch_ranks(nproc: int, args: list[str], timeout: float) -> list[tuple[int, str]]:
    """Start `python -m gossipgan ARGS` as `nproc` ranks the way torchrun does (RANK,
    WORLD_SIZE, MASTER_ADDR/PORT in the environment) and return each rank's (exit code,
    stderr). Unlike torchrun, nothing kills the other ranks when the first one exits, so every
    rank's own exit code is seen."""
    port = free_port()
    procs = []
    for rank in range(nproc):
        env = child_env(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank),
                        LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1",
                        MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "gossipgan", *args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    deadline = time.monotonic() + timeout
    results = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            results.append((p.returncode, err))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ranks hung: gossipgan {' '.join(args)}") from None
    finally:
        for p in procs:
            if p.poll() is None:
                kill_group(p)
                p.communicate()
    return results


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    items = raw.decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def rank_pid(launcher: int, rank: int, restart: int = 0) -> int | None:
    """The pid of the worker process of `rank` (first attempt) under a torchrun `launcher`."""
    for pid in descendants(launcher):
        env = environ(pid)
        if env.get("RANK") == str(rank) and env.get("TORCHELASTIC_RESTART_COUNT") == str(restart):
            return pid
    return None


def rank_params(out: Path, rank: int, step: int) -> dict[str, torch.Tensor]:
    """Worker `rank`'s parameters from its checkpoint of `step` (worker axis dropped)."""
    from gossipgan.train.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / f"rank{rank}-{step:08d}.pt")
    assert state["iteration"] == step
    return {k: v[0] for k, v in state["workers"]["params"].items()}


def skip_pictures(setattr_=setattr) -> None:
    """No plots and sample grids: matplotlib costs seconds per run and draws nothing these
    tests check (the collectives around them still run). Tests pass monkeypatch.setattr."""
    import gossipgan.train.evaluate as evaluate
    import gossipgan.train.loop as loop

    setattr_(loop, "plot_run", lambda out: None)
    setattr_(evaluate, "save_samples", lambda *args, **kwargs: None)


def main(argv: list[str]) -> int:
    """Every rank: run each named config with the distributed backend into OUT/NAME."""
    import torch.distributed as dist

    from gossipgan.comm.dist import init_process_group
    from gossipgan.train import train

    skip_pictures()
    out = Path(argv[0])
    init_process_group("gloo")  # joined once for all the runs: train() then leaves it alone
    try:
        for name in argv[1:]:
            train(make_config(name, "dist"), out / name, overwrite=True, progress=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from gossipgan.comm.dist import leave

    leave(main(sys.argv[1:]))  # as the gossipgan command: no teardown abort after the results
