"""What the loop measures: at the average iterate x_bar = (1/N) sum_i x^i, and across workers.

- consensus: (1/N) sum_i ||x^i - x_bar||^2 over the iterates x^i (not the extrapolation points)
- grad_op_norm_sq: ||T(x_bar)||^2, exact for analytic games, else on a large batch drawn
  from the union of all shards
- dist_to_solution: ||x_bar - x*||^2 where the game knows x*
- loss_*: the game's losses at x_bar on an evaluation batch
- traffic: messages and bytes per worker a real network would carry; comm_s, wall_s
- sample quality of x_bar every run.quality_every iterations (gossipgan.metrics): cls_fid,
  cls_is, cls_kid, cls_classes_hit, cls_class_kl for images, hq_rate / modes_covered for
  2-D mixtures; rank 0 only, from its own fixed seed

Evaluation draws from its own generator, never from the workers', so measuring does not change
the training trajectory. Every rank calls `log` (the averages are collectives); rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gossipgan.train.outputs import MetricsLog
from gossipgan.train.samples import save_samples


def _sq_norm(tensors) -> float:
    return float(sum(t.double().pow(2).sum() for t in tensors))


class Evaluator:
    def __init__(self, run, out: Path | None):
        self.run = run
        self.out = out
        self.generator = torch.Generator().manual_seed(run.cfg.run.seed + 1_234_567)
        self.first: dict = {}
        self.last_full: dict = {}
        self.quality, self.quality_n = None, 0
        r = run.cfg.run
        if out is not None and r.quality_every != 0 and hasattr(run.game, "generate"):
            from gossipgan.metrics import build_monitor

            # Off with a warning when the dataset has no classifier, unless asked for.
            asked = r.quality_every is not None or r.classifier is not None
            self.quality = build_monitor(run.cfg, run.game, run_dir=out, required=asked)
            if self.quality is not None:
                self.quality_n = r.quality_samples or self.quality.default_samples(training=True)
                self.quality.check_samples(self.quality_n, "run.quality_samples")

    def x_bar(self) -> dict:
        names = self.run.workers.names
        iterates = self.run.optimizer.iterates()
        return dict(zip(names, self.run.comm.average(iterates), strict=True))

    def consensus(self, x_bar: dict) -> float:
        iterates = self.run.optimizer.iterates()
        sq = sum((x.detach().double() - x_bar[k].double()).pow(2).flatten(1).sum(1)
                 for k, x in zip(self.run.workers.names, iterates, strict=True))
        return float(self.run.comm.average([sq])[0])

    @torch.no_grad()
    def log(self, k: int, clock: dict, metrics: MetricsLog | None, full: bool) -> dict:
        run, cfg = self.run, self.run.cfg
        game = run.game
        x_bar = self.x_bar()
        shard = getattr(game, "shard_size", None)
        traffic = run.comm.traffic
        row = {
            "iter": k,
            "epoch": round(k * cfg.run.batch / shard, 4) if shard else None,
            "wall_s": round(clock["train_s"], 4),
            "comm_s": round(clock["comm_s"], 4),
            "bytes_sent": traffic.bytes // max(run.comm.n_local, 1),
            "messages": traffic.messages // max(run.comm.n_local, 1),
            "consensus": self.consensus(x_bar),
        }
        device = next(iter(x_bar.values())).device
        batch = game.large_batch(self.generator, cfg.run.eval_batch)
        batch = {k2: v.to(device) for k2, v in batch.items()}
        with torch.enable_grad():
            row.update({k2: float(v) for k2, v in game.losses(x_bar, batch).items()})
        row["grad_op_norm_sq"] = None
        if full:
            exact = getattr(game, "full_operator", None)  # analytic games: T over all shards
            with torch.enable_grad():
                op = exact(x_bar) if exact else game.operator(x_bar, batch)
            row["grad_op_norm_sq"] = _sq_norm(op.values())
            every = cfg.run.quality_every or cfg.run.eval_every
            if self.quality is not None and (k % every == 0 or k == cfg.run.iters):
                row.update(self.quality.measure(x_bar, self.quality_n))
        solution = game.solution()
        if solution is not None:
            row["dist_to_solution"] = _sq_norm(x_bar[n] - solution[n].to(x_bar[n])
                                               for n in solution)
        if full:
            self.last_full = dict(row)
            self.first = self.first or dict(row)
        if metrics is not None:
            metrics.append(row)
        return row

    @staticmethod
    def postfix(row: dict) -> dict:
        keys = [k for k in row if k.startswith("loss_")] + ["consensus", "grad_op_norm_sq"]
        return {k.replace("grad_op_norm_sq", "|T|²"): f"{row[k]:.3g}" for k in keys
                if row.get(k) is not None}

    def samples(self, k: int) -> None:
        """Image grids / scatter plots of x_bar's and worker 0's outputs (games that generate)."""
        game = self.run.game
        generate = getattr(game, "generate", None)
        x_bar = self.x_bar()  # a collective under torch.distributed: every rank takes part
        if generate is None or self.out is None:
            return
        iterates = self.run.optimizer.iterates()
        worker0 = {n: x[0] for n, x in zip(self.run.workers.names, iterates, strict=True)}
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        points = game.dataset.kind == "points"
        n = 1000 if points else 64
        reference = game.dataset.x[:2000] if points else None
        for tag, params in (("xbar", x_bar), ("worker0", worker0)):
            gen = torch.Generator().manual_seed(self.run.cfg.run.seed + 99)
            save_samples(generate(params, n, gen), folder / f"{tag}_{k:06d}.png",
                         title=f"{tag} ({self.run.cfg.optim.algo}), iteration {k}",
                         reference=reference)

    def summary(self, k: int, clock: dict) -> dict:
        run = self.run
        last, first = self.last_full, self.first
        out = {
            "algo": run.cfg.optim.algo,
            "topology": run.topology.name,
            "workers": run.topology.n_workers,
            "rounds": run.cfg.optim.rounds,
            "rho": run.topology.rho(),
            "iters": k,
            "wall_s": round(clock["train_s"], 3),
            "comm_s": round(clock["comm_s"], 3),
            "initial_grad_op_norm_sq": first.get("grad_op_norm_sq"),
            "final_grad_op_norm_sq": last.get("grad_op_norm_sq"),
            "final_consensus": last.get("consensus"),
            "bytes_sent_per_worker": last.get("bytes_sent"),
        }
        for key, value in last.items():
            if key.startswith(("loss_", "cls_", "dist_to_solution", "hq_", "modes_")):
                out[f"final_{key}"] = value
        return out

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "first": self.first,
                "last_full": self.last_full}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.first, self.last_full = state["first"], state["last_full"]
