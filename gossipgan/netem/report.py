"""The benchmark's outputs: results.csv, peer.csv, printed tables and plots.

Per-iteration figures come from each cell's metrics.csv, from the first log row after the
first `log_every` iterations (connection and cache warm-up) to the last. "comm alone" is the
same communication timed back to back with no compute (worker.time_comm); the α–β columns are
the model's predictions from the α and β measured on the same link (alphabeta.py).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from gossipgan.netem.alphabeta import AlphaBeta
from gossipgan.netem.grid import log_every
from gossipgan.netem.units import format_delay, format_rate

COLUMNS = ["emulation", "emulation_note", "workers", "bandwidth", "rate_bps", "latency_ms",
           "alpha_ms", "beta_mbit", "algo", "topology", "rounds", "compression",
           "consensus_step", "message_bytes", "iters",
           "wall_per_iter_ms", "compute_per_iter_ms", "comm_per_iter_ms", "comm_alone_ms",
           "pred_textbook_ms", "pred_gloo_ms", "alone_over_gloo", "train_over_gloo",
           "bytes_per_iter", "final_cls_fid", "target_cls_fid", "time_to_target_s",
           "train_wall_s"]
HOST_BOUND_GBIT = 1.0  # all workers' traffic together; above it this 2-core VM was the limit
PEER_COLUMNS = ["emulation", "emulation_note", "workers", "bandwidth", "latency_ms", "schedule",
                "status", "bytes", "gossipgan_ms", "decent_dp_ms", "ratio",
                "pred_gossipgan_gloo_ms", "pred_decent_dp_gloo_ms"]


def _steady(metrics: list[dict], log_every: int) -> tuple[dict, dict]:
    rows = [r for r in metrics if r.get("wall_s") not in (None, "")]
    start = next((r for r in rows if float(r["iter"]) >= log_every), rows[0])
    if start is rows[-1]:
        start = rows[0]
    return start, rows[-1]


def _per_iter(a: dict, b: dict, key: str) -> float:
    span = float(b["iter"]) - float(a["iter"])
    return (float(b[key]) - float(a[key])) / span if span > 0 else math.nan


def quality_curve(metrics: list[dict]) -> list[tuple[float, float]]:
    """(training wall seconds, cls_fid) at every evaluation that measured quality."""
    return [(float(r["wall_s"]), float(r["cls_fid"])) for r in metrics
            if r.get("cls_fid") not in (None, "")]


def time_to(curve: list[tuple[float, float]], target: float | None) -> float | None:
    """First wall-clock second at which cls_fid <= target (None: never, or no target)."""
    if target is None:
        return None
    return next((t for t, fid in curve if fid <= target), None)


def cell_rows(result: dict, grid: dict) -> tuple[list[dict], dict]:
    """One row per cell of a condition's result, and {cell name: quality curve}."""
    cal, rate = result["calibration"], result["rate_bps"]
    base = {"emulation": result["emulation"], "emulation_note": result["emulation_label"],
            "workers": grid["workers"],
            "bandwidth": "loopback" if result["emulation"] == "app-delay" else format_rate(rate),
            "rate_bps": rate, "latency_ms": result["delay_s"] * 1e3,
            "alpha_ms": (cal["alpha_s"] + cal.get("app_delay_s", 0.0)) * 1e3,
            "beta_mbit": cal["beta_Bps"] * 8 / 1e6,
            "message_bytes": cal["message_bytes"], "iters": grid["iters"]}
    rows, curves = [], {}
    for cell in result["cells"]:
        a, b = _steady(cell["metrics"], log_every(grid["iters"]))
        wall, comm = _per_iter(a, b, "wall_s"), _per_iter(a, b, "comm_s")
        curve = quality_curve(cell["metrics"])
        curves[cell["name"]] = curve
        rows.append({**base, "algo": cell["algo"], "topology": cell["topology"],
                     "rounds": cell["rounds"], "compression": cell.get("compression", "none"),
                     "consensus_step": cell.get("consensus_step"),
                     "message_bytes": cell.get("message_bytes", base["message_bytes"]),
                     "wall_per_iter_ms": wall * 1e3,
                     "compute_per_iter_ms": (wall - comm) * 1e3, "comm_per_iter_ms": comm * 1e3,
                     "comm_alone_ms": cell["iso_comm_s"] * 1e3,
                     "pred_textbook_ms": cell["pred_textbook_s"] * 1e3,
                     "pred_gloo_ms": cell["pred_gloo_s"] * 1e3,
                     "alone_over_gloo": cell["iso_comm_s"] / cell["pred_gloo_s"],
                     "train_over_gloo": comm / cell["pred_gloo_s"],
                     "bytes_per_iter": _per_iter(a, b, "bytes_sent"),
                     "final_cls_fid": curve[-1][1] if curve else None,
                     "train_wall_s": float(b["wall_s"]), "name": cell["name"],
                     "curve": curve})
    return rows, curves


