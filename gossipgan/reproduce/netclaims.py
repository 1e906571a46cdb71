"""What claims 7 and 8 share: network benchmark grids of one condition each, and their rows.

gossipgan.netem is imported inside the functions only: importing the reproduction package
(or the library core) never loads the network emulation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from gossipgan.reproduce import figures as F
from gossipgan.reproduce.spec import fmt


def emulation() -> str:
    """netns (root: namespaces, tbf, the TUN delay router), else the app-delay fallback."""
    return "netns" if os.geteuid() == 0 else "app-delay"


def grid(workers: int, bandwidth: str, latency: str, iters: int, every: int, algos: list[str],
         topologies: list[str], rounds: list[int], compression: tuple[str, ...] = (),
         ddp: tuple[str, ...] = ()):
    """One condition of the network benchmark; `compression`: compressed DPOAdam ring t = 1
    cells, `ddp`: torch DDP baselines (netem/ddp.py), none unless asked."""
    from gossipgan.netem.grid import Grid

    return Grid(workers=workers, bandwidths=[bandwidth], latencies=[latency], algos=algos,
                topologies=topologies, rounds=rounds, iters=iters, emulation=emulation(),
                peer=False, overrides=[f"run.eval_every={every}", f"run.log_every={every}"],
                compression=list(compression), ddp=list(ddp))


def condition_rows(folder: Path, target: Callable[[list[dict]], float | None] | None = None
                   ) -> tuple[list[dict], dict, str]:
    """(rows, curves, emulation label) of the one-condition grid in `folder` (done.json).
    `target`: the rows -> the cls_fid every cell's time to target is measured to (default, or
    when it gives None: CPOAdam's final one, as the benchmark does)."""
    from gossipgan.netem import report

    grid_spec = json.loads((folder / "grid.json").read_text())
    (result,) = json.loads((folder / "done.json").read_text())
    rows, curves = report.cell_rows(result, {"workers": grid_spec["workers"],
                                             "iters": grid_spec["iters"]})
    report.add_targets(rows, curves, target(rows) if target else None)
    return rows, curves, result["emulation_label"]


def improved(row: dict) -> bool:
    """Whether the target is below the cell's first cls_fid: otherwise 'time to target' is
    the first evaluation's and compares nothing (a run too short to learn)."""
    curve, target = row["curve"], row["target_cls_fid"]
    return bool(curve) and target is not None and target < 0.99 * curve[0][1]


SHORT_ITERS = 200  # below this a cell's cls_fid curve is a few noisy points


def too_short(rows: list[dict], verdict: str, text: str) -> tuple[str, str]:
    """At a scale too short for a time-to-quality comparison: inconclusive, and why."""
    iters = rows[0]["iters"] if rows else 0
    if iters >= SHORT_ITERS:
        return verdict, text
    return "inconclusive", (text + f" At {iters} iterations per cell the cls_fid curves are a "
                            "few noisy points, so which cell reaches the target first is not "
                            f"reliable (the verdict would be '{verdict}'); the time per "
                            "iteration is the robust figure at this scale.")


def fmt_s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def condition_name(row: dict) -> str:
    return f"{row['bandwidth']}, {row['latency_ms']:g} ms"


def cell_name(row: dict) -> str:
    from gossipgan.netem.report import cell_name

    return cell_name(row)


def table_row(row: dict) -> dict:
    return {"condition": condition_name(row), "cell": cell_name(row),
            "wall ms/iter": fmt(row["wall_per_iter_ms"], ".1f"),
            "comm ms/iter": fmt(row["comm_per_iter_ms"], ".1f"),
            "kB/iter": fmt(row["bytes_per_iter"] / 1e3, ".0f"),
            "final cls_fid": fmt(row["final_cls_fid"], ".0f"),
            "target cls_fid": fmt(row["target_cls_fid"], ".0f"),
            "time to target (s)": fmt(row["time_to_target_s"], ".1f")}


def wallclock_panel(ax, rows: list[dict], title: str) -> None:
    for i, r in enumerate(rows):
        if r["curve"]:
            xs, ys = zip(*r["curve"], strict=True)
            ax.plot(xs, ys, "o-", ms=3, color=F.COLORS[i % 10], label=cell_name(r))
    target = next((r["target_cls_fid"] for r in rows if r["target_cls_fid"]), None)
    if target:
        ax.axhline(target, color="k", ls=":", lw=1, label="target")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("training wall-clock (s)")
    ax.set_ylabel("cls_fid")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)


__all__ = ["cell_name", "condition_name", "condition_rows", "emulation", "fmt_s", "grid",
           "table_row", "wallclock_panel"]
