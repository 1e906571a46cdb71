"""Run configuration: one validated dataclass per component, saved as config.yaml.

Everything a run needs to be repeated is here. `apply_overrides` takes `section.key=value`
strings (`--set optim.lr=1e-3`), checks the key exists and the value has the field's type.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from gossipgan.errors import ConfigError


@dataclass
class GameConfig:
    name: str = "gan"             # gan | bilinear | quadratic | minty
    # analytic games
    dim: int = 10
    samples_per_worker: int = 256
    heterogeneity: float = 0.0
    noise: float = 0.1
    # GANs
    loss: str = "wgan-gp"         # nsgan | wgan-gp | hinge
    model: str = "mlp"            # mlp | dcgan | resnet
    latent_dim: int = 32
    width: int | None = None
    gp_weight: float = 10.0


@dataclass
class DataConfig:
    dataset: str = "digits"
    root: str | None = None
    image_size: int | None = None
    shard: str = "iid"            # iid | dirichlet
    alpha: float = 1.0            # Dirichlet concentration (smaller = more skewed)


@dataclass
class TopologyConfig:
    name: str = "ring"
    workers: int = 8
    self_weight: float = 1 / 3    # ring only
    p: float = 0.3                # erdos-renyi edge probability
    graph_seed: int = 0           # erdos-renyi
    edges: str | None = None      # edge-list file for the "file" topology


@dataclass
class OptimConfig:
    algo: str = "dpoadam"
    lr: float = 1e-3
    lr_g: float | None = None     # per-player step sizes (default: lr)
    lr_d: float | None = None
    rounds: int = 1               # gossip rounds t per iteration
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    moments: str = "local"        # local | mixed (DPOAdam, DPAdam)


@dataclass
class RunConfig:
    iters: int = 3000
    batch: int = 64
    seed: int = 0
    log_every: int = 20           # losses, consensus, traffic
    eval_every: int = 500         # ||T(x_bar)||^2 on a large batch (and quality metrics)
    eval_batch: int = 1024
    # Sample quality of x_bar (cls_* for images, hq_rate/modes_covered for 2-D mixtures):
    # every quality_every iterations, a multiple of eval_every; None = at every eval, 0 = off.
    quality_every: int | None = None
    quality_samples: int | None = None   # None: 2000 images / 2500 mixture points
    classifier: str | None = None        # classifier file for cls_* (default: the shipped one)
    sample_every: int = 1000      # image grids of x_bar and worker 0
    checkpoint_every: int = 500
    backend: str = "sim"          # sim | dist (torchrun, one process per worker)
    dist_backend: str = "auto"    # auto | gloo | nccl
    delay_ms: float = 0.0         # dist: application-level per-hop delay (latency emulation)
    vectorize: str = "auto"       # auto | vmap | loop (simulator)
    mixing: str = "auto"          # auto | dense | sparse (simulator)
    threads: int = 1
    device: str = "cpu"


@dataclass
class Config:
    game: GameConfig = field(default_factory=GameConfig)
    data: DataConfig = field(default_factory=DataConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        cfg = cls()
        for section, values in (data or {}).items():
            if not isinstance(values, dict):
                raise ConfigError(f"config section {section!r} must be a mapping, got {values!r}")
            for key, value in values.items():
                set_value(cfg, f"{section}.{key}", value)
        return cfg

    def save(self, path: Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


# Keys that do not change the iterates: a resumed run may differ in these.
NON_MATH_KEYS = {
    "run.iters", "run.log_every", "run.eval_every", "run.eval_batch", "run.sample_every",
    "run.checkpoint_every", "run.threads", "data.root", "run.delay_ms", "run.dist_backend",
    "run.device", "run.quality_every", "run.quality_samples", "run.classifier",
}


def _field_type(section_obj, key: str, path: str):
    hints = typing.get_type_hints(type(section_obj))
    if key not in hints:
        known = ", ".join(f.name for f in fields(section_obj))
        raise ConfigError(f"unknown config key {path!r}; keys of this section: {known}")
    return hints[key]


def _coerce(value, typ, path: str):
    args = typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        typ = next(a for a in args if a is not type(None))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "5e-4" as a string
            return typ(value)
        except ValueError:
            pass
    if typ is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"config key {path!r} needs a {typ.__name__}, got {value!r}")
    return value


def set_value(cfg: Config, path: str, value) -> None:
    """Set `section.key` to `value` after checking key and type."""
    section, _, key = path.partition(".")
    if not key or section not in {f.name for f in fields(cfg)}:
        sections = ", ".join(f.name for f in fields(cfg))
        raise ConfigError(f"unknown config key {path!r}; use section.key with section one of "
                          f"{sections}")
    obj = getattr(cfg, section)
    setattr(obj, key, _coerce(value, _field_type(obj, key, path), path))


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `section.key=value` strings; values are parsed as YAML scalars (1e-3, true, null)."""
    for item in overrides or []:
        path, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs section.key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (list, dict)):
            value = raw  # only scalars are configurable; let the type check name the problem
        set_value(cfg, path.strip(), value)
    return cfg


