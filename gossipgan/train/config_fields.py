"""The machinery of the config sections: a field with its help text, type coercion, and the
base class that checks a section when it is built (gossipgan.train.config_sections declares
them)."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from gossipgan.errors import ConfigError, check_choice

# Sizes past which nothing fits on a machine of this project's kind; the run builder also
# checks the simulator's parameter memory against the machine's (train/build.py).
MAX_WORKERS = 4096
MAX_SIZE = 16_384  # model width, latent dimension
MAX_COUNT = 10_000_000  # samples, batch sizes, analytic dimensions


def _f(default: Any, help: str) -> Any:
    """A config field and its one-line help text."""
    return field(default=default, metadata={"help": help})


def _coerce(value: Any, typ: Any, path: str) -> Any:
    """`value` as the field's type (YAML 1.1 reads "5e-4" as a string; ints pass as floats)."""
    args = typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        typ = next(a for a in args if a is not type(None))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif typ in (int, float) and isinstance(value, str):
        try:
            value = typ(value)
        except ValueError:
            pass
    elif typ is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"config key {path!r} needs a {typ.__name__}, got {value!r}")
    if typ is float and not math.isfinite(value):
        raise ConfigError(f"config key {path!r} must be a finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class _Section:
    """Coerces every field to its declared type on construction, then runs `check`."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            path = f"{self.section}.{f.name}"
            object.__setattr__(self, f.name, _coerce(getattr(self, f.name), hints[f.name], path))
        self.check()

    section: typing.ClassVar[str] = ""

    def check(self) -> None:
        """Ranges and allowed names; a ConfigError names the key, the value and what is allowed."""

    def _at_most(self, maximum: float, why: str, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value is not None and value > maximum:
                raise ConfigError(f"{self.section}.{name}={value} is too large: at most "
                                  f"{maximum:,} ({why})")

    def _at_least(self, minimum: float, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigError(f"{self.section}.{name} must be >= {minimum}, got {value}")

    def _choice(self, name: str, allowed) -> None:
        check_choice(f"{self.section}.{name}", getattr(self, name), allowed)


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown run.device {name!r}; e.g. cpu, cuda, cuda:1") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name!r} but no CUDA GPU is visible; use run.device=cpu")
