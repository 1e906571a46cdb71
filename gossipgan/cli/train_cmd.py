"""`gossipgan train`: a GAN on N simulated workers (or one per process under torchrun)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gossipgan.cli.common import add_run_options, config_from_args
from gossipgan.sim import keep_freed_memory
from gossipgan.train import Config, train

TRAIN_FLAGS = {
    "--dataset": ("data.dataset", str),
    "--data-root": ("data.root", str),
    "--model": ("game.model", str),
    "--loss": ("game.loss", str),
    "--shard": ("data.shard", str),
    "--alpha": ("data.alpha", float),
    "--backend": ("run.backend", str),
}


def defaults_line(cfg: Config) -> str:
    """The default run in words, from the config defaults themselves."""
    return (f"Defaults: {cfg.optim.algo}, {cfg.topology.workers} workers, {cfg.topology.name}, "
            f"t={cfg.optim.rounds}, {cfg.game.model.upper()} with {cfg.game.loss} on "
            f"{cfg.data.dataset}, {cfg.run.iters} iterations.")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN with DPOAdam / DPOSG / baselines",
                       description=f"Train a GAN on N workers. {defaults_line(Config())}")
    add_run_options(p, TRAIN_FLAGS)
    p.add_argument("--auto-resume", action="store_true",
                   help="resume if every worker has a checkpoint, else start afresh "
                   "(for torchrun --max-restarts)")
    p.set_defaults(func=run)


def report_interrupted(result: dict) -> None:
    """What an interrupted run tells its user (the main process only)."""
    where = result["checkpoint"] or "no checkpoint"
    print(f"interrupted at iteration {result['iteration']}/{result['iters']}; checkpoint "
          f"saved to {where}. Resume with the same command plus --resume.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(args.out or f"runs/{cfg.optim.algo}-{cfg.topology.name}-{cfg.data.dataset}")
    resume = "auto" if args.auto_resume else args.resume
    if cfg.run.backend == "sim":
        keep_freed_memory()  # this process is the simulator's: an opt-in (gossipgan.sim.malloc)
    summary = train(cfg, out, resume=resume, overwrite=args.overwrite,
                    progress=not args.no_progress)
    if not args.main_process:
        return 0
    if summary.get("interrupted"):
        report_interrupted(summary)
    else:
        print(json.dumps(summary, indent=2))
        print(f"run written to {out}/ (metrics.csv, samples/, plots/, summary.json)")
    return 0
