"""An emulated cluster: one network namespace per worker, a hub namespace, real links.

    worker i (ns ggXXXXXXw<i>)        hub (ns ggXXXXXXh)
      eth0 10.77.0.(10+i)/32  <-veth->  v<i> --- br0 10.77.0.1 --- routed through tun0
      tbf: upload at the rate           tbf on v<i>: download at the rate

Each worker's link is a veth pair into a bridge in the hub namespace; `tbf` on both ends caps
the link at the asked rate in each direction (a full-duplex NIC). Workers hold a /32 address
and reach each other only via the hub's address, so the hub ROUTES every worker-to-worker
packet; a policy rule sends whatever arrives from the bridge into the TUN device of the delay
router (router.py), which holds it for the one-way latency and hands it back to be forwarded.

Everything lives inside namespaces named `gg<6 hex>h` / `gg<6 hex>w<i>`; removing those
namespaces removes every interface, qdisc and route with them. `Network` removes them on
normal exit, on exceptions, on SIGINT/SIGTERM/SIGHUP and at interpreter exit; a run killed
with SIGKILL leaves an owner file naming a dead pid, and `remove_stale()` clears such leftovers
(namespaces.py, with the commands and process helpers a Network uses).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from gossipgan.errors import ConfigError
from gossipgan.netem.namespaces import OWNER_DIR, kill_namespace_pids, run, stop_process

log = logging.getLogger(__name__)

MTU = 65000           # unshaped links: large packets keep the router's packet rate low
PACKET_SECONDS = 0.5e-3  # shaped links: one packet is this much link time (see mtu_for)
QUEUE_BYTES = 16 << 20   # deep enough that converging flows are delayed, not dropped
SHAPERS = ("tbf", "htb")
HUB_ADDR = "10.77.0.1"
MAX_WORKERS = 240     # addresses 10.77.0.10 .. 10.77.0.249
WORKER_MEMORY = 600 << 20  # a torchrun agent plus one worker process with torch imported


def mtu_for(rate_bps: float | None) -> int:
    """MTU of every interface at this link rate.

    tbf lets a packet pass whole, and a full bucket lets one burst through at once, so each
    message gets up to one packet "for free"; with a packet of ~0.5 ms of link time that error
    stays small, while the userspace router still sees few packets at 1 Gbit/s (63 KB each)."""
    if rate_bps is None:
        return MTU
    return int(min(MTU, max(1500, rate_bps / 8 * PACKET_SECONDS)))


def worker_addr(i: int) -> str:
    return f"10.77.0.{10 + i}"


def is_root() -> bool:
    return os.geteuid() == 0


def memory_limit_workers() -> int:
    """How many emulated workers this machine can hold (memory; addresses cap it at 240)."""
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    return max(2, min(MAX_WORKERS, available // WORKER_MEMORY))


def _shaper_cmds(shaper: str, dev: str, rate_bps: float, mtu: int) -> list[str]:
    """tc batch lines that cap `dev` at `rate_bps`; the bucket holds one packet (its header
    included: tbf drops any packet larger than its burst)."""
    rate, burst = f"{int(rate_bps)}bit", mtu + 1024
    if shaper == "tbf":
        return [f"qdisc add dev {dev} root tbf rate {rate} burst {burst} limit {QUEUE_BYTES}"]
    half = f"{int(rate_bps / 2)}bit"
    cmds = [f"qdisc add dev {dev} root handle 1: htb default 20 r2q 1",
            f"class add dev {dev} parent 1: classid 1:1 htb rate {rate} ceil {rate} "
            f"burst {burst} cburst {burst}"]
    for cls, prio in ((10, 0), (20, 1)):
        cmds += [f"class add dev {dev} parent 1:1 classid 1:{cls} htb rate {half} ceil {rate} "
                 f"burst {burst} cburst {burst} prio {prio} quantum {burst}",
                 f"qdisc add dev {dev} parent 1:{cls} bfifo limit {QUEUE_BYTES}"]
    # IPv4 total length < 128 bytes: pure ACKs and other control packets go first
    return cmds + [f"filter add dev {dev} parent 1: protocol ip prio 1 u32 "
                   "match u16 0x0000 0xff80 at 2 flowid 1:10"]


def _qdisc_drops(namespace: str, dev: str) -> int:
    out = run(["tc", "-n", namespace, "-s", "-j", "qdisc", "show", "dev", dev], check=False)
    try:
        return sum(int(q.get("drops", 0)) for q in json.loads(out or "[]"))
    except ValueError:
        return 0


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


class Network:
    """`n_workers` namespaces behind a shaped, delayed hub; a context manager that cleans up."""

    def __init__(self, n_workers: int):
        if not is_root():
            raise ConfigError("the namespace network benchmark needs root (network namespaces, "
                              "tc); without root use the fallback: gossipgan bench network "
                              "--app-delay (application-level per-hop delay, no bandwidth limit)")
        limit = memory_limit_workers()
        if not 2 <= n_workers <= limit:
            raise ConfigError(f"the network benchmark needs 2..{limit} workers on this machine "
                              f"(memory for about {WORKER_MEMORY >> 20} MB each, at most "
                              f"{MAX_WORKERS} addresses), got {n_workers}")
        self.n_workers = n_workers
        self.id = secrets.token_hex(3)
        self.hub = f"gg{self.id}h"
        self.workers = [f"gg{self.id}w{i}" for i in range(n_workers)]
        self.rate_bps: float | None = None
        self.delay_s = 0.0
        self._router: subprocess.Popen | None = None
        self._procs: list[subprocess.Popen] = []
        self._created: list[str] = []
        self._old_handlers: dict = {}
        self._torn_down = False

    # --- lifetime ---------------------------------------------------------------------
    def __enter__(self) -> Network:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, _raise_exit)
        atexit.register(self.teardown)
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        atexit.unregister(self.teardown)

    def setup(self) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        (OWNER_DIR / self.id).write_text(str(os.getpid()))
        names = [self.hub, *self.workers]
        for name in names:  # one at a time, so a failure leaves a list of what exists
            run(["ip", "netns", "add", name])
            self._created.append(name)
        hub = ["link set lo up", "link add br0 type bridge", f"link set br0 mtu {MTU} up",
               f"addr add {HUB_ADDR}/24 dev br0"]
        for i, ns in enumerate(self.workers):
            hub += [f"link add v{i} mtu {MTU} type veth peer name eth0 netns {ns}",
                    f"link set v{i} master br0 up"]
        run(["ip", "-n", self.hub, "-batch", "-"], "\n".join(hub) + "\n")
        for i, ns in enumerate(self.workers):
            cmds = ["link set lo up", f"link set eth0 mtu {MTU} up",
                    f"addr add {worker_addr(i)}/32 dev eth0",
                    f"route add {HUB_ADDR} dev eth0 scope link",
                    f"route add 10.77.0.0/24 via {HUB_ADDR} dev eth0"]
            run(["ip", "-n", ns, "-batch", "-"], "\n".join(cmds) + "\n")
        # Forwarding on; reverse-path filtering off, since packets re-enter from tun0 with
        # addresses that route via br0; no redirects, so nobody learns to bypass the router.
        sysctl = ("echo 1 > /proc/sys/net/ipv4/ip_forward; "
                  "for k in all default; do echo 0 > /proc/sys/net/ipv4/conf/$k/rp_filter; "
                  "echo 0 > /proc/sys/net/ipv4/conf/$k/send_redirects; done")
        run(["ip", "netns", "exec", self.hub, "sh", "-c", sysctl])
        self._start_router()
        run(["ip", "-n", self.hub, "-batch", "-"],
            f"link set tun0 mtu {MTU} up\nrule add iif br0 lookup 100 pref 100\n"
            "route add default dev tun0 table 100\n")

    def _start_router(self) -> None:
        self._router = subprocess.Popen(
            ["ip", "netns", "exec", self.hub, sys.executable, "-m", "gossipgan.netem.router",
             "tun0", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        line = self._router.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the delay router did not start (said {line.strip()!r})")
        if "realtime" not in line:
            log.warning("delay router runs without real-time priority: latency may jitter")

    def teardown(self) -> None:
        """Stop every process we started here, then delete the namespaces (idempotent)."""
        if self._torn_down:
            return
        self._torn_down = True
        for proc in self._procs:
            stop_process(proc)
        if self._router is not None:
            try:
                self._router.stdin.close()
            except OSError:
                pass
            stop_process(self._router, grace=2.0)
        for name in reversed(self._created):
            kill_namespace_pids(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        (OWNER_DIR / self.id).unlink(missing_ok=True)

    # --- conditions -------------------------------------------------------------------
    def shape(self, rate_bps: float | None, delay_s: float, shaper: str = "tbf") -> None:
        """Every link at `rate_bps` each way (None: unshaped) and `delay_s` one-way per hop.

        shaper "tbf": one FIFO per link direction, as DESIGN.md §7 measured. "htb": the same
        rate with small packets (pure ACKs) dequeued first, as a host's default fair-queueing
        qdisc would; with a FIFO the ACKs of incoming data wait behind outgoing data.
        The MTU follows the rate (mtu_for); TCP follows a shrinking MTU on open connections."""
        if shaper not in SHAPERS:
            raise ConfigError(f"unknown shaper {shaper!r}; known: {', '.join(SHAPERS)}")
        mtu = mtu_for(rate_bps)
        hub_cmds = [f"link set v{i} mtu {mtu}" for i in range(self.n_workers)]
        hub_cmds += [f"link set br0 mtu {mtu}", f"link set tun0 mtu {mtu}"]
        run(["ip", "-n", self.hub, "-batch", "-"], "\n".join(hub_cmds) + "\n")
        for i, ns in enumerate(self.workers):
            run(["ip", "-n", ns, "link", "set", "eth0", "mtu", str(mtu)])
            for where, dev in ((ns, "eth0"), (self.hub, f"v{i}")):
                run(["tc", "-n", where, "qdisc", "del", "dev", dev, "root"], check=False)
                if rate_bps is not None:
                    run(["tc", "-n", where, "-batch", "-"],
                        "\n".join(_shaper_cmds(shaper, dev, rate_bps, mtu)) + "\n")
        self._router.stdin.write(f"delay {delay_s * 1e3:.6f}\n")
        self._router.stdin.flush()
        answer = self._router.stdout.readline()
        if not answer.startswith("delay"):
            raise RuntimeError(f"the delay router did not take the new delay ({answer!r})")
        self.rate_bps, self.delay_s = rate_bps, delay_s

    def counters(self) -> dict[str, int]:
        """Packets the emulator dropped (tbf queues; any interface's or the TUN device's
        queue) and the TCP segments the workers retransmitted, cumulative since setup."""
        drops = 0
        for i, ns in enumerate(self.workers):
            for where, dev in ((ns, "eth0"), (self.hub, f"v{i}")):
                drops += _qdisc_drops(where, dev)
        tun_drops = _qdisc_drops(self.hub, "tun0")
        for ns in (self.hub, *self.workers):  # every interface, both directions
            for link in json.loads(run(["ip", "-n", ns, "-s", "-j", "link", "show"])):
                stats = link.get("stats64", {})
                tun_drops += sum(int(stats.get(d, {}).get("dropped", 0)) for d in ("rx", "tx"))
        retrans = 0
        for ns in self.workers:
            lines = [line.split() for line in run(["ip", "netns", "exec", ns, "cat",
                                                   "/proc/net/snmp"]).splitlines()
                     if line.startswith("Tcp:")]
            retrans += int(lines[1][lines[0].index("RetransSegs")])
        return {"tbf_drops": drops, "tun_drops": tun_drops, "tcp_retransmits": retrans}

    # --- processes in the namespaces ----------------------------------------------------
    def popen(self, worker: int, argv: list[str], env: dict | None = None,
              **kwargs) -> subprocess.Popen:
        """Start `argv` inside worker `worker`'s namespace (stopped at teardown)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.workers[worker], *argv], env=env,
                                start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def forget_finished(self) -> None:
        self._procs = [p for p in self._procs if p.poll() is None]
