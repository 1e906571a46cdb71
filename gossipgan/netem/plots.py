"""The benchmark's plots: time per iteration against latency and bandwidth; cls_fid against
wall-clock per condition. Every title carries the emulation label (the fallback says so)."""

from __future__ import annotations

from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

from gossipgan.netem.report import cell_name

TOPOLOGY_COLOR = {"ring": 0, "exponential": 2, "one_peer_exponential": 4, "torus": 6,
                  "hypercube": 8, "complete": 10, "star": 12, "erdos_renyi": 14}
COMPRESSED = {"topk": ("tab:orange", "x"), "randk": ("tab:olive", "+"),
              "qsgd": ("tab:purple", "P")}


def _style(r: dict) -> dict:
    """Colour by topology (darker: SGD, lighter: Adam), dashes for t >= 2; compressed cells
    dash-dotted in their compressor's colour; grey all-reduce; red DDP (dotted: fp16 hook)."""
    adam = "adam" in r["algo"]
    if r["algo"].startswith("ddp"):
        return {"color": "firebrick", "linestyle": ":" if "fp16" in r["algo"] else "-",
                "linewidth": 2.0, "marker": "X"}
    if r["topology"] == "all_reduce":
        return {"color": "dimgray" if adam else "black", "linestyle": ":" if adam else "-",
                "linewidth": 2.2, "marker": "D" if adam else "s"}
    shade = TOPOLOGY_COLOR.get(r["topology"], 16) + (1 if adam else 0)
    style = {"color": colormaps["tab20"](shade), "linestyle": "-" if r["rounds"] == 1 else "--",
             "marker": "^" if adam else "o", "linewidth": 1.2}
    kind = r.get("compression", "none").partition(":")[0]
    if kind != "none":  # a colour and marker per compressor, dash-dots
        color, marker = COMPRESSED.get(kind, ("tab:cyan", "*"))
        style.update(linestyle="-.", marker=marker, markersize=8, color=color)
    return style


def _series(rows: list[dict], group_key: str, x_key: str):
    """{group value: {cell: [(x, wall ms, comm ms)]}} sorted by x."""
    out: dict = {}
    for r in rows:
        out.setdefault(r[group_key], {}).setdefault(cell_name(r), []).append(
            (r[x_key], r["wall_per_iter_ms"], r["comm_per_iter_ms"], r))
    for cells in out.values():
        for pts in cells.values():
            pts.sort(key=lambda p: p[0])
    return out


def _panel_grid(series: dict, x_label: str, title: str, path: Path, logx: bool = False) -> None:
    groups = list(series)
    fig = Figure(figsize=(5.2 * len(groups), 7.5))
    axes = fig.subplots(2, len(groups), squeeze=False, sharex="col")
    for col, group in enumerate(groups):
        for row, (what, idx) in enumerate((("wall time / iteration", 1),
                                           ("communication / iteration", 2))):
            ax = axes[row][col]
            for name, pts in series[group].items():
                ax.plot([p[0] for p in pts], [p[idx] for p in pts], label=name, **_style(pts[0][3]))
            ax.set_yscale("log")
            if logx:
                ax.set_xscale("log")
            ax.set_ylabel(f"{what} (ms)")
            ax.set_title(f"{group}" if row == 0 else "")
            ax.grid(alpha=0.3, which="both")
        axes[1][col].set_xlabel(x_label)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def plot_all(rows: list[dict], curves: dict, out: Path) -> list[Path]:
    """Writes the plots into out/plots/; returns their paths."""
    if not rows:
        return []
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    label = rows[0]["emulation_note"]
    n = rows[0]["workers"]
    paths = []
    by_bw = _series(rows, "bandwidth", "latency_ms")
    path = folder / "iteration_vs_latency.png"
    _panel_grid(by_bw, "one-way latency per hop (ms)",
                f"N={n}, time per iteration vs latency, one panel per bandwidth [{label}]", path)
    paths.append(path)
    if len({r["bandwidth"] for r in rows}) > 1:
        lat_rows = [{**r, "latency_group": f"{r['latency_ms']:g} ms one-way"} for r in rows]
        path = folder / "iteration_vs_bandwidth.png"
        _panel_grid(_series(lat_rows, "latency_group", "rate_bps"), "bandwidth (bit/s)",
                    f"N={n}, time per iteration vs bandwidth, one panel per latency [{label}]",
                    path, logx=True)
        paths.append(path)
    conditions = sorted({(r["bandwidth"], r["latency_ms"]) for r in rows},
                        key=lambda c: (c[0], c[1]))
    cols = min(3, len(conditions))
    nrows = -(-len(conditions) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for i, cond in enumerate(conditions):
        ax = axes[i // cols][i % cols]
        for r in rows:
            if (r["bandwidth"], r["latency_ms"]) != cond:
                continue
            curve = curves.get((cond, r["name"]), [])
            if curve:
                ax.plot([c[0] for c in curve], [c[1] for c in curve], label=cell_name(r),
                        **_style(r))
        ax.set_title(f"{cond[0]}, {cond[1]:g} ms", fontsize=9)
        ax.set_xlabel("training wall-clock (s)")
        ax.set_ylabel("cls_fid (lower is better)")
        ax.grid(alpha=0.3)
    for j in range(len(conditions), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"N={n}, cls_fid of the average model vs wall-clock (this project's classifier "
                 f"metric, not Inception FID) [{label}]", fontsize=10)
    fig.tight_layout()
    path = folder / "cls_fid_vs_wallclock.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    paths.append(path)
    return paths
