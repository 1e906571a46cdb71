"""Where vmap stops paying: loop time / vmap time of the simulator's operator by model size.

`Workers` picks vmap or a Python loop over workers by a size rule (workers.VMAP_MAX_PARAMS,
VMAP_MAX_CONV_PARAMS). This measures the MLP GAN's operator both ways at growing widths, so
the rule's thresholds can be checked against this machine. Above 1.0, vmap is faster.
Interleaved, median CPU time, 1 thread (as bench/sim_throughput.py). From the repo root:

    .venv/bin/python bench/vmap_rule.py        # about 4 minutes
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone

import torch
from sim_throughput import LATENT, time_interleaved

from gossipgan.data import load_dataset
from gossipgan.games.gan import GanGame
from gossipgan.sim import keep_freed_memory
from gossipgan.sim.workers import VMAP_MAX_PARAMS, Workers

# (loss, MLP widths): WGAN-GP only near the crossover, its steps take twice as long
RUNS = (("nsgan", (256, 300, 340, 384, 512, 768)), ("wgan-gp", (256, 300)))


def loop_over_vmap(loss: str, width: int, n: int, repeats: int) -> tuple[int, float]:
    game = GanGame(load_dataset("ring8"), n, model="mlp", latent_dim=LATENT, width=width,
                   loss=loss)
    sims = {mode: Workers(game, list(range(n)), 0, 64, vectorize=mode) for mode in
            ("vmap", "loop")}
    sec = time_interleaved({m: s.compute_grads for m, s in sims.items()}, repeats)
    per_worker = sum(v[0].numel() for v in sims["vmap"].params.values())
    return per_worker, sec["loop"]["cpu"] / sec["vmap"]["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as `gossipgan train` does for a simulator run
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, 1 thread, {args.repeats} "
          f"repeats, batch 64, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
          f"{os.getloadavg()[0]:.1f}; the rule picks vmap up to {VMAP_MAX_PARAMS:,} params/worker")
    print(f"{'loss':8s} {'width':>5s} {'params/worker':>14s} {'N=16':>6s} {'N=64':>6s} "
          "(loop time / vmap time)")
    for loss, widths in RUNS:
        for width in widths:
            ratios = [loop_over_vmap(loss, width, n, args.repeats) for n in (16, 64)]
            print(f"{loss:8s} {width:5d} {ratios[0][0]:14,d} {ratios[0][1]:6.2f} "
                  f"{ratios[1][1]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
