"""α and β of the emulated link, measured with the same gloo transport the cells use.

`calibrate` runs on every rank of a condition's workers after the cells (worker.py's
`run_condition`), on the connections they have warmed; the α–β model it fits
(`from_two_points`, `from_exchange`) and the predictions made with it are in alphabeta.py.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist

from gossipgan.netem import alphabeta

TINY_BYTES = 4
CAL_REPS = 15
BIG_REPS = 3
EXCHANGE_REPS = 3
EXCHANGE_SECONDS = 0.1  # of traffic per timed burst of exchanges (2..8 exchanges)


def _pingpong(nbytes: int, reps: int, warmup: int = 2) -> tuple[float, float]:
    """(fastest, median) one-way time (RTT/2) of a `nbytes` message between ranks 0 and 1."""
    buf = torch.zeros(max(1, nbytes // 4))
    rank = dist.get_rank()
    times = []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        if rank == 0:
            dist.send(buf, 1)
            dist.recv(buf, 1)
        elif rank == 1:
            dist.recv(buf, 0)
            dist.send(buf, 0)
        if r >= warmup:
            times.append((time.perf_counter() - t0) / 2)
    return (min(times), statistics.median(times)) if times else (0.0, 0.0)


def _exchange(nbytes: int, reps: int, burst: int) -> float:
    """Fastest per-exchange time of `burst` back-to-back two-way exchanges of `nbytes`
    between every rank pair (2k, 2k+1) at once, receives posted first as DistComm posts them.

    This is the traffic the cells make: every worker sends and receives at once, on warm
    connections, with messages of the model's size. (A lone ping-pong of a big message also
    measures TCP's slow start and the host's spare cores, which the cells do not see.)"""
    rank, world = dist.get_rank(), dist.get_world_size()
    partner = rank ^ 1
    out, inp = torch.zeros(max(1, nbytes // 4)), torch.zeros(max(1, nbytes // 4))
    times = []
    for _ in range(reps + 1):  # the first is warm-up
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(burst if partner < world else 0):
            ops = [dist.P2POp(dist.irecv, inp, partner), dist.P2POp(dist.isend, out, partner)]
            for work in dist.batch_isend_irecv(ops):
                work.wait()
        times.append((time.perf_counter() - t0) / burst)
    mine = min(times[1:])
    everyone = [0.0] * world
    dist.all_gather_object(everyone, mine if partner < world else 0.0)
    return max(everyone)  # an exchange ends when the slowest pair's does


def calibrate(spec: dict, message_bytes: int) -> dict:
    """α and β of the emulated link, measured with the same gloo transport the runs use.

    α is the fastest one-way time of a tiny ping-pong between ranks 0 and 1: on a shared CPU
    a process that is not scheduled only ever adds time. β comes from every worker pair
    exchanging messages of the model's size at once (`_exchange`): each exchange costs
    gloo's two one-way latencies plus n/β. A lone ping-pong of a ~0.2 s message is recorded
    too (`big_*`: one TCP stream with the host otherwise idle) to show how far the link's
    single-stream rate is from what the cells get."""
    rate = spec["rate_bps"]
    big = int(min(32 << 20, max(1 << 20, (rate or 1.6e9) / 8 * 0.2)))
    dist.barrier()
    tiny = _pingpong(TINY_BYTES, CAL_REPS)
    large = _pingpong(big, BIG_REPS)
    burst = int(min(8, max(2, EXCHANGE_SECONDS * (rate or 1e9) / 8 / message_bytes)))
    exchange = _exchange(message_bytes, EXCHANGE_REPS, burst)
    found = [None]
    if dist.get_rank() == 0:
        found[0] = {"tiny_s": tiny[0], "big_s": large[0], "big_bytes": big,
                    "message_bytes": message_bytes, "exchange_s": exchange,
                    "exchange_burst": burst, "tiny_median_s": tiny[1],
                    "big_median_s": large[1]}
    dist.broadcast_object_list(found, src=0)
    cal = found[0]
    single = alphabeta.from_two_points(cal["tiny_s"], big, cal["big_s"])
    model = alphabeta.from_exchange(cal["tiny_s"], message_bytes, exchange, fallback=single)
    # The no-root fallback sleeps delay_s per hop in DistComm, on top of the loopback link.
    app = spec["delay_s"] if spec["emulation"] == "app-delay" else 0.0
    cal.update(alpha_s=model.alpha_s, beta_Bps=model.beta_Bps, app_delay_s=app,
               single_stream_beta_Bps=single.beta_Bps)
    return cal
