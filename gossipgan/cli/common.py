"""Options shared by `train` and `solve`: each maps to one config key."""

from __future__ import annotations

import argparse

from gossipgan.train.config import Config, apply_overrides, load_config, set_value

# flag -> (config key, type, help)
RUN_FLAGS = {
    "--algo": ("optim.algo", str,
               "algorithm: dposg, dpoadam, cposg, cpoadam, dpsgda, dpadam, dextragrad"),
    "--topology": ("topology.name", str, "gossip graph, see `gossipgan topology --help`"),
    "--workers": ("topology.workers", int, "number of workers N"),
    "--rounds": ("optim.rounds", int, "gossip rounds t per iteration"),
    "--iters": ("run.iters", int, "iterations"),
    "--lr": ("optim.lr", float, "step size (both players)"),
    "--lr-g": ("optim.lr_g", float, "generator / min player step size"),
    "--lr-d": ("optim.lr_d", float, "discriminator / max player step size"),
    "--batch": ("run.batch", int, "minibatch per worker"),
    "--seed": ("run.seed", int, "seed of initialisation, data order and noise"),
    "--edges": ("topology.edges", str, "edge-list file for --topology file"),
}


def add_run_options(p: argparse.ArgumentParser, extra: dict | None = None) -> None:
    flags = {**RUN_FLAGS, **(extra or {})}
    for flag, (key, typ, text) in flags.items():
        p.add_argument(flag, type=typ, default=None, dest=key.replace(".", "__"),
                       help=f"{text} [{key}]")
    p.add_argument("--config", metavar="FILE",
                   help="YAML config (sections game/data/topology/optim/run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.beta1=0.5 (repeatable)")
    p.add_argument("--out", required=False, default=None, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Defaults < --config file < explicit flags < --set overrides."""
    cfg = load_config(args.config) if args.config else (base or Config())
    for dest, value in vars(args).items():
        if "__" in dest and value is not None:
            set_value(cfg, dest.replace("__", "."), value)
    return apply_overrides(cfg, args.set)
