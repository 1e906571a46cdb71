"""The report's figures, drawn on `matplotlib.figure.Figure` (no pyplot, no backend switch).

Curves over seeds are drawn as the median with a band from the smallest to the largest seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gossipgan.reproduce.spec import RunResult

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]


def new_figure(n_panels: int, width: float = 4.2, height: float = 3.2, cols: int | None = None):
    cols = cols or min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes[:n_panels])


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def band(runs: list[RunResult], key: str, x: str = "iter"
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, median, min, max) over the runs (seeds), on the x values every run measured."""
    series = [r.series(key, x) for r in runs]
    series = [s for s in series if s[0]]
    if not series:
        return None
    n = min(len(s[0]) for s in series)  # a diverged seed stops early: cut to the shortest
    xs = np.asarray(series[0][0][:n], dtype=float)
    ys = np.asarray([s[1][:n] for s in series], dtype=float)
    return xs, np.median(ys, 0), ys.min(0), ys.max(0)


def draw_band(ax, runs: list[RunResult], key: str, label: str, color: str, x: str = "iter",
              log: bool = True, scale_x: float = 1.0, style: str = "-") -> None:
    b = band(runs, key, x)
    if b is None:
        return
    xs, mid, lo, hi = b
    xs = xs * scale_x
    if log:  # a zero (exact solution) cannot be drawn on a log axis: clip it to the float floor
        mid, lo, hi = (np.maximum(v, 1e-300) for v in (mid, lo, hi))
    diverged = sum(1 for r in runs if r.diverged)
    text = label + (f" ({diverged}/{len(runs)} diverged)" if diverged else "")
    ax.plot(xs, mid, style, color=color, label=text, lw=1.4)
    if len(runs) > 1:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")


def curves_panel(ax, groups: dict[str, list[RunResult]], key: str, title: str,
                 x: str = "iter", log: bool = True, xlabel: str | None = None,
                 ylabel: str | None = None, scale_x: dict | None = None) -> None:
    for i, (label, runs) in enumerate(groups.items()):
        draw_band(ax, runs, key, label, COLORS[i % len(COLORS)], x, log,
                  (scale_x or {}).get(label, 1.0))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or key)
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.legend(fontsize=6)


def bars(ax, labels: list[str], values: list[float | None], title: str, ylabel: str,
         log: bool = False, missing: str = "never") -> None:
    """Bars; a missing value (the target never reached) is marked above an empty slot."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max(finite) if finite else 1.0
    xs = np.arange(len(labels))
    ax.bar(xs, [v if v is not None and math.isfinite(v) else 0 for v in values],
           color=[COLORS[i % len(COLORS)] for i in range(len(labels))])
    for x, v in zip(xs, values, strict=True):
        if v is None or not math.isfinite(v):
            ax.text(x, top * 0.05 if not log else top ** 0.05, missing, ha="center",
                    rotation=90, fontsize=7)
    ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    if log and finite:
        ax.set_yscale("log")


def image_row(panels: list[tuple[str, Path | np.ndarray]], path: Path, size: float = 2.6
              ) -> Path:
    """Images side by side with a title each (real data | each method's x_bar samples)."""
    from matplotlib.image import imread

    fig, axes = new_figure(len(panels), size, size + 0.3, cols=len(panels))
    for ax, (title, img) in zip(axes, panels, strict=True):
        data = imread(img) if isinstance(img, Path) else img
        ax.imshow(data, cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return save(fig, path)


def loglog_slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log x (positive values only)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 3:
        return None
    a = np.asarray(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


__all__ = ["COLORS", "band", "bars", "curves_panel", "draw_band", "image_row", "loglog_slope",
           "new_figure", "save"]