def load_config(path: str | Path) -> Config:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections")
    return Config.from_dict(data or {})


def math_differences(a: Config, b: Config) -> list[str]:
    """Keys whose values differ between two configs and that change the maths."""
    out = []
    da, db = a.to_dict(), b.to_dict()
    for section in da:
        for key in da[section]:
            path = f"{section}.{key}"
            if path not in NON_MATH_KEYS and da[section][key] != db[section][key]:
                out.append(path)
    return out


def validate(cfg: Config) -> None:
    """Range checks that no single field type can express."""
    r, o, t = cfg.run, cfg.optim, cfg.topology
    positive = {"run.iters": r.iters, "run.batch": r.batch, "run.log_every": r.log_every,
                "run.eval_every": r.eval_every, "run.eval_batch": r.eval_batch,
                "run.sample_every": r.sample_every, "run.checkpoint_every": r.checkpoint_every,
                "run.threads": r.threads, "optim.rounds": o.rounds, "topology.workers": t.workers,
                "game.dim": cfg.game.dim, "game.samples_per_worker": cfg.game.samples_per_worker,
                "game.latent_dim": cfg.game.latent_dim}
    for path, value in positive.items():
        if value < 1:
            raise ConfigError(f"{path} must be >= 1, got {value}")
    for path, value in {"optim.lr": o.lr, "optim.lr_g": o.lr_g, "optim.lr_d": o.lr_d}.items():
        if value is not None and not value > 0:
            raise ConfigError(f"{path} must be > 0, got {value}")
    for path, value in {"optim.beta1": o.beta1, "optim.beta2": o.beta2}.items():
        if not 0 <= value < 1:
            raise ConfigError(f"{path} must be in [0, 1), got {value}")
    if o.eps < 0:
        raise ConfigError(f"optim.eps must be >= 0, got {o.eps}")
    if o.moments not in ("local", "mixed"):
        raise ConfigError(f"optim.moments must be 'local' or 'mixed', got {o.moments!r}")
    if cfg.data.alpha <= 0:
        raise ConfigError(f"non-IID alpha must be > 0, got {cfg.data.alpha}")
    for path, value in {"game.heterogeneity": cfg.game.heterogeneity, "game.noise": cfg.game.noise,
                        "game.gp_weight": cfg.game.gp_weight}.items():
        if value < 0:
            raise ConfigError(f"{path} must be >= 0, got {value}")
    if r.quality_every is not None and (r.quality_every < 0 or r.quality_every % r.eval_every):
        raise ConfigError(f"run.quality_every must be 0 (off) or a multiple of run.eval_every "
                          f"({r.eval_every}), got {r.quality_every}")
    if r.quality_samples is not None and r.quality_samples < 1:
        raise ConfigError(f"run.quality_samples must be >= 1, got {r.quality_samples}")
    if r.backend not in ("sim", "dist"):
        raise ConfigError(f"unknown backend {r.backend!r}; known: sim, dist")
    _check_device(r.device)


def _check_device(name: str) -> None:
    import torch  # here, so reading and writing configs does not need torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown run.device {name!r}; e.g. cpu, cuda, cuda:1") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name!r} but no CUDA GPU is visible; use run.device=cpu")


__all__ = ["Config", "DataConfig", "GameConfig", "OptimConfig", "RunConfig", "TopologyConfig",
           "apply_overrides", "load_config", "math_differences", "set_value", "validate"]
