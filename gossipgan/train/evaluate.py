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
- with run.ema, the same quality metrics of the generator's EMA (gossipgan.train.ema) beside
  x_bar's, suffixed _ema (cls_fid_ema, ...), and consensus_ema with run.ema_per_worker

Evaluation draws from its own generator, never from the workers', so measuring does not change
the training trajectory. Every rank calls `log` (the averages are collectives); rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gossipgan.comm.base import Communicator
from gossipgan.games.base import Game
from gossipgan.optim.gossip import GossipOptimizer
from gossipgan.train.ema import EMA
from gossipgan.train.outputs import MetricsLog
from gossipgan.train.samples import save_samples

REAL_SAMPLES = 64  # real images drawn beside the generated ones


def _sq_norm(tensors) -> float:
    return float(sum(t.double().pow(2).sum() for t in tensors))


class Evaluator:
    """Measures the run at the average iterate; built by `gossipgan.train.build.build_run`.

    `out`: where samples go (None on every process but the main one). Quality metrics are on
    when the game generates and quality_every is not 0; with neither quality_every nor a
    classifier asked for, a dataset without a classifier turns them off with a warning.
    """

    def __init__(self, game: Game, comm: Communicator, names: list[str],
                 optimizer: GossipOptimizer, *, seed: int, eval_batch: int, batch: int,
                 out: Path | None = None, quality_every: int | None = None,
                 quality_samples: int | None = None, classifier: str | None = None,
                 title: str = "", ema: EMA | None = None, ema_per_worker: bool = False):
        self.game, self.comm, self.names, self.optimizer = game, comm, names, optimizer
        self.ema, self.ema_per_worker = ema, ema_per_worker
        self.seed, self.eval_batch, self.batch = seed, eval_batch, batch
        self.out, self.title = out, title
        self.generator = torch.Generator().manual_seed(seed + 1_234_567)
        self.first: dict = {}
        self.last_full: dict = {}
        self.quality, self.quality_n = None, 0
        if out is not None and quality_every != 0 and game.generates:
            from gossipgan.metrics import build_monitor

            asked = quality_every is not None or classifier is not None
            self.quality = build_monitor(game, seed, run_dir=out, classifiers=(classifier,),
                                         required=asked)
            if self.quality is not None:
                self.quality_n = quality_samples or self.quality.default_samples(training=True)
                self.quality.check_samples(self.quality_n, "run.quality_samples")

    def x_bar(self) -> dict:
        """The average iterate x_bar as {name: tensor} (a collective under torch.distributed)."""
        iterates = self.optimizer.iterates()
        return dict(zip(self.names, self.comm.average(iterates), strict=True))

    def consensus(self, x_bar: dict) -> float:
        iterates = self.optimizer.iterates()
        sq = sum((x.detach().double() - x_bar[k].double()).pow(2).flatten(1).sum(1)
                 for k, x in zip(self.names, iterates, strict=True))
        return float(self.comm.average([sq])[0])

    @torch.no_grad()
    def log(self, k: int, clock: dict, metrics: MetricsLog | None, full: bool,
            quality: bool = False) -> dict:
        """One metrics row at iteration k; `full` adds ||T(x_bar)||^2, `quality` the sample
        quality (on the main process). Every rank calls it (the averages are collectives)."""
        game, comm = self.game, self.comm
        x_bar = self.x_bar()
        traffic = comm.traffic
        row = {
            "iter": k,
            "epoch": round(k * self.batch / game.shard_size, 4) if game.shard_size else None,
            "wall_s": round(clock["train_s"], 4),
            "comm_s": round(clock["comm_s"], 4),
            "bytes_sent": traffic.bytes // max(comm.n_local, 1),
            "messages": traffic.messages // max(comm.n_local, 1),
            "consensus": self.consensus(x_bar),
        }
        if self.ema is not None and self.ema_per_worker:
            row["consensus_ema"] = self.ema.consensus(comm)
        device = next(iter(x_bar.values())).device
        batch = game.large_batch(self.generator, self.eval_batch)
        batch = {k2: v.to(device) for k2, v in batch.items()}
        with torch.enable_grad():
            row.update({k2: float(v) for k2, v in game.losses(x_bar, batch).items()})
        row["grad_op_norm_sq"] = None
        if full:
            with torch.enable_grad():
                row["grad_op_norm_sq"] = _sq_norm(game.eval_operator(x_bar, batch).values())
            ema_bar = self.ema_x_bar(x_bar) if quality and self.ema is not None else None
            if quality and self.quality is not None:
                row.update(self.quality.measure(x_bar, self.quality_n))
                if ema_bar is not None:
                    row.update({f"{key}_ema": v for key, v in
                                self.quality.measure(ema_bar, self.quality_n).items()})
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

    def ema_x_bar(self, x_bar: dict) -> dict:
        """x_bar with the generator's EMA in place of its generator (a collective under dist)."""
        return {**x_bar, **self.ema.average(self.comm)}

    def samples(self, k: int) -> dict:
        """Pictures of x_bar's and worker 0's outputs (games that generate), real images beside
        them, and their EMAs with run.ema: {tag: [H, W, 3] uint8} as written to samples/."""
        game = self.game
        x_bar = self.x_bar()  # collectives under torch.distributed: every rank takes part
        ema_bar = self.ema_x_bar(x_bar) if self.ema is not None else None
        if not game.generates or self.out is None:
            return {}
        iterates = self.optimizer.iterates()
        worker0 = {n: x[0] for n, x in zip(self.names, iterates, strict=True)}
        models = {"xbar": [("x̄", x_bar)], "worker0": [("worker 0", worker0)]}
        if ema_bar is not None:
            models["xbar"].append((f"x̄ EMA {self.ema.decay:g}", ema_bar))
            if self.ema_per_worker:
                models["worker0"].append((f"worker 0 EMA {self.ema.decay:g}",
                                          {**worker0, **self.ema.worker(0)}))
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        points = game.dataset.kind == "points"
        pictures = {}
        for tag, panels in models.items():
            drawn = []
            for name, params in panels:  # the same latent draws for every panel
                gen = torch.Generator().manual_seed(self.seed + 99)
                drawn.append((name, game.generate(params, 1000 if points else 64, gen)))
            title = f"{self.title}, iteration {k}"
            if points:
                for i, (name, pts) in enumerate(drawn):  # one scatter each: overlaid, unreadable
                    one = f"{tag}_ema" if i else tag
                    pictures[one] = save_samples(pts, folder / f"{one}_{k:06d}.png",
                                                 f"{name}: {title}", game.dataset.x[:2000])
            else:
                panels = [("real", game.dataset.x[:REAL_SAMPLES]), *drawn]
                pictures[tag] = save_samples(panels, folder / f"{tag}_{k:06d}.png", title)
        return {t: p for t, p in pictures.items() if p is not None}

    def state_dict(self) -> dict:  # the EMA is checkpointed by the loop, beside the optimizer
        return {"generator": self.generator.get_state(), "first": self.first,
                "last_full": self.last_full}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.first, self.last_full = state["first"], state["last_full"]
