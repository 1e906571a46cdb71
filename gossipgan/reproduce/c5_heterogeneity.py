"""Claim 5: with non-IID shards constant-step DPOSG stops at a floor; tracking removes it."""

from __future__ import annotations

from pathlib import Path

from gossipgan.reproduce import figures as F
from gossipgan.reproduce.spec import Analysis, RunResult, RunSpec, analytic_spec, fmt, group, pick

NUMBER = 5
TITLE = "Heterogeneous data: a floor, and tracking removes it"
CLAIM = ("The analysis assumes the workers' data come from one distribution; reviewers asked "
         "what happens with non-IID shards. Measured before (DESIGN.md §9): DPOSG on the "
         "heterogeneous bilinear game stops at ‖T‖² ≈ 7e-4 (η = 0.05) while IID shards reach "
         "1e-13; gradient tracking (`*-gt`) should remove the floor.")
N, ROUNDS = 8, 2
CONVERGED = 1e-10
SETUP = (f"Bilinear game, noise 0, N = {N} ring, t = {ROUNDS}, batch 8: heterogeneity × η for "
         "DPOSG against DPOSG-GT (gradient tracking, twice the bytes per round), and "
         "DExtraGrad against DExtraGrad-GT at one η. The floor: the final ‖T(x̄)‖². "
         "Differs from the paper: the paper has no heterogeneous experiment we could read; "
         "this is our own test of the reviewers' question.")


def specs(scale: str) -> list[RunSpec]:
    hets = pick(scale, (0.0, 0.1, 0.5, 1.0), (0.0, 0.5), (0.5,))
    etas = pick(scale, (0.05, 0.2), (0.2,), (0.2,))
    extra_eta = pick(scale, 0.1, 0.2, 0.2)
    runs = [(a, h, e) for a in ("dposg", "dposg-gt") for h in hets for e in etas]
    runs += [(a, h, extra_eta) for a in ("dextragrad", "dextragrad-gt") for h in hets
             if scale != "tiny"]
    # the floor is reached after about 15/eta^2 iterations (measured: 6,000 at eta = 0.05)
    return [analytic_spec(f"{a}-h{h}-lr{e}", {"algo": a, "het": h, "eta": e},
                          pick(scale, max(800, round(15 / e**2)), 800, 40), 20,
                          game__name="bilinear", game__noise=0.0, game__heterogeneity=h,
                          optim__algo=a, optim__lr=e, optim__rounds=ROUNDS,
                          topology__workers=N)
            for a, h, e in runs]


def analyse(runs: list[RunResult], fig_dir: Path) -> Analysis:
    by_eta = group(runs, "eta")
    fig, axes = F.new_figure(len(by_eta) + 1, cols=2)
    for ax, ((eta,), rs) in zip(axes, by_eta.items(), strict=False):
        curves = {f"{r.tags['algo']} het {r.tags['het']}": [r] for r in rs
                  if r.tags["het"] in (0.0, max(x.tags["het"] for x in rs))}
        F.curves_panel(ax, curves, "grad_op_norm_sq", f"η = {eta}: extreme heterogeneities",
                       ylabel="‖T(x̄)‖²")
    ax = axes[-1]
    table = []
    for i, ((algo, eta), rs) in enumerate(group(runs, "algo", "eta").items()):
        rs = sorted(rs, key=lambda r: r.tags["het"])
        finals = [max(r.final("grad_op_norm_sq") or 0.0, 1e-32) for r in rs]
        ax.semilogy([r.tags["het"] for r in rs], finals, "o-" if "gt" in algo else "s--",
                    color=F.COLORS[i % 10], label=f"{algo} η={eta}")
        for r, f in zip(rs, finals, strict=True):
            table.append({"algo": algo, "η": eta, "heterogeneity": r.tags["het"],
                          "final ‖T(x̄)‖²": fmt(f), "final consensus": fmt(r.final("consensus")),
                          "kB/iter": fmt(((r.summary or {}).get("bytes_sent_per_worker") or 0)
                                         / max(r.rows[-1]["iter"], 1) / 1e3, ".2f")})
    ax.set_title("floor: final ‖T(x̄)‖² vs heterogeneity", fontsize=9)
    ax.set_xlabel("heterogeneity")
    ax.set_ylabel("final ‖T(x̄)‖²")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
    figs = [F.save(fig, fig_dir / "c5_heterogeneity.png")]
    floor = {(r["algo"], r["η"], r["heterogeneity"]): float(r["final ‖T(x̄)‖²"]
                                                          .replace("diverged", "inf"))
             for r in table}
    het_max = max(h for _, _, h in floor)
    plain = [(a, e) for a, e, h in floor if h == het_max and not a.endswith("-gt")
             and (a, e, 0.0) in floor]
    # a floor: the plain method ends >10x above where its own IID run ends; removed: the
    # tracking variant ends within 3x of its IID run (the same number of iterations), or
    # both are converged (below CONVERGED: 11 decades under the start)
    grows = [floor[(a, e, het_max)] > 10 * floor[(a, e, 0.0)] for a, e in plain]
    removed = [floor[(a + "-gt", e, het_max)]
               <= max(3 * floor[(a + "-gt", e, 0.0)], CONVERGED)
               for a, e in plain if (a + "-gt", e, 0.0) in floor]
    lines = [f"{a} η={e}: IID {floor[(a, e, 0.0)]:.2g}, heterogeneity {het_max} "
             f"{floor[(a, e, het_max)]:.2g}" + (f", {a}-gt {floor[(a + '-gt', e, het_max)]:.2g}"
                                               if (a + "-gt", e, het_max) in floor else "")
             for a, e in plain]
    text = ("Final ‖T(x̄)‖² — " + "; ".join(lines) + ". ")
    text += (f"Without tracking, heterogeneity {het_max} ends more than 10x above the IID run "
             f"in {sum(grows)} of {len(grows)} settings (the floor grows with heterogeneity "
             "and with η: table and figure); with tracking it ends within 3x of the IID run "
             f"(or below {CONVERGED:g}) in {sum(removed)} of {len(removed)}, at twice the "
             "bytes per round. Where the IID run itself is far from round-off (small η), it "
             "was still descending when the run stopped.")
    if (0.05, 0.5) in {(e, h) for _, e, h in floor}:
        text += (f" At η = 0.05, heterogeneity 0.5, DPOSG stops at "
                 f"{floor[('dposg', 0.05, 0.5)]:.2g} (DESIGN.md §9 measured 7.05e-4).")
    ok = grows and removed and all(grows) and all(removed)
    return Analysis(figs, table, "reproduced" if ok else "partly", text)
