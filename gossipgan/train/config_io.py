"""Reading and writing configs: YAML files, `--set section.key=value` strings, the CLI's layers.

Precedence, lowest first: the defaults (or a command's own base), a `--config` file, explicit
flags, `--set` overrides. The layers are merged as plain values and the `Config` is built
once at the end, so it is validated once, as a whole (a file may set run.quality_every to a
multiple of an eval_every that a flag then sets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gossipgan.errors import ConfigError
from gossipgan.train.config import Config

MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; anything this big is not one


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (the later one would
    silently win)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"key {key!r} appears twice in one section (line "
                              f"{key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: Path) -> Any:
    """A YAML file's data, every problem as one ConfigError line naming the file."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {path.stat().st_size} bytes; a config "
                              f"is at most {MAX_CONFIG_BYTES} bytes")
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (not UTF-8)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: {e.problem}") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(f"config file {path} is not valid YAML: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def load_config(path: str | Path, base: Config | None = None) -> Config:
    """The config in a YAML file of sections (game, data, topology, optim, run), over `base`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    data = read_yaml(p)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections, got "
                          f"{type(data).__name__}")
    try:
        return Config.from_dict(data or {}, base)
    except ConfigError as e:
        raise ConfigError(f"config file {p}: {e}") from None


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`section.key=value` strings as {key: value}, values parsed as YAML scalars
    (1e-3, true, null)."""
    values: dict[str, Any] = {}
    for item in overrides or []:
        path, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs section.key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (list, dict)):
            value = raw  # only scalars are configurable; the type check names the problem
        values[path.strip()] = value
    return values


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """A new config: `cfg` with `section.key=value` strings applied."""
    return cfg.with_values(parse_overrides(overrides))


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


__all__ = ["apply_overrides", "dump_yaml", "load_config", "parse_overrides", "read_yaml"]
