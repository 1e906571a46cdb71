"""Run configuration as validated data: `Config`, one frozen section per component.

The sections (`GameConfig`, `DataConfig`, `TopologyConfig`, `OptimConfig`, `RunConfig`) are
declared in `gossipgan.train.config_sections`, each checking its own fields when it is built
(type, range, allowed names, the combinations within it; every float finite). Every field
carries a one-line help text (`describe()` lists them; `--help` and `gossipgan config` print
them), and nothing can change a built config afterwards: `cfg.with_values({"optim.lr": 1e-3})`
returns a new, validated one. Reading and writing (YAML files, `--set` strings) lives in
`gossipgan.train.config_io`.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gossipgan.errors import ConfigError
from gossipgan.train.config_sections import (
    DataConfig,
    GameConfig,
    OptimConfig,
    RunConfig,
    TopologyConfig,
)

SECTIONS = {"game": GameConfig, "data": DataConfig, "topology": TopologyConfig,
            "optim": OptimConfig, "run": RunConfig}


@dataclass(frozen=True)
class Config:
    game: GameConfig = field(default_factory=GameConfig)
    data: DataConfig = field(default_factory=DataConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None, base: Config | None = None) -> Config:
        """`base` (default: the defaults) with the sections and keys of `data` replaced."""
        values = {}
        for section, keys in (data or {}).items():
            if section not in SECTIONS:
                raise ConfigError(f"unknown config section {section!r}; sections: "
                                  f"{', '.join(SECTIONS)}")
            if not isinstance(keys, dict):
                raise ConfigError(f"config section {section!r} must be a mapping, got {keys!r}")
            values.update({f"{section}.{k}": v for k, v in keys.items()})
        return (base or cls()).with_values(values)

    def with_values(self, values: dict[str, Any]) -> Config:
        """A new config with `section.key` values replaced, validated as a whole."""
        changes: dict[str, dict[str, Any]] = {}
        for path, value in values.items():
            section, _, key = str(path).partition(".")
            if section not in SECTIONS or not key:
                raise ConfigError(f"unknown config key {path!r}; use section.key with section "
                                  f"one of {', '.join(SECTIONS)}")
            names = [f.name for f in fields(SECTIONS[section])]
            if key not in names:
                raise ConfigError(f"unknown config key {path!r}; keys of this section: "
                                  f"{', '.join(names)}")
            changes.setdefault(section, {})[key] = value
        return replace(self, **{s: replace(getattr(self, s), **kv) for s, kv in changes.items()})

    def save(self, path: Path) -> None:
        from gossipgan.train.config_io import dump_yaml

        Path(path).write_text(dump_yaml(self.to_dict()))


# Keys that do not change the iterates: a resumed run may differ in these.
NON_MATH_KEYS = {
    "run.iters", "run.log_every", "run.eval_every", "run.eval_batch", "run.sample_every",
    "run.checkpoint_every", "run.threads", "data.root", "run.delay_ms", "run.dist_backend",
    "run.device", "run.quality_every", "run.quality_samples", "run.classifier",
    "run.comm_timeout_s",
    # run.ema is not here: the iterates do not depend on it, but the checkpointed EMA does,
    # and resuming it with another decay (or none) would leave an average of neither.
    "run.ema_per_worker", "run.tensorboard",
}


def math_differences(a: Config, b: Config) -> list[str]:
    """Keys whose values differ between two configs and that change the maths (a null that
    stands for a default compares as that default: a run saved with consensus_step 1.0 and
    no compression is the same run as one with null)."""
    da, db = (c.with_values({"optim.consensus_step": c.optim.gamma()}).to_dict() for c in (a, b))
    return [f"{s}.{k}" for s in da for k in da[s]
            if f"{s}.{k}" not in NON_MATH_KEYS and da[s][k] != db[s][k]]


def describe() -> list[tuple[str, Any, str]]:
    """(key, default, help) of every config key, in the sections' order."""
    out = []
    for name, section in SECTIONS.items():
        for f in fields(section):
            default = f.default if f.default is not MISSING else None
            out.append((f"{name}.{f.name}", default, f.metadata["help"]))
    return out


def help_of(key: str) -> str:
    """The one-line help text of config key `section.key`."""
    return next(h for k, _, h in describe() if k == key)


__all__ = ["Config", "DataConfig", "GameConfig", "NON_MATH_KEYS", "OptimConfig", "RunConfig",
           "SECTIONS", "TopologyConfig", "describe", "help_of", "math_differences"]
