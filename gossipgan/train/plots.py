"""Plots of metrics.csv: ||T(x_bar)||^2, consensus and losses against iteration / wall-clock."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

from gossipgan.train.outputs import read_metrics  # noqa: E402

LOG_SCALE = {"grad_op_norm_sq", "consensus", "dist_to_solution"}
TITLES = {
    "grad_op_norm_sq": "||T(x̄)||²",
    "consensus": "consensus distance (1/N) Σ||x_i − x̄||²",
    "dist_to_solution": "||x̄ − x*||²",
}


def _series(rows: list[dict], key: str, x: str = "iter") -> tuple[list, list]:
    pts = [(r[x], r[key]) for r in rows if r.get(key) is not None and r.get(x) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _positive(ys: list) -> bool:
    return any(y > 0 for y in ys)


def plot_run(run_dir: Path) -> list[Path]:
    """One PNG per metric the run logged, plus the losses together."""
    rows = read_metrics(run_dir / "metrics.csv")
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    columns = rows[0] if rows else {}
    keys = [k for k in columns if (k in TITLES or k.startswith("cls_")
            or k in ("hq_rate", "modes_covered")) and not k.endswith("_ema")]
    for key in keys:
        if not _series(rows, key)[0]:
            continue
        # Against iterations and against training seconds: the second axis is the one that
        # shows what a cheaper communication pattern buys.
        fig = Figure(figsize=(9, 3.5))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, x, label in ((axes[0], "iter", "iteration"),
                             (axes[1], "wall_s", "wall-clock seconds (training)")):
            ema = f"{key}_ema"  # the generator's EMA (run.ema) on the same axes
            ax.plot(*_series(rows, key, x), label=key if ema in columns else None)
            if ema in columns:
                ax.plot(*_series(rows, ema, x), label=ema)
                ax.legend(fontsize=8)
            if key in LOG_SCALE and _positive(_series(rows, key)[1]):
                ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        fig.suptitle(TITLES.get(key, key))
        fig.tight_layout()
        path = out_dir / f"{key}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    loss_keys = [k for k in (rows[0] if rows else {}) if k.startswith("loss_")]
    if loss_keys:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        for key in loss_keys:
            ax.plot(*_series(rows, key), label=key)
        ax.set_xlabel("iteration")
        ax.set_title("losses of the average model")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / "losses.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def plot_comparison(run_dirs: dict[str, Path], out: Path, keys=("grad_op_norm_sq", "consensus"),
                    x: str = "iter") -> Path:
    """Several runs on shared axes, one panel per metric."""
    runs = {name: read_metrics(d / "metrics.csv") for name, d in run_dirs.items()}
    keys = [k for k in keys if any(_series(rows, k, x)[0] for rows in runs.values())]
    panels = max(len(keys), 1)
    fig = Figure(figsize=(5 * panels, 3.8))
    axes = fig.subplots(1, panels, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):  # no keys: one empty panel
        for name, rows in runs.items():
            xs, ys = _series(rows, key, x)
            if xs:
                ax.plot(xs, ys, label=name)
        if key in LOG_SCALE:
            ax.set_yscale("log")
        ax.set_xlabel("iteration" if x == "iter" else "wall-clock seconds (training)")
        ax.set_title(TITLES.get(key, key))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out
