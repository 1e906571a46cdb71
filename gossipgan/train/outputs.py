"""A run's files (DESIGN.md §5): config.yaml, metrics.csv, summary.json, plots/, samples/."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

from gossipgan.errors import ConfigError

RUN_MARKERS = ("config.yaml", "checkpoint.pt", "metrics.csv")
# What a run writes (classifier.pt, from `eval --train-classifier`, is the user's and stays).
RUN_FILES = ("config.yaml", "metrics.csv", "summary.json", "checkpoint.pt", "eval.json",
             "plots", "samples", "checkpoints", "tb")
REPLACED = ".replaced"  # an overwritten run waits here until the new one has started cleanly


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory unless asked to. --overwrite moves the old
    run's files into OUT/.replaced/; `settle_run_dir` removes them once the new run has
    started cleanly, and a start that fails first puts them back (`restore_replaced`)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the run directory {out} is an existing file, not a directory: "
                          "choose another --out")
    restore_replaced(out)  # a replacement that never started cleanly: the old run is back
    has_run = out.is_dir() and any((out / m).exists() for m in RUN_MARKERS)
    if resume:
        if not has_run:
            raise ConfigError(f"--resume: {out} holds no run to resume")
        return
    if has_run and not overwrite:
        raise ConfigError(f"{out} already holds a run; pass --overwrite to replace it or "
                          "--resume to continue it")
    if has_run:
        aside = out / REPLACED
        aside.mkdir()
        for name in RUN_FILES:
            if (out / name).exists():
                (out / name).rename(aside / name)
    out.mkdir(parents=True, exist_ok=True)


def restore_replaced(out: Path) -> None:
    """Put an overwritten run back (the new one failed before it started cleanly)."""
    aside = out / REPLACED
    if not aside.is_dir():
        return
    for name in RUN_FILES:
        if (aside / name).exists():
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (aside / name).rename(target)
    shutil.rmtree(aside)


def settle_run_dir(out: Path) -> None:
    """The new run started cleanly: the run it replaced can go."""
    if (out / REPLACED).is_dir():
        shutil.rmtree(out / REPLACED)


class MetricsLog:
    """metrics.csv with a header fixed by the first row; a resumed run appends after
    dropping rows from beyond its checkpoint (they were logged after the last save)."""

    def __init__(self, path: Path, resume_iter: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict] = []
        if resume_iter is not None and path.exists():
            try:
                with path.open() as f:
                    reader = csv.DictReader(f)
                    self.fields = reader.fieldnames
                    self.rows = [r for r in reader if int(r["iter"]) <= resume_iter]
            except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error) as err:
                raise ConfigError(f"{path} is damaged ({type(err).__name__}: {err}); a "
                                  "resumed run needs its rows with an integer 'iter' column: "
                                  "move the file aside to start a new metrics.csv") from None
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
    try:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
                for r in rows]
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path} is damaged: {type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}") from None


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
