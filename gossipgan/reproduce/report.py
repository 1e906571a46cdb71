"""REPRODUCTION.md and docs/reproduction/ (figures, one CSV table per claim) from the runs.

Per claim the report uses the largest scale whose runs are all finished (full, then quick,
then tiny) and says which; a claim shown at a smaller scale than full is marked, with the
command that completes it.
"""

from __future__ import annotations

import csv
import logging
import platform
from datetime import date
from pathlib import Path
from types import ModuleType

from gossipgan.reproduce.driver import claim_dir, measured_seconds, results_of
from gossipgan.reproduce.spec import SCALES, Analysis

log = logging.getLogger(__name__)

FIG_DIR = Path("docs") / "reproduction"

PREAMBLE = """\
# Reproduction: decentralized parallel optimistic training of GANs

This report tests, one by one, the claims of the paper gossipgan started from (Liu et al.,
*A Decentralized Parallel Algorithm for Training Generative Adversarial Nets*, NeurIPS 2020).

> **What is reproduced.** Only the paper's abstract and its reviews could be obtained; its
> body — the algorithm box, the theorem's constants, the experiment tables — could not. What
> is tested here is the reconstruction of the method in the project's design notes (DESIGN.md
> §3; in brief: [README, "The math in brief"](README.md#the-math-in-brief)) — DPOSG,
> DPOAdam and the baselines as gossipgan implements them — against the claims the abstract and
> the reviews state. No number below is compared with a number of the paper's; every number
> comes from a run that `gossipgan reproduce` made on this machine. Sample quality is the
> project's own classifier-feature FID/IS (`cls_fid`, `cls_is`), not Inception FID.

Rerun everything (skips finished runs, resumes interrupted ones, redraws this file):

    gossipgan reproduce --out runs/reproduce            # full scale
    gossipgan reproduce --jobs 2 --out runs/reproduce   # two simulator runs at a time
    gossipgan reproduce --quick --out runs/reproduce    # small sizes, 7.3 min measured
    gossipgan reproduce --only 3,6 --out runs/reproduce # some claims
    gossipgan reproduce --report-only --out runs/reproduce   # redraw from the run folders
"""


def _command(number: int, scale: str) -> str:
    flag = {"full": "", "quick": " --quick", "tiny": " --tiny"}[scale]
    return f"gossipgan reproduce{flag} --only {number} --out runs/reproduce"


def _table_md(rows: list[dict]) -> str:
    if not rows:
        return "_(no table)_"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def section(module: ModuleType, root: Path, report_dir: Path) -> tuple[str, dict]:
    """One claim's markdown section and its summary row (verdict, scale, time)."""
    n = module.NUMBER
    head = [f"## Claim {n}: {module.TITLE}", "",
            f"**The claim.** {module.CLAIM}", "", f"**Setup.** {module.SETUP}", ""]
    for scale in SCALES:
        results = results_of(module, root, scale)
        if results is not None:
            break
    else:
        head += ["**Not run yet.** Complete it with", "", f"    {_command(n, 'full')}", ""]
        return "\n".join(head), {"claim": n, "verdict": "not run", "scale": "-", "time": "-",
                                 "seconds": 0.0}
    fig_dir = report_dir / FIG_DIR
    analysis: Analysis = module.analyse(results, fig_dir)
    table = _write_csv(analysis.table, fig_dir / f"c{n}_table.csv")
    seconds = measured_seconds(claim_dir(root, scale, n))
    head += [f"**Command.** `{_command(n, scale)}` — {scale} scale, "
             f"{_minutes(seconds)} of runs measured on this machine.", ""]
    if scale != "full":
        head += [f"> **{scale} scale, full run pending.** The figures and numbers below come "
                 f"from the {scale}-scale runs; complete the claim with "
                 f"`{_command(n, 'full')}` and redraw.", ""]
    for fig in analysis.figures:
        head += [f"![claim {n}]({fig.relative_to(report_dir).as_posix()})", ""]
    head += [_table_md(analysis.table), "",
             f"(table as CSV: [{table.name}]({table.relative_to(report_dir).as_posix()}))", ""]
    head += [f"**Verdict: {analysis.verdict}.** {analysis.text}", ""]
    head += [f"- {note}" for note in analysis.notes]
    row = {"claim": n, "verdict": analysis.verdict, "scale": scale, "time": _minutes(seconds),
           "seconds": seconds}
    return "\n".join(head).rstrip() + "\n", row


def write_report(modules: list[ModuleType], root: Path, report_dir: Path) -> Path:
    """REPRODUCTION.md in `report_dir`, figures and tables in report_dir/docs/reproduction/."""
    report_dir = Path(report_dir)
    sections, rows, total = [], [], 0.0
    for module in modules:
        text, row = section(module, root, report_dir)
        sections.append(text)
        total += row.pop("seconds")
        rows.append({"claim": f"[{module.NUMBER}. {module.TITLE}](#claim-{module.NUMBER}-"
                     f"{_anchor(module.TITLE)})", **{k: v for k, v in row.items()
                                                     if k != "claim"}})
    machine = (f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}; "
               f"report drawn {date.today().isoformat()}")
    scales = [sc for sc in SCALES if any(r["scale"] == sc for r in rows)]
    body = [PREAMBLE, "## Summary", "", _table_md(rows), "",
            f"Times are the minutes the runs of the scale shown took, summed over every sitting "
            f"({_minutes(total)} in all; {machine}). {_sittings(root, scales)}The machine was "
            "shared with other work while they ran, so they are upper bounds for an idle one.",
            "", *sections]
    path = report_dir / "REPRODUCTION.md"
    path.write_text("\n".join(body))
    log.info("wrote %s", path)
    return path


def _sittings(root: Path, scales: list[str]) -> str:
    """The wall-clock of the `gossipgan reproduce` sittings that ran these scales (with
    --jobs J the run minutes above add up to more than the wall-clock)."""
    import json

    from gossipgan.reproduce import SITTINGS

    parts = []
    for scale in scales:
        path = Path(root) / scale / SITTINGS
        sittings = json.loads(path.read_text()) if path.is_file() else []
        if sittings:
            jobs = sorted({s["jobs"] for s in sittings})
            parts.append(f"{scale} scale {_minutes(sum(s['wall_s'] for s in sittings))} of "
                         f"wall-clock over {len(sittings)} sitting(s) (--jobs "
                         f"{'/'.join(map(str, jobs))})")
    return f"Wall-clock: {'; '.join(parts)}. " if parts else ""


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


__all__ = ["FIG_DIR", "section", "write_report"]
