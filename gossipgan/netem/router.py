"""The userspace delay router: one-way latency without netem (DESIGN.md §7).

This kernel has no netem, so latency is added by a process that owns a TUN device in the hub
namespace. The hub routes every worker-to-worker packet into the TUN device; this router reads
each packet, holds it for `delay` seconds and writes it back, whereupon the kernel forwards it
to the destination worker. Every packet crosses the router once, so the delay is one-way per
hop; the reply (or ACK) crosses it again.

Run as `python -m gossipgan.netem.router DEVICE DELAY_MS` inside the hub namespace. It writes
`ready` on stdout once the device exists, and reads commands on stdin: `delay MS` changes the
delay (packets already held keep theirs), `stats` prints the packets forwarded, and end of input
(the parent closed the pipe or died) stops it, which also removes the device.

Throughput: one read and one write system call per packet, so the hub uses a large MTU
(net.MTU, 64 KB) to keep the packet rate low at 1 Gbit/s.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_SIZE = 65536 + 64
PRIORITY = 10  # SCHED_FIFO priority: the router must not queue behind CPU-bound workers


def open_tun(name: str) -> int:
    """Create (or attach to) TUN device `name` in this namespace; returns a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _realtime() -> bool:
    """Run ahead of the training processes: a held packet is due at a set time, and the
    workers keep both cores busy. Falls back to a lower nice value if real-time is refused."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
        return True
    except (PermissionError, OSError, AttributeError):
        try:
            os.nice(-10)
        except OSError:
            pass
        return False


class DelayLine:
    """Packets in arrival order with their due times (a heap: a changed delay may reorder)."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self.forwarded = 0

    def push(self, packet: bytes, now: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (now + self.delay_s, self._seq, packet))

    def timeout(self, now: float) -> float | None:
        """Seconds until the next packet is due (None: nothing held)."""
        return max(0.0, self._heap[0][0] - now) if self._heap else None

    def pop_due(self, now: float) -> list[bytes]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        self.forwarded += len(out)
        return out


def _read_all(fd: int, line: DelayLine) -> None:
    now = time.monotonic()
    while True:
        try:
            packet = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if not packet:
            return
        line.push(packet, now)


def _write(fd: int, packets: list[bytes]) -> None:
    for packet in packets:
        try:
            os.write(fd, packet)
        except OSError:  # a packet the kernel refuses (e.g. no route any more) is dropped
            pass


def _command(text: str, line: DelayLine) -> bool:
    """Apply one stdin command; False means stop."""
    words = text.split()
    if not words:
        return True
    if words[0] == "delay" and len(words) == 2:
        line.delay_s = float(words[1]) / 1000
        print(f"delay {words[1]}", flush=True)
    elif words[0] == "stats":
        print(f"forwarded {line.forwarded}", flush=True)
    elif words[0] == "stop":
        return False
    return True


def serve(name: str, delay_ms: float) -> None:
    fd = open_tun(name)
    realtime = _realtime()
    line = DelayLine(delay_ms / 1000)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    print(f"ready {'realtime' if realtime else 'normal'}", flush=True)
    pending = b""
    while True:
        readable, _, _ = select.select([fd, stdin], [], [], line.timeout(time.monotonic()))
        if fd in readable:
            _read_all(fd, line)
        if stdin in readable:
            chunk = os.read(stdin, 4096)
            if not chunk:
                return
            pending += chunk
            *commands, pending = pending.split(b"\n")
            for text in commands:
                if not _command(text.decode(), line):
                    return
        _write(fd, line.pop_due(time.monotonic()))


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
