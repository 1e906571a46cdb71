"""Simulator throughput against its two natural yardsticks, measured side by side in one run.

Operator (one "operator evaluation" = both players' gradients for ALL N workers):

    sim auto / vmap / loop   Workers.compute_grads() on a GanGame (draws the N batches too):
                             vmapped or looped forward of GanGame.player_losses, then one
                             torch.autograd.grad per player over the stacked parameters
    sim vmap, plain          the same with F.linear as torch runs it under vmap (what the
                             weight-major layout of sim.layout.WeightMajorLinear replaces)
    sim vmap, wm inner       WGAN-GP only: weight-major inside the penalty's inner gradient
                             too (where the simulator leaves F.linear plain)
    func vmap / func loop    the path before it (and still the one for games without
                             player_losses): GanGame.operator, torch.func.grad of one worker's
                             losses, vmapped or looped over the workers (draws batches too)
    naive loop               N separate nn.Module G/D pairs, plain autograd, one after another
    big batch                ONE G/D pair on an N-times larger batch: the same arithmetic in
                             the fewest, largest kernels, the practical limit

    worker-steps/s = N / seconds per operator evaluation

Gossip (one round, N = 256): SimComm.mix in sparse and dense mode against (deg+1) copies of
the stacked parameters, `copy_` into preallocated tensors and fresh `.clone()`s (the
memory-bound limit: a round reads each neighbour's parameters once and writes its own).

Timings are interleaved (every variant once per repeat, so a burst of load from other
processes hits all of them) and summarised by the median of this process's CPU time, which a
shared machine inflates far less than wall time (shown too); 1 thread. From the repo root:

    .venv/bin/python bench/sim_throughput.py            # full (< 10 min on 2 cores)
    .venv/bin/python bench/sim_throughput.py --quick    # about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

import gossipgan.sim.layout as layout_module
import gossipgan.sim.workers as workers_module
from gossipgan.comm import SimComm
from gossipgan.data import load_dataset
from gossipgan.games.gan import GanGame
from gossipgan.models import build_models
from gossipgan.sim import Workers, keep_freed_memory
from gossipgan.topology import ring, torus

LATENT = 32  # GanGame's default latent_dim
GP_WEIGHT = 10.0  # GanGame's default gp_weight
LOSSES = ("nsgan", "wgan-gp")  # wgan-gp is the training default; the goal was set on nsgan
MODELS = {"mlp": "ring8", "dcgan": "digits"}  # model -> dataset


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                     warmup: int = 1) -> dict[str, dict[str, float]]:
    """Median CPU and wall seconds per call of each fn, taking turns within each repeat.

    CPU time (this process, user + system, so page faults count) is what the tables use: with
    one thread it equals wall time on an idle machine, and unlike wall time it does not grow
    while other processes hold the cores.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            c, w = time.process_time(), time.perf_counter()
            fn()
            wall[key].append(time.perf_counter() - w)
            cpu[key].append(time.process_time() - c)
    return {k: {"cpu": statistics.median(cpu[k]), "wall": statistics.median(wall[k])}
            for k in fns}


# --- the two yardsticks: plain nn.Modules and autograd, the losses as in GanGame ------------
def plain_grads(loss: str, g: nn.Module, d: nn.Module, batch: dict[str, Tensor]
                ) -> tuple[Tensor, ...]:
    """Each player's gradient of its own loss, the way one writes it without the simulator."""
    x, z = batch["x"], batch["z"]
    fake = g(z)
    d_fake, d_real = d(fake), d(x)
    if loss == "nsgan":
        loss_g = F.softplus(-d_fake).mean()
        loss_d = (F.softplus(-d_real) + F.softplus(d_fake)).mean()
    else:  # wgan-gp
        e = batch["e"].view(-1, *([1] * (x.dim() - 1)))
        mix = (e * x + (1 - e) * fake.detach()).requires_grad_()
        (grad_mix,) = torch.autograd.grad(d(mix).sum(), mix, create_graph=True)
        penalty = (grad_mix.flatten(1).norm(dim=1) - 1).pow(2).mean()
        loss_g, loss_d = -d_fake.mean(), d_fake.mean() - d_real.mean() + GP_WEIGHT * penalty
    grads_g = torch.autograd.grad(loss_g, list(g.parameters()), retain_graph=True)
    return grads_g + torch.autograd.grad(loss_d, list(d.parameters()))


def plain_linear(fn: Callable[[], object]) -> object:
    """fn() with the vmapped forward's F.linear left as it is (no weight-major layout)."""
    with mock.patch.object(workers_module, "WeightMajorLinear", contextlib.nullcontext):
        return fn()


def weight_major_everywhere(fn: Callable[[], object]) -> object:
    """fn() with F.linear weight-major inside the WGAN-GP penalty's inner gradient too."""
    with mock.patch.object(layout_module, "_inside_grad_transform", lambda t: False):
        return fn()


