"""Starting one condition's benchmark workers and waiting on them (grid.py's `run_grid`).

`start_workers` launches torchrun: one agent per worker namespace (root), or one agent on
loopback for the fallback. `wait_until` and `wait_for` poll the workers and raise, with the
end of the workers' log, when one fails or none makes progress for STALL_S seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gossipgan.netem import net

if TYPE_CHECKING:
    from gossipgan.netem.grid import Grid

BASE_PORT = 29400
STALL_S = 900  # the workers log every evaluation; this long without a line is a hang


def start_workers(grid: Grid, network: net.Network | None, spec_path: Path, index: int,
                  log_file) -> list[subprocess.Popen]:
    """Workers for condition `index`. Root: one torchrun agent per worker namespace, gloo
    bound to the namespace's eth0. Fallback: one torchrun on loopback (the delay is
    DistComm's, per hop). Each condition gets its own port: the last one's may linger."""
    module = ["-m", "gossipgan.netem.worker", str(spec_path), str(index)]
    port = str(BASE_PORT + index)
    run = [sys.executable, "-m", "torch.distributed.run"]
    if network is None:
        argv = [*run, "--nnodes", "1", "--nproc-per-node", str(grid.workers), "--master-addr",
                "127.0.0.1", "--master-port", port, *module]
        return [subprocess.Popen(argv, env=_env(), stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True)]
    n, env = network.n_workers, {**_env(), "GLOO_SOCKET_IFNAME": "eth0"}
    return [network.popen(i, [*run, "--nnodes", str(n), "--nproc-per-node", "1", "--node-rank",
                              str(i), "--master-addr", net.worker_addr(0), "--master-port",
                              port, *module], env=env, stdout=log_file,
                          stderr=subprocess.STDOUT)
            for i in range(n)]


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", LOGLEVEL="WARNING")
    return env


def wait_until(procs: list[subprocess.Popen], log_path: Path, done) -> None:
    """Poll until `done()`; raise if a worker fails or the log shows no progress for STALL_S
    seconds (a hung collective would otherwise wait for gloo's 30-minute timeout)."""
    last_change, last_size = time.monotonic(), -1
    while not done():
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            raise RuntimeError(f"a benchmark worker failed (exit {codes}); log {log_path}:\n"
                               + _tail(log_path))
        size = log_path.stat().st_size if log_path.exists() else 0
        if size != last_size:
            last_change, last_size = time.monotonic(), size
        elif time.monotonic() - last_change > STALL_S:
            raise RuntimeError(f"benchmark workers made no progress for {STALL_S} s; log "
                               f"{log_path}:\n" + _tail(log_path))
        time.sleep(0.2)


def wait_for(path: Path, procs: list[subprocess.Popen], log_path: Path) -> None:
    """Until `path` exists; raises if a worker fails or the workers stall (see wait_until)."""
    wait_until(procs, log_path, lambda: path.exists())


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
