"""What a claim is made of: run specs as data, the runs they produced, and the analysis.

A claim module (c1_optimism.py, ...) declares

    NUMBER, TITLE, CLAIM (as the seed states it), SETUP (and what differs from the paper)
    specs(scale) -> list[RunSpec]          the training runs, as data
    analyse(runs, fig_dir) -> Analysis     figures, a table and the verdict, from the runs

Claims 7-8 (the emulated network) declare `grids(scale)` instead of `specs`: network
benchmark grids whose cells are training runs too (gossipgan.netem.worker).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipgan.errors import ConfigError
from gossipgan.train.config import Config
from gossipgan.train.outputs import read_metrics

# Largest first: the report shows, per claim, the largest scale whose runs are all finished.
SCALES = ("full", "quick", "tiny")

# The analytic games' common settings (gossipgan solve's defaults): batch 8 per worker,
# ||T(x_bar)||^2 measured exactly at every evaluation.
ANALYTIC = {"optim.algo": "dposg", "optim.lr": 0.05, "run.batch": 8, "run.eval_batch": 256,
            "run.sample_every": 10**6, "run.checkpoint_every": 500, "game.dim": 10}


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ConfigError(f"unknown reproduction scale {scale!r}; known: {', '.join(SCALES)}")
    return scale


def pick(scale: str, full: Any, quick: Any, tiny: Any) -> Any:
    """The value for this scale."""
    return {"full": full, "quick": quick, "tiny": tiny}[check_scale(scale)]


@dataclass(frozen=True)
class RunSpec:
    """One training run: its directory name (under OUT/<scale>/c<claim>/), the config keys it
    sets over the defaults, and tags the analysis groups by (algo, seed, N, ...)."""

    name: str
    values: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    def config(self) -> Config:
        return Config().with_values(self.values)


def analytic_spec(name: str, tags: dict, iters: int, every: int, **values: Any) -> RunSpec:
    """A run on an analytic game: `values` use '__' for '.', e.g. optim__lr=0.1."""
    keys = {k.replace("__", "."): v for k, v in values.items()}
    merged = {**ANALYTIC, "run.iters": iters, "run.log_every": every, "run.eval_every": every,
              **keys}
    return RunSpec(name, merged, tags)


@dataclass
class RunResult:
    """A finished (or diverged) run as the analysis sees it."""

    spec: RunSpec
    dir: Path
    rows: list[dict]
    summary: dict | None
    diverged: str | None = None

    @property
    def tags(self) -> dict:
        return self.spec.tags

    def series(self, key: str, x: str = "iter") -> tuple[list[float], list[float]]:
        """(x, y) of the rows where `key` was measured (finite values only)."""
        pts = [(r[x], r[key]) for r in self.rows
               if r.get(key) is not None and r.get(x) is not None and math.isfinite(r[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    def final(self, key: str) -> float | None:
        """The last measured value of `key`; inf when the run diverged."""
        if self.diverged:
            return math.inf
        _, ys = self.series(key)
        return ys[-1] if ys else None


DIVERGED = "diverged.json"


def load_result(spec: RunSpec, run_dir: Path) -> RunResult | None:
    """The run in `run_dir` if it finished or diverged, else None."""
    summary_path, div_path = run_dir / "summary.json", run_dir / DIVERGED
    if not (summary_path.is_file() or div_path.is_file()):
        return None
    rows = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    if div_path.is_file():
        return RunResult(spec, run_dir, rows, None, json.loads(div_path.read_text())["error"])
    return RunResult(spec, run_dir, rows, json.loads(summary_path.read_text()))


@dataclass
class Analysis:
    """What a claim's section shows: figures (paths), a table (rows of equal keys), the verdict
    ("reproduced", "partly", "not reproduced", or "inconclusive" where the runs cannot
    decide, e.g. too short to learn) and the text that explains it."""

    figures: list[Path]
    table: list[dict]
    verdict: str
    text: str
    notes: list[str] = field(default_factory=list)


def group(runs: list[RunResult], *keys: str) -> dict[tuple, list[RunResult]]:
    """Runs grouped by the values of tags `keys` (in first-seen order)."""
    out: dict[tuple, list[RunResult]] = {}
    for r in runs:
        out.setdefault(tuple(r.tags.get(k) for k in keys), []).append(r)
    return out


def fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "diverged"
        if math.isnan(v):
            return "-"
        return format(v, spec)
    return str(v)


__all__ = ["ANALYTIC", "Analysis", "DIVERGED", "RunResult", "RunSpec", "SCALES",
           "analytic_spec", "check_scale", "fmt", "group", "load_result", "pick"]
