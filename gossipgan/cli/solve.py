"""`gossipgan solve`: an analytic min-max game (bilinear, quadratic, minty) on N workers.

`--algo all` runs every algorithm on the same problem into OUT/<algo>/ and draws one
comparison plot, OUT/comparison.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gossipgan.cli.common import add_run_options, config_from_args
from gossipgan.cli.train_cmd import report_interrupted
from gossipgan.errors import ConfigError
from gossipgan.games.analytic import ANALYTIC_GAMES
from gossipgan.optim import ALGORITHMS
from gossipgan.sim import keep_freed_memory
from gossipgan.train import Config, train
from gossipgan.train.outputs import RUN_MARKERS
from gossipgan.train.plots import plot_comparison

SOLVE_FLAGS = {
    "--game": ("game.name", str),
    "--dim": ("game.dim", int),
    "--heterogeneity": ("game.heterogeneity", float),
    "--noise": ("game.noise", float),
}

# `solve`'s own defaults over the training defaults
SOLVE_DEFAULTS = {"game.name": "bilinear", "optim.algo": "dposg", "optim.lr": 0.05,
                  "run.batch": 8, "run.iters": 2000, "run.log_every": 20, "run.eval_every": 20,
                  "run.eval_batch": 256, "run.checkpoint_every": 1000, "run.sample_every": 1000}


def solve_defaults() -> Config:
    return Config().with_values(SOLVE_DEFAULTS)


def add_parser(sub) -> None:
    p = sub.add_parser("solve", help="solve an analytic min-max game",
                       description="Run decentralized min-max algorithms on an analytic game.")
    add_run_options(p, SOLVE_FLAGS)
    p.set_defaults(func=run)
    for action in p._actions:  # --algo also takes "all" here
        if action.dest == "optim__algo":
            action.help = f"{action.help}; all: every algorithm into OUT/<algo>/"


def run(args: argparse.Namespace) -> int:
    every = args.optim__algo == "all"
    if every:
        args.optim__algo = None  # each algorithm's run sets its own below
    cfg = config_from_args(args, base=solve_defaults())
    if cfg.game.name not in ANALYTIC_GAMES:
        raise ConfigError(f"unknown game {cfg.game.name!r}; known: {', '.join(ANALYTIC_GAMES)} "
                          "(GANs: gossipgan train)")
    out = Path(args.out or f"runs/{cfg.game.name}-{cfg.optim.algo}")
    algos = list(ALGORITHMS) if every else [cfg.optim.algo]
    if cfg.run.backend == "sim":
        keep_freed_memory()  # this process is the simulator's: an opt-in (gossipgan.sim.malloc)
    if not (args.overwrite or args.resume):
        # Check OUT and every OUT/<algo> up front: `--algo all` would otherwise write some
        # algorithms' runs before refusing, and a single run would land inside an `all` run.
        for target in (out, *(out / a for a in ALGORITHMS)):
            if any((target / marker).exists() for marker in RUN_MARKERS):
                raise ConfigError(f"{target} already holds a run; pass --overwrite to replace "
                                  "it or --resume to continue it")
    results = {}
    for algo in algos:
        target = out / algo if len(algos) > 1 else out
        results[algo] = train(cfg.with_values({"optim.algo": algo}), target, resume=args.resume,
                              overwrite=args.overwrite, progress=not args.no_progress)
        if results[algo].get("interrupted"):
            report_interrupted(results[algo])
            return 0
    if len(algos) > 1:
        plot = plot_comparison({a: out / a for a in algos}, out / "comparison.png",
                               keys=("grad_op_norm_sq", "consensus", "dist_to_solution"))
        print(f"{'algorithm':<14}{'||T(x̄)||² start':>18}{'end':>12}{'consensus':>12}")
        for a, s in results.items():
            print(f"{a:<14}{s['initial_grad_op_norm_sq']:>18.3e}{s['final_grad_op_norm_sq']:>12.3e}"
                  f"{s['final_consensus']:>12.3e}")
        print(f"comparison plot: {plot}")
    else:
        print(json.dumps(results[algos[0]], indent=2))
    return 0