def add_targets(rows: list[dict], curves: dict, target: float | None) -> None:
    """time_to_target_s per row: the asked cls_fid, else CPOAdam's final one in that condition."""
    own = target
    if own is None:
        own = next((r["final_cls_fid"] for r in rows if r["algo"] == "cpoadam"), None)
    for r in rows:
        r["target_cls_fid"] = own
        r["time_to_target_s"] = time_to(curves.get(r["name"], []), own)


def peer_rows(result: dict, grid: dict) -> list[dict]:
    cal = result["calibration"]
    out = []
    for p in result.get("peer", []):
        row = {"emulation": result["emulation"], "emulation_note": result["emulation_label"],
               "workers": grid["workers"],
               "bandwidth": ("loopback" if result["emulation"] == "app-delay"
                             else format_rate(result["rate_bps"])),
               "latency_ms": result["delay_s"] * 1e3, "schedule": p["schedule"],
               "status": p["status"]}
        if p["status"] == "ok":
            n = p["bytes"]
            model = AlphaBeta(cal["alpha_s"], cal["beta_Bps"], cal.get("app_delay_s", 0.0))
            # a pairwise send/recv round vs gloo's ring all-reduce over a 2-rank group
            row.update(bytes=n, gossipgan_ms=p["gossipgan_s"] * 1e3,
                       decent_dp_ms=p["decent_dp_s"] * 1e3, ratio=p["ratio"],
                       pred_gossipgan_gloo_ms=model.gossip_round(1, n, "gloo") * 1e3,
                       pred_decent_dp_gloo_ms=model.allreduce(2, n, "gloo") * 1e3)
        out.append(row)
    return out


