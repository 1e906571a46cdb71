"""A run's files (DESIGN.md §5): config.yaml, metrics.csv, summary.json, plots/, samples/."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from gossipgan.errors import ConfigError

RUN_MARKERS = ("config.yaml", "checkpoint.pt", "metrics.csv")


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory unless asked to."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the run directory {out} is an existing file, not a directory: "
                          "choose another --out")
    has_run = out.is_dir() and any((out / m).exists() for m in RUN_MARKERS)
    if resume:
        if not has_run:
            raise ConfigError(f"--resume: {out} holds no run to resume")
        return
    if has_run and not overwrite:
        raise ConfigError(f"{out} already holds a run; pass --overwrite to replace it or "
                          "--resume to continue it")
    if has_run:
        for name in ("metrics.csv", "summary.json", "checkpoint.pt", "eval.json"):
            (out / name).unlink(missing_ok=True)
        # checkpoints/: per-rank files of a torch.distributed run; an old one with a higher
        # step would outlive the new run's (newest-two rule) and be picked up by a later resume.
        for sub in ("plots", "samples", "checkpoints"):
            for f in (out / sub).glob("*") if (out / sub).is_dir() else []:
                f.unlink()
    out.mkdir(parents=True, exist_ok=True)


class MetricsLog:
    """metrics.csv with a header fixed by the first row; a resumed run appends after
    dropping rows from beyond its checkpoint (they were logged after the last save)."""

    def __init__(self, path: Path, resume_iter: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict] = []
        if resume_iter is not None and path.exists():
            with path.open() as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                self.rows = [r for r in reader if int(r["iter"]) <= resume_iter]
            self._rewrite()

    def append(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row)
        extra = [k for k in row if k not in self.fields]
        if extra:
            self.fields += extra
            self.rows.append(row)
            self._rewrite()
            return
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k)) for k in self.fields})

    def _rewrite(self) -> None:
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields or ["iter"])
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: _fmt(r.get(k)) for k in writer.fieldnames})


def _fmt(v) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv rows with numbers parsed (empty cells become None)."""
    if not path.is_file():
        raise ConfigError(f"no metrics.csv in {path.parent}")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in rows]


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
