"""Claim 1: optimism makes simultaneous decentralized updates converge (bilinear game)."""

from __future__ import annotations

from pathlib import Path

from gossipgan.reproduce import figures as F
from gossipgan.reproduce.spec import Analysis, RunResult, RunSpec, analytic_spec, fmt, group, pick

NUMBER = 1
TITLE = "Optimism makes simultaneous decentralized updates converge"
CLAIM = ("The algorithm \"allows workers ... to update the discriminator and generator "
         "simultaneously\" and, being optimistic, converges where plain simultaneous gradient "
         "descent-ascent does not (the abstract's design point; the reviews' reading of the "
         "bilinear illustration).")
OPTIMISTIC = ("dposg", "dextragrad", "cposg")
PLAIN = ("dpsgda", "dpadam")
LR = {"dpadam": 0.01}  # Adam's step is normalised: 0.01 per coordinate, not eta * |g|
ETA, ROUNDS, N = 0.1, 1, 8
SETUP = (f"Bilinear game min_x max_y x'Ay (dim 10 per player), N = {N} workers on a ring, "
         f"t = {ROUNDS} gossip round, batch 8 per worker, η = {ETA} (DPAdam: Adam step 0.01, "
         "β = (0.5, 0.999)). Shards IID (heterogeneity 0) or heterogeneous (heterogeneity 0.5); "
         "operator noise 0 or 0.1. ‖T(x̄)‖² is exact. Differs from the paper: a toy game of our "
         "own (DESIGN.md §3), not the paper's illustration, whose constants we do not have.")


def specs(scale: str) -> list[RunSpec]:
    iters = pick(scale, 1500, 400, 30)
    every = pick(scale, 20, 20, 10)
    seeds = pick(scale, (0, 1), (0,), (0,))
    out = []
    for het in pick(scale, (0.0, 0.5), (0.0, 0.5), (0.5,)):
        for noise in pick(scale, (0.0, 0.1), (0.0, 0.1), (0.0,)):
            for algo in pick(scale, OPTIMISTIC + PLAIN, OPTIMISTIC + PLAIN, ("dposg", "dpsgda")):
                for seed in seeds:
                    tags = {"algo": algo, "het": het, "noise": noise, "seed": seed}
                    out.append(analytic_spec(
                        f"{algo}-h{het}-n{noise}-s{seed}", tags, iters, every,
                        game__name="bilinear", game__heterogeneity=het, game__noise=noise,
                        optim__algo=algo, optim__lr=LR.get(algo, ETA), optim__rounds=ROUNDS,
                        topology__workers=N, run__seed=seed))
    return out


def _status(runs: list[RunResult]) -> str:
    """converges / diverges / cycles / stalls: final against initial ||T||^2, median seed."""
    ratios = []
    for r in runs:
        if r.diverged:
            ratios.append(float("inf"))
            continue
        _, ys = r.series("grad_op_norm_sq")
        ratios.append(ys[-1] / ys[0] if ys and ys[0] > 0 else float("nan"))
    ratios.sort()
    mid = ratios[len(ratios) // 2]
    if mid == float("inf") or mid > 10:
        return "diverges"
    if mid < 1e-2:
        return "converges"
    return "cycles / stalls" if mid > 0.3 else "slow decrease"


def analyse(runs: list[RunResult], fig_dir: Path) -> Analysis:
    cases = group(runs, "het", "noise")
    fig, axes = F.new_figure(len(cases), cols=2)
    table, ok, off = [], True, []
    for ax, ((het, noise), rs) in zip(axes, cases.items(), strict=True):
        by_algo = {a: v for (a,), v in group(rs, "algo").items()}
        F.curves_panel(ax, by_algo, "grad_op_norm_sq",
                       f"{'heterogeneous' if het else 'IID'} shards, noise {noise}",
                       ylabel="‖T(x̄)‖²")
        for algo, v in by_algo.items():
            status = _status(v)
            finals = sorted(r.final("grad_op_norm_sq") for r in v)
            table.append({"shards": "het 0.5" if het else "IID", "noise": noise, "algo": algo,
                          "initial ‖T‖²": fmt(v[0].series("grad_op_norm_sq")[1][0]),
                          "final ‖T‖² (median seed)": fmt(finals[len(finals) // 2]),
                          "behaviour": status})
            want = "converges" if algo in OPTIMISTIC else ("diverges", "cycles / stalls")
            # with noise or heterogeneity the optimistic methods stop at a floor: still a
            # decrease by 100x from the start counts as converging to a neighbourhood
            good = (status == want) if algo in OPTIMISTIC else status in want
            ok &= good
            if not good:
                off.append(f"{algo} ({'het' if het else 'IID'}, noise {noise}: {status})")
    figs = [F.save(fig, fig_dir / "c1_optimism.png")]
    verdict = "reproduced" if ok else "partly"
    plain_converged = [row for row in table if row["algo"] in PLAIN
                       and row["behaviour"] == "converges"]
    opt_failed = [row for row in table if row["algo"] in OPTIMISTIC
                  and row["behaviour"] != "converges"]
    if not ok and not plain_converged and not opt_failed:
        return Analysis(figs, table, verdict, (
            "The contrast holds everywhere: every optimistic method brings ‖T(x̄)‖² below 1% "
            "of its start and no plain one does. But not every plain run diverges or cycles "
            "as claimed: " + ", ".join(off) + " — ‖T‖² decreases slowly instead (between "
            "1% and 30% of the start after the run), which is neither convergence nor the "
            "claimed failure."))
    text = ("DPOSG, DExtraGrad and CPOSG drive ‖T(x̄)‖² down by more than 100x in every "
            "case (to a floor where shards differ or the operator is noisy); DPSGDA and DPAdam "
            "do not (table: 'diverges' = ‖T‖² grew more than 10x or became non-finite, "
            "'cycles / stalls' = stayed within 0.3x..10x of the start)." if ok else
            "Not every case behaves as claimed: " + ", ".join(off) + ".")
    return Analysis(figs, table, verdict, text)
