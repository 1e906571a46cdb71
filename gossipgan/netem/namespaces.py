"""The emulator's commands, namespaces and processes, apart from any one `Network` (net.py):
`run` (every `ip` and `tc` call, a failure as one RuntimeError), `list_namespaces`,
`kill_namespace_pids`, `stop_process` (a process group we started), and `remove_stale`, which
clears what a run killed with SIGKILL left behind.

A network's namespaces are named `gg<6 hex>h` / `gg<6 hex>w<i>` (NAME_RE), and while it lives
OWNER_DIR/<6 hex> holds its owner's pid: namespaces whose owner is gone are stale.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

OWNER_DIR = Path("/run/gossipgan-netem")
NAME_RE = re.compile(r"^gg([0-9a-f]{6})(h|w\d+)$")


def run(args: list[str], stdin: str | None = None, check: bool = True) -> str:
    """stdout of the command `args` fed `stdin`; with `check`, a failure is a RuntimeError with
    its message."""
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def list_namespaces() -> list[str]:
    """Names from `ip netns list` (first word of each line)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def kill_namespace_pids(name: str) -> None:
    """Processes still inside one of OUR namespaces (started by us, e.g. a stray worker)."""
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove namespaces of gossipgan networks whose owning process is gone; returns them."""
    removed = []
    for name in list_namespaces():
        match = NAME_RE.match(name)
        if not match:
            continue
        owner = OWNER_DIR / match.group(1)
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid):
            continue
        kill_namespace_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        removed.append(name)
        owner.unlink(missing_ok=True)
    return removed


def stop_process(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
