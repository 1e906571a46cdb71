"""Checks a step makes before it moves anything: the mistakes that would otherwise train the
wrong thing to exit status 0 (issue 15).

- A common x_0: the method starts every worker from the same point (DESIGN.md §3). Seeding by
  rank before building the models gives each rank its own x_0; nothing fails, the workers just
  solve a different problem. The first step compares a checksum of every worker's parameters
  (`initial="check"`, the default), copies worker 0's to all (`initial="sync"`), or neither
  (`initial="any"`: for experiments that start the workers apart on purpose).
- One optimizer per communicator and iteration: a script that keeps a PyTorch GAN's two
  optimizers (D steps, then G's loss at the new D, G steps) gossips twice per iteration and
  is the alternating method, not the simultaneous one. Two optimizers over one communicator
  stepping in lock-step is that pattern; the second one's step is refused.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gossipgan.errors import ConfigError, check_choice

if TYPE_CHECKING:
    from gossipgan.optim.gossip import GossipOptimizer

INITIAL = ("check", "sync", "any")
_REGISTRY = "_gossipgan_optimizers"  # attribute on the communicator: its live optimizers


def check_initial(value: str) -> str:
    return check_choice("initial (how the first step treats x_0)", value, INITIAL)


def register(opt: GossipOptimizer) -> None:
    """Remember `opt` on its communicator (weakly: a dropped optimizer does not count)."""
    opt.comm.__dict__.setdefault(_REGISTRY, weakref.WeakSet()).add(opt)


def before_step(opt: GossipOptimizer) -> None:
    """What every step checks first; the first step also handles x_0 (before the closure, so
    the first gradient is taken at the common point)."""
    _refuse_alternating(opt)
    if opt.iteration == 0 and opt.initial != "any":
        params = [p for group in opt.param_groups for p in group["params"]]
        if opt.initial == "sync":
            with torch.no_grad():
                for p, b in zip(params, opt.comm.broadcast([opt._view(p) for p in params]),
                                strict=True):
                    p.copy_(b.view_as(p))
        else:
            _check_common_start(opt, params)


def _refuse_alternating(opt: GossipOptimizer) -> None:
    mine = {id(p) for group in opt.param_groups for p in group["params"]}
    k = opt.iteration
    for other in list(opt.comm.__dict__.get(_REGISTRY, ())):
        if other is opt or other.iteration != k + 1:
            continue
        theirs = {id(p) for group in other.param_groups for p in group["params"]}
        if mine & theirs:
            continue  # the same parameters: a rebuilt optimizer, not a second player
        raise ConfigError(
            f"two optimizers step in turn over one communicator ({type(other).__name__} over "
            f"{len(theirs)} tensors is at step {k + 1}, this {type(opt).__name__} over "
            f"{len(mine)} at step {k}): that gossips twice per iteration and moves one player "
            "at the other's new point; use ONE optimizer over both players' parameters "
            "(parameter groups for per-player lr), fill both players' .grad at the same point "
            "with gossipgan.own.simultaneous_backward, then call step() once")


def _digest(rows: list[Tensor], i: int) -> str:
    h = hashlib.sha256()
    for t in rows:
        h.update(t[i].detach().contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def _check_common_start(opt: GossipOptimizer, params: list[Tensor]) -> None:
    """Every worker's parameters bit for bit equal: a checksum per worker, gathered."""
    rows = [opt._view(p) for p in params]
    digests = [_digest(rows, i) for i in range(opt.comm.n_local)]
    workers = [w for ws in opt.comm.gather_objects(opt.comm.workers) for w in ws]
    every = [d for ds in opt.comm.gather_objects(digests) for d in ds]
    odd = [w for w, d in zip(workers, every, strict=True) if d != every[0]]
    if odd:
        raise ConfigError(
            f"workers start from different parameters (worker {odd[0]} differs from worker "
            f"{workers[0]}, {len(odd)} of {len(workers)} differ): build the models with the "
            "same seed on every rank (seed per rank only after building them), or pass "
            "initial='sync' to the optimizer to copy worker 0's parameters to every worker")
