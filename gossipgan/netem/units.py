"""Bandwidths and latencies as the user writes them: a number with a unit.

Rates follow tc's spelling in bits per second (`100mbit`, `1gbit`, also `100Mbit/s`), plus the
networking habit `Mbps` / `Gbps` meaning megabits / gigabits per second. Bare numbers are
refused: tc reads `bps` as BYTES per second, so a unit is the only unambiguous way.
Latencies are one-way per hop: `20ms`, `500us`, `0.02s`; `0` needs no unit.
"""

from __future__ import annotations

import math
import re

from gossipgan.errors import ConfigError

_RATE_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
               "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}
_DELAY_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_NUMBER = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"


def parse_rate(text: str) -> float:
    """'100mbit' -> 1e8 bits per second; ConfigError unless a positive number with a unit."""
    match = re.fullmatch(_NUMBER + r"\s*([a-z]+)(?:/s)?", str(text).strip().lower())
    if not match or match.group(2) not in _RATE_UNITS:
        raise ConfigError(f"bandwidth must be a positive number with a unit, got {text!r}; "
                          "e.g. 100mbit, 1gbit, 1Gbit/s (units: kbit, mbit, gbit, Mbps, Gbps)")
    value = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"bandwidth must be > 0, got {text!r}")
    return value


def parse_delay(text: str) -> float:
    """'20ms' -> 0.02 seconds (one-way, per hop); '0' is allowed without a unit."""
    raw = str(text).strip().lower()
    if re.fullmatch(r"0*\.?0*", raw) and raw not in ("", "."):
        return 0.0
    match = re.fullmatch(_NUMBER + r"\s*([a-z]+)", raw)
    if not match or match.group(2) not in _DELAY_UNITS:
        raise ConfigError(f"latency must be a non-negative number with a unit, got {text!r}; "
                          "e.g. 0, 500us, 5ms, 0.02s")
    value = float(match.group(1)) * _DELAY_UNITS[match.group(2)]
    if not math.isfinite(value) or value > 10:
        raise ConfigError(f"latency must be at most 10 s one-way, got {text!r}")
    return value


def format_rate(bits_per_s: float | None) -> str:
    """1e8 -> '100Mbit/s' (None: the link is not shaped)."""
    if bits_per_s is None:
        return "unshaped"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:g}{unit}"
    return f"{bits_per_s:g}bit/s"


def format_delay(seconds: float) -> str:
    return f"{seconds * 1e3:g}ms"


def split_list(text: str | list[str]) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c'] (a list passes through)."""
    items = text if isinstance(text, list) else str(text).split(",")
    return [s.strip() for s in items if s.strip()]
