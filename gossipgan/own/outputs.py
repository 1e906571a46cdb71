"""The run's output for your own modules: the average iterate x_bar (or one worker's x_k) as a
state dict, on any backend, and a context manager that puts it into the modules.

Why this is needed: after `step()` an optimistic method's parameters hold the extrapolation
point z_{k+1}, not the iterate x_k (DESIGN.md §4), so `netG.state_dict()` and samples drawn
with `netG` are z's. And `comm.average(opt.iterates())` wants the worker axis, which a plain
module's parameters under torchrun do not have.

    sd = iterate_state_dict(opt, netG)            # x_bar of netG (a collective under torchrun)
    with use_iterate(opt, netG, netD):            # x_bar in the modules, z restored after
        fake = netG(fixed_noise)
    with use_iterate(opt, workers):               # the simulator: into the ModuleGame's modules

Buffers: floating ones (BatchNorm's running statistics) are averaged with the parameters for
x_bar; the others (num_batches_tracked) are the worker's own, equal on every worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from gossipgan.errors import ConfigError
from gossipgan.optim.gossip import GossipOptimizer
from gossipgan.sim.workers import Workers

Source = nn.Module | Workers


def _iterates(opt: GossipOptimizer) -> dict[int, Tensor]:
    params = [p for group in opt.param_groups for p in group["params"]]
    return {id(p): x for p, x in zip(params, opt.iterates(), strict=True)}


def _module_tensors(opt: GossipOptimizer, module: nn.Module) -> dict[str, Tensor]:
    """module.state_dict()'s entries, parameters replaced by their iterate; each with a
    worker axis of size 1 (a module holds this process's one worker)."""
    if opt.comm.n_local != 1:
        raise ConfigError(f"{type(module).__name__}'s parameters hold one worker but the "
                          f"communicator holds {opt.comm.n_local}: on the simulator pass the "
                          "Workers (gossipgan.sim.Workers) instead of the module")
    xs = _iterates(opt)
    params = dict(module.named_parameters())
    missing = [k for k, p in params.items() if id(p) not in xs]
    if missing:
        raise ConfigError(f"{type(module).__name__}.{missing[0]} is not a parameter of the "
                          "optimizer: pass the modules whose parameters it steps")
    out = {}
    for k, v in module.state_dict(keep_vars=True).items():
        out[k] = (xs[id(params[k])] if k in params else v).detach().unsqueeze(0)
    return out


def _workers_tensors(opt: GossipOptimizer, workers: Workers) -> dict[str, Tensor]:
    xs = _iterates(opt)
    missing = [k for k, p in workers.params.items() if id(p) not in xs]
    if missing:
        raise ConfigError(f"parameter {missing[0]!r} of the Workers is not the optimizer's")
    return {**{k: xs[id(p)].detach() for k, p in workers.params.items()}, **workers.buffers}


def iterate_state_dict(opt: GossipOptimizer, source: Source, *, average: bool = True,
                       worker: int | None = None) -> dict[str, Tensor]:
    """x_bar (`average=True`, a collective: every rank calls it) or one worker's iterate x_k
    (`average=False`: this process's worker, or the simulator's `worker`, default the first
    held) of `source`: a module whose parameters `opt` steps (torchrun: no worker axis) or the
    simulator's `Workers` (names "G.*"/"D.*" for a ModuleGame). Detached copies, no worker
    axis: ready for `load_state_dict` / `torch.save`."""
    if isinstance(source, Workers):
        tensors = _workers_tensors(opt, source)
    elif isinstance(source, nn.Module):
        tensors = _module_tensors(opt, source)
    else:
        raise ConfigError(f"iterate_state_dict takes an nn.Module or a Workers, got "
                          f"{type(source).__name__}")
    if not average:
        held = opt.comm.workers
        w = held[0] if worker is None else worker
        if w not in held:
            raise ConfigError(f"worker {w} is not held here (held: {held})")
        i = held.index(w)
        return {k: v[i].clone() for k, v in tensors.items()}
    floats = [k for k, v in tensors.items() if v.is_floating_point()]
    with torch.no_grad():
        means = dict(zip(floats, opt.comm.average([tensors[k] for k in floats]), strict=True))
    return {k: means[k].clone() if k in means else v[0].clone() for k, v in tensors.items()}


def _load(module: nn.Module, state: dict[str, Tensor]) -> None:
    with torch.no_grad():
        module.load_state_dict(state)


@contextlib.contextmanager
def use_iterate(opt: GossipOptimizer, *sources: Source, average: bool = True,
                worker: int | None = None) -> Iterator[None]:
    """Inside: the modules hold x_bar (or x_k, see `iterate_state_dict`), for sampling and
    saving; after: what they held before (z, and this worker's own buffers), so training
    goes on unchanged. A Workers source loads into its ModuleGame's template modules."""
    targets: list[tuple[nn.Module, dict[str, Tensor]]] = []
    for source in sources:
        state = iterate_state_dict(opt, source, average=average, worker=worker)
        if isinstance(source, Workers):
            game = source.game
            if not (hasattr(game, "G") and hasattr(game, "D")):
                raise ConfigError(f"{type(game).__name__} has no modules to load into; use "
                                  "iterate_state_dict")
            for prefix, module in (("G.", game.G), ("D.", game.D)):
                targets.append((module, {k[2:]: v for k, v in state.items()
                                         if k.startswith(prefix)}))
        else:
            targets.append((source, state))
    saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m, _ in targets]
    try:
        for module, state in targets:
            _load(module, state)
        yield
    finally:
        for (module, _), before in zip(targets, saved, strict=True):
            _load(module, before)