def module_pair(game: GanGame, params: dict[str, Tensor],
                worker: int) -> tuple[nn.Module, nn.Module]:
    """A fresh G/D pair holding `worker`'s parameters (so every variant does the same sums)."""
    g, d = build_models(game.model, game.dataset.shape, game.latent_dim, game.width)
    with torch.no_grad():
        for prefix, module in (("G.", g), ("D.", d)):
            for name, p in module.named_parameters():
                p.copy_(params[prefix + name][worker])
    return g, d


def func_loop(game: GanGame, sim: Workers) -> list[dict[str, Tensor]]:
    """The torch.func operator of each worker in turn, on a fresh batch (the old loop path)."""
    batch = sim.sample()
    return [game.operator({k: v[i] for k, v in sim.params.items()},
                          {k: v[i] for k, v in batch.items()}) for i in range(len(sim.workers))]


def bench_operator(model: str, n: int, batch: int, repeats: int, loss: str = "nsgan") -> dict:
    data = load_dataset(MODELS[model])
    # shards may be smaller than the batch: workers sample with replacement
    game = GanGame(data, n, model=model, latent_dim=LATENT, loss=loss, gp_weight=GP_WEIGHT)
    sims = {mode: Workers(game, list(range(n)), 0, batch, vectorize=mode)
            for mode in ("auto", "vmap", "loop")}
    sims["auto"].compute_grads()  # resolves "auto"
    picked = sims["auto"].vectorize
    xs = sims["loop"].sample()
    pairs = [module_pair(game, sims["loop"].params, i) for i in range(n)]
    big = {k: v.flatten(0, 1) for k, v in xs.items()}

    def naive_loop() -> None:
        for i, (g, d) in enumerate(pairs):
            plain_grads(loss, g, d, {k: v[i] for k, v in xs.items()})

    fns: dict[str, Callable[[], object]] = {
        f"sim {mode}": sims[mode].compute_grads for mode in ("auto", "vmap", "loop")}
    fns["sim vmap, plain"] = lambda: plain_linear(sims["vmap"].compute_grads)
    if loss == "wgan-gp":
        fns["sim vmap, wm inner"] = lambda: weight_major_everywhere(sims["vmap"].compute_grads)
    func_vmap = vmap(game.operator, in_dims=(0, 0), randomness="error")
    fns["func vmap"] = lambda: func_vmap(sims["vmap"].params, sims["vmap"].sample())
    fns["func loop"] = lambda: func_loop(game, sims["loop"])
    fns["sim sampling only"] = sims["auto"].sample
    fns["naive loop"] = naive_loop
    fns["big batch"] = lambda: plain_grads(loss, *pairs[0], big)
    res = time_interleaved(fns, repeats)
    per_worker = sum(v[0].numel() for v in sims["loop"].params.values())
    return {"model": model, "loss": loss, "dataset": data.name, "n": n, "batch": batch,
            "params_per_worker": per_worker, "auto_picks": picked, "seconds": res}


def print_operator(r: dict) -> None:
    sec = {k: v["cpu"] for k, v in r["seconds"].items()}
    n = r["n"]
    print(f"\n{r['model']} {r['loss']} on {r['dataset']}, N={n}, batch {r['batch']}/worker, "
          f"{r['params_per_worker']:,} params/worker, auto -> {r['auto_picks']}")
    print(f"  {'variant':18s} {'cpu ms':>9s} {'wall ms':>9s} {'steps/s':>9s} "
          f"{'vs naive loop':>14s} {'vs big batch':>13s}")
    for key, t in sec.items():
        if key == "sim sampling only":
            print(f"  {key:18s} {t * 1e3:9.1f}   (inside every sim row)")
            continue
        print(f"  {key:18s} {t * 1e3:9.1f} {r['seconds'][key]['wall'] * 1e3:9.1f} {n / t:9.0f} "
              f"{sec['naive loop'] / t:13.2f}x {t / sec['big batch']:12.2f}x")


# --- gossip ---------------------------------------------------------------------------------
def stacked_params(model: str, n: int) -> list[Tensor]:
    game = GanGame(load_dataset(MODELS[model]), n, model=model, latent_dim=LATENT)
    gen = torch.Generator().manual_seed(0)
    return [v.expand(n, *v.shape) + 0.01 * torch.randn(n, *v.shape, generator=gen)
            for v in game.init_params(0).values()]


