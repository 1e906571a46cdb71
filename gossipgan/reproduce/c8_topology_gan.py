"""Claim 8: topology matters for GANs too, at the same bytes per iteration."""

from __future__ import annotations

from pathlib import Path

from gossipgan.reproduce import figures as F
from gossipgan.reproduce import netclaims as NC
from gossipgan.reproduce.spec import Analysis, pick

NUMBER = 8
TITLE = "Topology matters for GANs too"
CLAIM = ("The analysis's dependence on the spectral gap 1 − ρ suggests that a better-connected "
         "graph trains a GAN faster for the same communication; ring, exponential and "
         "one-peer exponential compared at the same bytes per iteration.")
SETUP = ("`gossipgan bench network`, one condition (1 Gbit/s, 20 ms one-way; emulated as in "
         "claim 7), DPOAdam on the digits GAN with ring, static exponential and one-peer "
         "exponential, t = 1 and 2. Same bytes per iteration: ring t = 1 and one-peer "
         "exponential t = 2 send two messages per worker per iteration; the static "
         "exponential sends log₂N per round (two at N = 4, three at N = 8: see kB/iter). "
         "Target: the ring t = 1 cell's final cls_fid. Differs from the paper: emulated "
         "links on one machine, a small GAN.")


def grids(scale: str) -> list:
    n = pick(scale, 8, 4, 2)
    iters = pick(scale, 400, 40, 3)
    every = pick(scale, 40, 10, 3)
    tops = pick(scale, ["ring", "exponential", "one_peer_exponential"],
                ["ring", "exponential", "one_peer_exponential"],
                ["ring", "one_peer_exponential"])
    rounds = pick(scale, [1, 2], [1, 2], [1])
    return [("1gbit-20ms", NC.grid(n, "1gbit", "20ms", iters, every, ["dpoadam"], tops,
                                   rounds))]


def _ring_final(rows: list[dict]) -> float | None:
    """The target: the ring t = 1 cell's final cls_fid."""
    return next((r["final_cls_fid"] for r in rows
                 if r["topology"] == "ring" and r["rounds"] == 1), None)


def analyse(folders: list[Path], fig_dir: Path) -> Analysis:
    (rows, _, label), = [NC.condition_rows(f, _ring_final) for f in folders]
    fig, axes = F.new_figure(2, cols=2)
    NC.wallclock_panel(axes[0], rows, f"DPOAdam, {NC.condition_name(rows[0])}")
    F.bars(axes[1], [NC.cell_name(r) for r in rows], [r["time_to_target_s"] for r in rows],
           "time to the ring t=1 cell's final cls_fid", "seconds")
    figs = [F.save(fig, fig_dir / "c8_topology_gan.png")]
    table = [NC.table_row(r) for r in rows]
    by = {(r["topology"], r["rounds"]): r for r in rows}
    ring, one_peer = by.get(("ring", 1)), by.get(("one_peer_exponential", 2))
    if one_peer is None:  # the tiny scale has t = 1 only
        one_peer = by.get(("one_peer_exponential", 1))
    tr = ring["time_to_target_s"] if ring else None
    to = one_peer["time_to_target_s"] if one_peer else None
    if ring is None or not NC.improved(ring):
        verdict = "inconclusive"
        text = ("The ring t = 1 cell's final cls_fid is no better than its first: the runs are "
                "too short to compare time to quality.")
    elif tr is not None and to is not None and tr > 0:
        ratio = to / tr
        verdict = "reproduced" if ratio < 0.9 else "partly" if ratio < 1.1 else "not reproduced"
        text = (f"At about the same bytes per iteration, one-peer exponential t = "
                f"{one_peer['rounds']} reaches the ring's final cls_fid in {to:.1f} s against "
                f"the ring's {tr:.1f} s ({ratio:.2f}x).")
    else:
        verdict = "not reproduced"
        text = "The one-peer exponential cell did not reach the ring's final cls_fid."
    text += " Wall-clock per iteration: " + ", ".join(
        f"{NC.cell_name(r)} {r['wall_per_iter_ms']:.0f} ms" for r in rows) + (
        " (each gossip round waits one latency: t rounds cost t latencies however few "
        "bytes they carry).")
    fids = {NC.cell_name(r): r["final_cls_fid"] for r in rows if r["final_cls_fid"]}
    if fids:
        best = min(fids, key=fids.get)
        text += f" Lowest final cls_fid: {best} ({fids[best]:.0f}). Network: {label}."
    return Analysis(figs, table, *NC.too_short(rows, verdict, text))
