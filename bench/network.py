"""Network-condition benchmark (issue 7): gossip against all-reduce over emulated links.

    .venv/bin/python bench/network.py [ARGS]            # = gossipgan bench network [ARGS] (root)
    .venv/bin/python bench/network.py --quick           # N=4, one condition, < 3 min idle
    .venv/bin/python bench/network.py --app-delay       # the no-root fallback
    .venv/bin/python bench/network.py --markdown DIR    # BENCHMARKS.md tables from DIR's CSVs

The live peer, decent-dp, is an optional extra of the benchmark, never a dependency of the
package: `pip install --no-deps decent-dp loguru` (it needs numpy, already here, and declares
torch, which must not be reinstalled). Without it the peer rows say "not installed".
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _num(v: str | None, fmt: str = "{:.1f}") -> str:
    if v in (None, "", "nan"):
        return "-"
    return fmt.format(float(v))


def _cell(r: dict) -> str:
    if r["topology"] == "all_reduce":
        return f"{r['algo']} all-reduce"
    return f"{r['algo']} {r['topology']} t={r['rounds']}"


def condition_tables(rows: list[dict]) -> list[str]:
    out = []
    conditions: dict = {}
    for r in rows:
        conditions.setdefault((r["bandwidth"], float(r["latency_ms"])), []).append(r)
    for (bw, lat), cells in conditions.items():
        first = cells[0]
        out += [f"**{bw}, {lat:g} ms one-way** (measured α = {_num(first['alpha_ms'], '{:.2f}')} "
                f"ms, β = {_num(first['beta_mbit'])} Mbit/s)", "",
                "| cell | wall/it ms | compute/it | comm/it | comm alone | α–β textbook | "
                "α–β gloo | alone / gloo | kB/it | final cls_fid |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in cells:
            out.append(f"| {_cell(r)} | {_num(r['wall_per_iter_ms'])} | "
                       f"{_num(r['compute_per_iter_ms'])} | {_num(r['comm_per_iter_ms'])} | "
                       f"{_num(r['comm_alone_ms'])} | {_num(r['pred_textbook_ms'])} | "
                       f"{_num(r['pred_gloo_ms'])} | {_num(r['alone_over_gloo'], '{:.2f}')} | "
                       f"{_num(float(r['bytes_per_iter']) / 1e3, '{:.0f}')} | "
                       f"{_num(r['final_cls_fid'], '{:.0f}')} |")
        out.append("")
    return out


def summary_table(rows: list[dict]) -> list[str]:
    """Per condition: DPOSG (ring, t=1) against CPOSG, and the best / worst gossip cell."""
    out = ["| condition | CPOSG comm / DPOSG ring t=1 comm | same, comm alone | iteration "
           "speed-up | slowest gossip cell vs CPOSG (comm alone) | cells within 30% of α–β "
           "(gloo), comm alone |",
           "|---|---:|---:|---:|---|---|"]
    conditions: dict = {}
    for r in rows:
        conditions.setdefault((r["bandwidth"], float(r["latency_ms"])), {})[_cell(r)] = r
    for (bw, lat), cells in conditions.items():
        base, ring = cells.get("cposg all-reduce"), cells.get("dposg ring t=1")
        if not base or not ring:
            continue
        gossip = [r for name, r in cells.items() if "all-reduce" not in name]
        worst = max(gossip, key=lambda r: float(r["comm_alone_ms"]))
        ratio = float(base["comm_alone_ms"]) / float(worst["comm_alone_ms"])
        fits = [float(r["alone_over_gloo"]) for r in cells.values()]
        within = sum(0.7 <= f <= 1.3 for f in fits)
        out.append(f"| {bw}, {lat:g} ms | "
                   f"{float(base['comm_per_iter_ms']) / float(ring['comm_per_iter_ms']):.2f}x | "
                   f"{float(base['comm_alone_ms']) / float(ring['comm_alone_ms']):.2f}x | "
                   f"{float(base['wall_per_iter_ms']) / float(ring['wall_per_iter_ms']):.2f}x | "
                   f"{_cell(worst)}: {ratio:.2f}x{' (gossip LOSES)' if ratio < 1 else ''} | "
                   f"{within}/{len(fits)} (measured/predicted {min(fits):.2f}..{max(fits):.2f}) |")
    return out


def peer_table(rows: list[dict]) -> list[str]:
    out = ["| condition | schedule | kB/step | gossipgan ms | decent-dp ms | ratio | "
           "α–β gloo: gossipgan / decent-dp ms |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["status"] != "ok":
            out.append(f"| {r['bandwidth']}, {float(r['latency_ms']):g} ms | {r['schedule']} | "
                       f"{r['status']} | | | | |")
            continue
        out.append(f"| {r['bandwidth']}, {float(r['latency_ms']):g} ms | {r['schedule']} | "
                   f"{float(r['bytes']) / 1e3:.0f} | {_num(r['gossipgan_ms'])} | "
                   f"{_num(r['decent_dp_ms'])} | {_num(r['ratio'], '{:.2f}')} | "
                   f"{_num(r['pred_gossipgan_gloo_ms'])} / {_num(r['pred_decent_dp_gloo_ms'])} |")
    return out


def markdown(folder: Path) -> str:
    grid = json.loads((folder / "grid.json").read_text())
    rows, peers = _read(folder / "results.csv"), _read(folder / "peer.csv")
    lines = [f"Emulation: {grid['emulation_label']}; N = {grid['workers']}; "
             f"{grid['iters']} iterations per cell; message {grid['n_floats'] * 4 / 1e3:.0f} kB.",
             "", *summary_table(rows), "", *condition_tables(rows)]
    if peers:
        lines += ["Live peer (decent-dp) against DistComm, same schedule and bytes:", "",
                  *peer_table(peers), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--markdown"]:
        if len(argv) != 2:
            print("usage: bench/network.py --markdown RESULTS_DIR", file=sys.stderr)
            return 2
        print(markdown(Path(argv[1])))
        return 0
    from gossipgan.cli import main as cli_main

    return cli_main(["bench", "network", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
