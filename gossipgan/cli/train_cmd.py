"""`gossipgan train`: a GAN on N simulated workers (or one per process under torchrun)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gossipgan.cli.common import add_run_options, config_from_args
from gossipgan.train import train

TRAIN_FLAGS = {
    "--dataset": ("data.dataset", str, "digits, ring8, grid25, mnist5k, fashion-mnist, mnist-idx, "
                  "cifar10, imagefolder, npz"),
    "--data-root": ("data.root", str, "folder (or .npz file) for the file datasets"),
    "--model": ("game.model", str, "mlp, dcgan, resnet"),
    "--loss": ("game.loss", str, "nsgan, hinge, wgan-gp"),
    "--shard": ("data.shard", str, "iid or dirichlet"),
    "--alpha": ("data.alpha", float, "Dirichlet concentration for --shard dirichlet"),
    "--backend": ("run.backend", str, "sim (one process) or dist (torchrun)"),
}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN with DPOAdam / DPOSG / baselines",
                       description="Train a GAN on N workers. Defaults: DPOAdam, 8 workers, ring, "
                       "t=1, DCGAN on sklearn digits.")
    add_run_options(p, TRAIN_FLAGS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(args.out or f"runs/{cfg.optim.algo}-{cfg.topology.name}-{cfg.data.dataset}")
    summary = train(cfg, out, resume=args.resume, overwrite=args.overwrite,
                    progress=not args.no_progress)
    if not summary.get("interrupted"):
        print(json.dumps(summary, indent=2))
        print(f"run written to {out}/ (metrics.csv, samples/, plots/, summary.json)")
    return 0