def write_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _f(v, fmt: str = "{:.1f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def condition_header(result: dict, rows: list[dict]) -> str:
    cal = result["calibration"]
    asked = ("loopback, not limited" if result["emulation"] == "app-delay"
             else format_rate(result["rate_bps"]))
    app = cal.get("app_delay_s", 0.0)
    extra = f" + {app * 1e3:g} ms added by DistComm per hop" if app else ""
    return (f"== {asked}, {format_delay(result['delay_s'])} one-way, N={rows[0]['workers']} "
            f"[{result['emulation_label']}]\n   measured on the link: α = "
            f"{cal['alpha_s'] * 1e3:.2f} ms one-way{extra}, "
            f"β = {cal['beta_Bps'] * 8 / 1e6:.1f} Mbit/s (every pair exchanging "
            f"{cal['message_bytes'] / 1e3:.0f} kB at once: {cal['exchange_s'] * 1e3:.2f} ms "
            f"each); one stream alone, host otherwise idle: "
            f"{cal['single_stream_beta_Bps'] * 8 / 1e6:.1f} Mbit/s" + _network_line(result))


def _network_line(result: dict) -> str:
    counts = result.get("network")
    if not counts:
        return ""
    return (f"\n   emulator during this condition: {counts['tbf_drops']} packets dropped by tbf, "
            f"{counts['tun_drops']} by interfaces or the delay router, "
            f"{counts['tcp_retransmits']} TCP segments retransmitted")


def format_table(rows: list[dict]) -> str:
    head = (f"{'cell':<34}{'wall/it':>9}{'compute':>9}{'comm':>9}{'alone':>9}{'α–β':>9}"
            f"{'α–β':>9}{'alone/':>8}{'kB/it':>8}{'cls_fid':>9}{'t→fid':>8}")
    sub = (f"{'':<34}{'ms':>9}{'ms':>9}{'ms':>9}{'ms':>9}{'textbk':>9}{'gloo':>9}{'gloo':>8}"
           f"{'':>8}{'final':>9}{'s':>8}")
    lines = [head, sub]
    for r in rows:
        name = cell_name(r)
        lines.append(f"{name:<34}{_f(r['wall_per_iter_ms']):>9}{_f(r['compute_per_iter_ms']):>9}"
                     f"{_f(r['comm_per_iter_ms']):>9}{_f(r['comm_alone_ms']):>9}"
                     f"{_f(r['pred_textbook_ms']):>9}{_f(r['pred_gloo_ms']):>9}"
                     f"{_f(r['alone_over_gloo'], '{:.2f}'):>8}"
                     f"{_f(r['bytes_per_iter'] / 1e3, '{:.0f}'):>8}"
                     f"{_f(r['final_cls_fid'], '{:.0f}'):>9}{_f(r['time_to_target_s']):>8}")
    return "\n".join(lines)


def reach(curve: list, base_curve: list, target: float | None) -> str:
    """'1.2 s vs 6.8 s (0.18)': when a cell and its baseline first reach `target`."""
    if target is None or not curve or not base_curve:
        return "no cls_fid"
    if target >= 0.99 * base_curve[0][1]:
        return "n/a (the baseline's final cls_fid is no better than the initial one)"
    tt, tb = time_to(curve, target), time_to(base_curve, target)
    base = "never" if tb is None else f"{tb:.1f} s"  # a DDP baseline may never get there
    if tt is None:
        return f"never within {curve[-1][0]:.1f} s (baseline {base})"
    if tb is None:
        return f"{tt:.1f} s vs never within {base_curve[-1][0]:.1f} s"
    return f"{tt:.1f} s vs {base} ({tt / tb:.2f})"


def format_versus(rows: list[dict]) -> str:
    """Gossip against all-reduce in one condition: comm, whole iteration, time to quality."""
    by = {(r["algo"], r["topology"], r["rounds"]): r for r in rows
          if r.get("compression", "none") == "none"}
    fits = [r["alone_over_gloo"] for r in rows if not math.isnan(r["alone_over_gloo"])]
    lines = [f"   α–β (gloo hop counts): {sum(0.7 <= f <= 1.3 for f in fits)}/{len(fits)} cells' "
             f"communication alone within 30% (measured/predicted {min(fits):.2f}.."
             f"{max(fits):.2f})"] if fits else []
    over = [r for r in rows if r["alone_over_gloo"] > 1.3]
    if over:
        lines.append("   " + _host_bound(over))
    for d, c in (("dposg", "cposg"), ("dpoadam", "cpoadam")):
        base = by.get((c, "all_reduce", 1))
        for (algo, name, t), r in by.items():
            if algo != d or base is None:
                continue
            target = base["final_cls_fid"]
            lines.append(f"   {d} {name} t={t} vs {c}: comm/it "
                         f"{_ratio(base, r, 'comm_per_iter_ms')}x less (alone "
                         f"{_ratio(base, r, 'comm_alone_ms')}x), iteration "
                         f"{_ratio(base, r, 'wall_per_iter_ms')}x faster; reaches {c}'s final "
                         f"cls_fid {_f(target, '{:.0f}')}: "
                         f"{reach(r['curve'], base['curve'], target)}")
    lines += _versus_baselines(rows, by)
    return "\n".join(lines)


def _versus_baselines(rows: list[dict], by: dict) -> list[str]:
    """Compressed gossip against all-reduce (CPOAdam) and what users run (DDP): per
    iteration, time to the target cls_fid, and final cls_fid against uncompressed gossip."""
    compressed = [r for r in rows if r.get("compression", "none") != "none"]
    if not compressed:
        return []
    best = min(compressed, key=lambda r: r["wall_per_iter_ms"])
    lines = []
    for base in [by.get(("cpoadam", "all_reduce", 1))] + [
            r for r in rows if r["algo"].startswith("ddp")]:
        if base is None:
            continue
        ratio = base["wall_per_iter_ms"] / best["wall_per_iter_ms"]
        lines.append(f"   best compressed cell {cell_name(best)} vs {cell_name(base)}: "
                     f"{best['wall_per_iter_ms']:.1f} vs {base['wall_per_iter_ms']:.1f} ms/it "
                     f"({ratio:.2f}x {'faster' if ratio >= 1 else 'SLOWER'})")
    ddp = by.get(("ddp-adam", "all_reduce", 1))
    for r in compressed:
        plain = by.get((r["algo"], r["topology"], r["rounds"]))
        fid = ("-" if plain is None or r["final_cls_fid"] is None or not plain["final_cls_fid"]
               else f"{r['final_cls_fid']:.0f} vs uncompressed {plain['final_cls_fid']:.0f} "
               f"({r['final_cls_fid'] / plain['final_cls_fid'] - 1:+.0%})")
        reach_ddp = reach(r["curve"], ddp["curve"], r["target_cls_fid"]) if ddp else "no DDP row"
        lines.append(f"   {cell_name(r)}: {r['bytes_per_iter'] / 1e3:.0f} kB/it; final "
                     f"cls_fid {fid}; to cls_fid {_f(r['target_cls_fid'], '{:.0f}')} vs "
                     f"ddp-adam: {reach_ddp}")
    return lines


def _host_bound(over: list[dict]) -> str:
    """Why cells run slower than the model, in measured terms: how many bits all N workers
    moved per second through this one machine, and how many processes share its cores."""
    def rate(r: dict) -> float:
        return r["workers"] * r["bytes_per_iter"] * 8 / (r["comm_alone_ms"] / 1e3) / 1e9

    worst = max(over, key=lambda r: r["alone_over_gloo"])
    n, cores = worst["workers"], os.cpu_count() or 1
    busy = max(map(rate, over)) >= HOST_BOUND_GBIT and n > cores
    why = (f"{n} worker processes share this machine's {cores} cores, so a hop also waits "
           "for the receiver to be scheduled and every byte is copied by the same cores; "
           "α and β, measured with each worker sending one message, do not include that"
           if busy else "too little for the host to be the limit; single cells like this "
           "move from run to run with TCP's behaviour on the emulated link, see BENCHMARKS.md")
    return (f"{len(over)} cell(s) over +30% (worst: {cell_name(worst)}, "
            f"{worst['alone_over_gloo']:.2f}x); together the {n} workers moved "
            f"{min(map(rate, over)):.1f}..{max(map(rate, over)):.1f} Gbit/s: {why}")


def cell_name(r: dict) -> str:
    """A cell's name in tables and legends, e.g. 'dpoadam ring t=1 topk:0.05 γ=0.3'."""
    if r["algo"].startswith("ddp"):
        return r["algo"]
    comp = r.get("compression", "none")
    if r["topology"] == "all_reduce":
        return f"{r['algo']} all-reduce"
    return f"{r['algo']} {r['topology']} t={r['rounds']}" + (
        f" {comp} γ={r['consensus_step']:g}" if comp != "none" else "")


def _ratio(base: dict, r: dict, key: str) -> str:
    return f"{base[key] / r[key]:.2f}" if r[key] else "-"


def format_peer(rows: list[dict]) -> str:
    lines = []
    for p in rows:
        if p["status"] != "ok":
            lines.append(f"   decent-dp {p['schedule']}: {p['status']}")
            continue
        lines.append(f"   {p['schedule']:<13} {p['bytes'] / 1e3:.0f} kB/step: gossipgan "
                     f"{p['gossipgan_ms']:.2f} ms, decent-dp {p['decent_dp_ms']:.2f} ms, ratio "
                     f"{p['ratio']:.2f} (α–β gloo: {p['pred_gossipgan_gloo_ms']:.2f} vs "
                     f"{p['pred_decent_dp_gloo_ms']:.2f} ms)")
    return "\n".join(lines)
