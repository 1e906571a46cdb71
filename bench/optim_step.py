"""One optimizer step on the simulator's stacked parameters, against memory-bound yardsticks.

A DPOAdam step on N workers' stacked parameters is element-wise work on large tensors: Adam's
moments, the optimistic extrapolation and one gossip round. It is timed with torch's fused
Adam kernel (what gossipgan.optim uses on CPU and CUDA) and with torch's default CPU kernel
(one tensor at a time, about seven passes over memory), beside one `copy_` of the stacked
parameters (one pass: the unit the step is counted in) and the gossip round alone.

Timings interleaved, median CPU time, 1 thread (as bench/sim_throughput.py). From the repo root:

    .venv/bin/python bench/optim_step.py            # MLP and DCGAN, N = 64 (about 30 s)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from unittest import mock

import torch
from sim_throughput import stacked_params, time_interleaved

import gossipgan.optim.functional as functional
from gossipgan.comm import SimComm
from gossipgan.optim import DPOAdam
from gossipgan.sim import keep_freed_memory
from gossipgan.topology import ring


def default_adam(fn: Callable[[], object]) -> object:
    """fn() with torch's default Adam kernel instead of the fused one."""
    with mock.patch.object(functional, "FUSED_DEVICES", ()):
        return fn()


def bench_step(model: str, n: int, repeats: int) -> dict:
    params = [p.requires_grad_() for p in stacked_params(model, n)]
    gen = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    comm = SimComm(ring(n), mode="sparse")
    opt = DPOAdam(params, comm=comm, lr=1e-3, initial="any")  # perturbed rows: workers apart
    opt.step()  # the first step sets up the state (x_hat, moments)
    copies = [torch.empty_like(p) for p in params]
    flat = [p.detach().view(n, -1) for p in params]

    def copy_once() -> None:
        for c, p in zip(copies, params, strict=True):
            c.copy_(p.detach())

    res = time_interleaved({
        "DPOAdam step, fused Adam": opt.step,
        "DPOAdam step, default Adam": lambda: default_adam(opt.step),
        "gossip round alone": lambda: comm.mix(flat, 1, 0),
        "1x copy_": copy_once,
    }, repeats)
    floats = sum(p.numel() for p in params)
    return {"model": model, "n": n, "mfloats": floats / 1e6, "seconds": res}


def print_step(r: dict) -> None:
    sec = {k: v["cpu"] for k, v in r["seconds"].items()}
    print(f"\n{r['model']} N={r['n']}: {r['mfloats']:.1f}M stacked floats, ring, sparse gossip")
    print(f"  {'variant':28s} {'cpu ms':>8s} {'wall ms':>8s} {'/ 1x copy_':>11s}")
    for key, t in sec.items():
        print(f"  {key:28s} {t * 1e3:8.1f} {r['seconds'][key]['wall'] * 1e3:8.1f} "
              f"{t / sec['1x copy_']:10.1f}x")
    speedup = sec["DPOAdam step, default Adam"] / sec["DPOAdam step, fused Adam"]
    print(f"  fused step {speedup:.2f}x faster than with the default kernel")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats (default 9)")
    ap.add_argument("--workers", type=int, default=64, help="N (default 64)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the CLI does for a simulator run
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, 1 thread, {args.repeats} repeats "
          f"(median CPU time), load average {os.getloadavg()[0]:.1f}")
    for model in ("mlp", "dcgan"):
        print_step(bench_step(model, args.workers, args.repeats))


if __name__ == "__main__":
    main()
