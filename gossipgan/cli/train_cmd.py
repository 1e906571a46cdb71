"""`gossipgan train`: a GAN on N simulated workers (or one per process under torchrun)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch.distributed as dist

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
    p.add_argument("--auto-resume", action="store_true",
                   help="resume if every worker has a checkpoint, else start afresh "
                   "(for torchrun --max-restarts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(args.out or f"runs/{cfg.optim.algo}-{cfg.topology.name}-{cfg.data.dataset}")
    resume = "auto" if args.auto_resume else args.resume
    try:
        summary = train(cfg, out, resume=resume, overwrite=args.overwrite,
                        progress=not args.no_progress)
    finally:
        if cfg.run.backend == "dist" and dist.is_initialized():
            dist.destroy_process_group()
    if not summary.get("interrupted") and int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(summary, indent=2))
        print(f"run written to {out}/ (metrics.csv, samples/, plots/, summary.json)")
    return 0
