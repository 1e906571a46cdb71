"""Options shared by `train` and `solve`: each flag maps to one config key, whose help text
comes from the config field itself (gossipgan.train.config)."""

from __future__ import annotations

import argparse

from gossipgan.errors import ConfigError
from gossipgan.train.config import Config, help_of
from gossipgan.train.config_io import parse_overrides, read_yaml

# flag -> (config key, type)
RUN_FLAGS = {
    "--algo": ("optim.algo", str),
    "--topology": ("topology.name", str),
    "--workers": ("topology.workers", int),
    "--rounds": ("optim.rounds", int),
    "--iters": ("run.iters", int),
    "--lr": ("optim.lr", float),
    "--lr-g": ("optim.lr_g", float),
    "--lr-d": ("optim.lr_d", float),
    "--batch": ("run.batch", int),
    "--seed": ("run.seed", int),
    "--edges": ("topology.edges", str),
}


def add_run_options(p: argparse.ArgumentParser, extra: dict | None = None) -> None:
    flags = {**RUN_FLAGS, **(extra or {})}
    for flag, (key, typ) in flags.items():
        p.add_argument(flag, type=typ, default=None, dest=key.replace(".", "__"),
                       metavar=flag.lstrip("-").upper().replace("-", "_"),
                       help=f"{help_of(key)} [{key}]")
    p.add_argument("--config", metavar="FILE",
                   help="YAML config (sections game/data/topology/optim/run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.beta1=0.5 (repeatable; "
                   "`gossipgan config` lists the keys)")
    p.add_argument("--out", required=False, default=None, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Defaults (or `base`) < --config file < explicit flags < --set, built and checked once."""
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        raise ConfigError("--resume and --overwrite contradict each other: --resume continues "
                          "the run in --out, --overwrite replaces it; pass one")
    values: dict = {}
    if args.config:
        from pathlib import Path

        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = read_yaml(path) or {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ConfigError(f"config file {path} must hold a mapping of sections "
                              "(game, data, topology, optim, run), each a mapping of keys")
        values.update({f"{s}.{k}": v for s, keys in data.items() for k, v in keys.items()})
    values.update({dest.replace("__", "."): value for dest, value in vars(args).items()
                   if "__" in dest and value is not None})
    values.update(parse_overrides(args.set))
    return (base or Config()).with_values(values)