def bench_gossip(model: str, topology_name: str, n: int, repeats: int) -> dict:
    topology = {"ring": ring, "torus": torus}[topology_name](n)
    xs = stacked_params(model, n)
    copies = topology.max_degree + 1
    buffers = [torch.empty_like(x) for x in xs]
    sparse, dense = SimComm(topology, mode="sparse"), SimComm(topology, mode="dense")

    def copy_into() -> None:
        for _ in range(copies):
            for b, x in zip(buffers, xs, strict=True):
                b.copy_(x)

    def clone() -> None:
        for _ in range(copies):
            [x.clone() for x in xs]

    res = time_interleaved({
        "mix sparse": lambda: sparse.mix(xs, 1, 0),
        "mix dense": lambda: dense.mix(xs, 1, 0),
        f"{copies}x copy_": copy_into,
        f"{copies}x clone": clone,
    }, repeats)
    return {"model": model, "topology": topology_name, "n": n, "copies": copies,
            "mbytes": sum(x.numel() * x.element_size() for x in xs) / 1e6, "seconds": res}


def print_gossip(r: dict) -> None:
    sec = {k: v["cpu"] for k, v in r["seconds"].items()}
    c = r["copies"]
    print(f"\ngossip: {r['topology']} N={r['n']}, stacked {r['model']} parameters "
          f"({r['mbytes']:.0f} MB), copy bound = {c} copies")
    print(f"  {'variant':14s} {'cpu ms':>9s} {'wall ms':>9s} "
          f"{'/ copy_ bound':>14s} {'/ clone bound':>14s}")
    for key, t in sec.items():
        print(f"  {key:14s} {t * 1e3:9.1f} {r['seconds'][key]['wall'] * 1e3:9.1f} "
              f"{t / sec[f'{c}x copy_']:13.2f}x {t / sec[f'{c}x clone']:13.2f}x")


def print_goals(results: dict) -> None:
    """The issue's targets, checked against this run's medians."""
    print("\ngoals (median CPU times of this run):")
    for r in results["operator"]:
        if (r["model"], r["n"]) == ("mlp", 64):
            sec = {k: v["cpu"] for k, v in r["seconds"].items()}
            speedup, gap = sec["naive loop"] / sec["sim auto"], sec["sim auto"] / sec["big batch"]
            print(f"  MLP {r['loss']} N=64: sim {speedup:.2f}x faster than the naive loop "
                  f"(goal >= 5x: "
                  f"{'met' if speedup >= 5 else 'MISSED'}), {gap:.2f}x the big-batch time "
                  f"(goal <= 1.5x: {'met' if gap <= 1.5 else 'MISSED'})")
    for r in results["gossip"]:
        if r["topology"] == "ring":
            sec = {k: v["cpu"] for k, v in r["seconds"].items()}
            c = r["copies"]
            ratio = sec["mix sparse"] / sec[f"{c}x copy_"]
            print(f"  ring N={r['n']} {r['model']}: sparse round {ratio:.2f}x the {c}x copy_ "
                  f"bound (goal <= 2x: {'met' if ratio <= 2 else 'MISSED'}), "
                  f"{sec['mix sparse'] / sec[f'{c}x clone']:.2f}x the {c}x clone bound")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 8, 64 only; fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, quick 3)")
    ap.add_argument("--batch", type=int, default=64, help="batch per worker")
    ap.add_argument("--dcgan-batch-256", type=int, default=None,
                    help="batch per worker of the DCGAN at N = 256 (default: --batch)")
    ap.add_argument("--json", default=None, help="also write all timings to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as `gossipgan train` does for a simulator run
    repeats = args.repeats or (3 if args.quick else 5)
    sizes = (8, 64) if args.quick else (8, 64, 256)
    wall, cpu = time.perf_counter(), time.process_time()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, 1 thread, {repeats} repeats (median CPU time), "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list] = {"operator": [], "gossip": []}
    for model in MODELS:
        for n in sizes:
            batch = args.batch
            if (model, n) == ("dcgan", 256) and args.dcgan_batch_256:
                batch = args.dcgan_batch_256
            # the slowest configurations get fewer repeats to stay within the time budget
            reps = max(3, repeats - 2) if (model, n) == ("dcgan", 256) else repeats
            r = bench_operator(model, n, batch, reps)
            results["operator"].append(r)
            print_operator(r)
    # the training default's loss (its penalty differentiates through the critic twice)
    r = bench_operator("mlp", 64, args.batch, repeats, loss="wgan-gp")
    results["operator"].append(r)
    print_operator(r)
    gossip_runs = [("dcgan", "ring"), ("mlp", "ring")]
    if not args.quick:
        gossip_runs.append(("dcgan", "torus"))
    for model, topo_name in gossip_runs:
        r = bench_gossip(model, topo_name, 256, repeats)
        results["gossip"].append(r)
        print_gossip(r)
    print_goals(results)
    print(f"\ntotal: {time.perf_counter() - wall:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} s CPU, load average now {os.getloadavg()[0]:.1f} "
          "(other processes share these cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
