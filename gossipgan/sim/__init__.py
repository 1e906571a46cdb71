"""The in-process simulator of N workers (the worker stack the SimComm backend mixes).

    workers   `Workers`: the workers' parameters stacked on a leading worker axis, their
              per-worker data streams, and the game's operator for all of them at once
              (torch.func.vmap of the forward, or a loop, chosen by a size rule)
    layout    `WeightMajorLinear`: the linear-layer layout the vmapped forward runs in
    malloc    `keep_freed_memory()`: an opt-in, process-wide glibc setting that keeps the
              memory a step frees for the next step; the CLI's simulator runs turn it on

Under torch.distributed the same `Workers` holds one worker (worker axis of size 1).
"""

from gossipgan.sim.malloc import keep_freed_memory
from gossipgan.sim.workers import VECTORIZE, Workers, worker_seed

__all__ = ["VECTORIZE", "Workers", "keep_freed_memory", "worker_seed"]
