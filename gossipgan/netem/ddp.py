"""What users run today, measured in the same grid: torch DistributedDataParallel GAN training.

Two DDP-wrapped models (the cells' generator and discriminator, same initialisation), one
`torch.optim.Adam` each with the cells' step sizes and betas, and the usual alternating steps
per iteration on one minibatch of this worker's shard (the cells' data split): a
discriminator step (fakes made without a graph), then a generator step through the
discriminator under `no_sync()` (its gradients there are discarded, so a careful user does not
all-reduce them). DDP all-reduces each model's gradients (one bucket each here) overlapped with
the backward pass. Rows:

    ddp-adam        the default all-reduce hook
    ddp-adam-fp16   torch's fp16_compress_hook: gradients all-reduced in half precision (the
                    cheap compressed all-reduce DDP ships; PowerSGD needs per-model tuning)

Time per iteration is the training steps alone, like the cells' `wall_s`; the generator is
measured with the cells' quality monitor between timed steps (rank 0: every rank holds the same
model). Bytes are counted in the communication hook: a ring all-reduce sends 2(N-1)/N of each
bucket per worker. DDP's communication overlaps its backward, so it has no separate comm time.

This is the users' own training loop, measured as they would run it: the one place in the
package besides train/loop.py that steps an optimizer (tests/test_architecture.py allows it).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

from gossipgan.netem import alphabeta
from gossipgan.train.build import build_game
from gossipgan.train.config import Config

HOOKS = {"ddp-adam": (default_hooks.allreduce_hook, 4),
         "ddp-adam-fp16": (default_hooks.fp16_compress_hook, 2)}
NOTES = {"ddp-adam": "torch DDP + Adam, alternating D/G steps",
         "ddp-adam-fp16": "torch DDP + Adam, fp16_compress_hook (compressed all-reduce)"}


class _Counted:
    """A DDP communication hook (`.hook`) that counts the bytes each worker sends."""

    def __init__(self, name: str, n_workers: int):
        inner, size = HOOKS[name]
        self.bytes = 0

        def hook(state, bucket):
            self.bytes += 2 * (n_workers - 1) * bucket.buffer().numel() * size // n_workers
            return inner(state, bucket)

        hook.__name__ = inner.__name__  # DDP looks at the name of the hooks it knows
        self.hook = hook


def _models(cfg: Config, game) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The cells' generator and discriminator with the cells' initial parameters."""
    start = game.init_params(cfg.run.seed)
    g, d = copy.deepcopy(game.G), copy.deepcopy(game.D)
    with torch.no_grad():
        for prefix, module in (("G.", g), ("D.", d)):
            for name, p in module.named_parameters():
                p.copy_(start[prefix + name])
    return g, d


def _d_loss(loss: str, d, x, fake, e, gp_weight: float) -> torch.Tensor:
    """The discriminator's loss of gossipgan.games.gan, in one DDP forward of real, fake and
    (WGAN-GP) interpolated samples: one forward, one backward, one all-reduce."""
    n = len(x)
    inputs = [x, fake]
    if loss == "wgan-gp":
        w = e.view(-1, *([1] * (x.dim() - 1)))
        inputs.append((w * x + (1 - w) * fake).requires_grad_(True))
    out = d(torch.cat(inputs)).view(-1)
    real, fake_out = out[:n], out[n:2 * n]
    if loss == "nsgan":
        return (F.softplus(-real) + F.softplus(fake_out)).mean()
    if loss == "hinge":
        return (F.relu(1 - real) + F.relu(1 + fake_out)).mean()
    grad = torch.autograd.grad(out[2 * n:].sum(), inputs[2], create_graph=True)[0]
    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    return fake_out.mean() - real.mean() + gp_weight * penalty


def _g_loss(loss: str, d, fake) -> torch.Tensor:
    out = d(fake).view(-1)
    return F.softplus(-out).mean() if loss == "nsgan" else -out.mean()


def train_ddp(cfg: Config, name: str) -> dict:
    """`cfg.run.iters` DDP iterations on this rank; rank 0's metrics rows (iter, wall_s,
    bytes_sent, cls_fid every eval_every iterations), and the models' sizes."""
    rank, n = dist.get_rank(), dist.get_world_size()
    game = build_game(cfg, n)
    g_net, d_net = _models(cfg, game)
    counter = _Counted(name, n)
    g, d = DDP(g_net), DDP(d_net)
    for model in (g, d):
        model.register_comm_hook(None, counter.hook)
    o = cfg.optim
    betas = (o.beta1, o.beta2)
    opt_g = torch.optim.Adam(g.parameters(), lr=o.lr_g or o.lr, betas=betas, eps=o.eps)
    opt_d = torch.optim.Adam(d.parameters(), lr=o.lr_d or o.lr, betas=betas, eps=o.eps)
    monitor = None
    if rank == 0:
        from gossipgan.metrics import build_monitor

        monitor = build_monitor(game, cfg.run.seed, classifiers=(cfg.run.classifier,),
                                required=False)
    gen = torch.Generator().manual_seed(cfg.run.seed * 7919 + rank)
    rows, wall = [], 0.0
    for k in range(1, cfg.run.iters + 1):
        batch = game.sample(rank, gen, cfg.run.batch)
        t0 = time.perf_counter()
        with torch.no_grad():
            fake = g(batch["z"])
        loss_d = _d_loss(game.loss, d, batch["x"], fake, batch.get("e"), game.gp_weight)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with d.no_sync():
            loss_g = _g_loss(game.loss, d, g(batch["z"]))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        opt_g.step()
        wall += time.perf_counter() - t0
        if k % cfg.run.eval_every == 0 or k == cfg.run.iters:
            row = {"iter": k, "wall_s": wall, "comm_s": math.nan, "bytes_sent": counter.bytes,
                   "loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}
            if monitor is not None:
                params = {f"G.{m}": p.detach() for m, p in g.module.named_parameters()}
                row.update(monitor.measure(params, cfg.run.quality_samples or 512))
            rows.append(row)
            dist.barrier()  # everyone starts the next timed step together
    sizes = [sum(p.numel() for p in m.parameters()) for m in (g_net, d_net)]
    return {"metrics": rows if rank == 0 else [], "model_floats": sizes}


def time_allreduces(name: str, sizes: list[int], reps: int = 5) -> float:
    """Both models' all-reduces alone, back to back (what one DDP iteration sends); the
    slowest rank's mean."""
    dtype = torch.float16 if HOOKS[name][1] == 2 else torch.float32
    bufs = [torch.zeros(s, dtype=dtype) for s in sizes]
    for b in bufs:
        dist.all_reduce(b)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        for b in bufs:
            dist.all_reduce(b)
    mine = (time.perf_counter() - t0) / reps
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return max(everyone)


def run_ddp(spec: dict, name: str, out: Path) -> dict:
    """One DDP row of the condition in `spec` (same shape as a cell's row)."""
    cfg = Config.from_dict(spec["config"])
    start = time.perf_counter()
    found = train_ddp(cfg, name)
    elapsed = time.perf_counter() - start
    sizes = found["model_floats"]
    return {"algo": name, "topology": "all_reduce", "rounds": 1, "compression": "none",
            "baseline": "ddp", "name": name, "note": NOTES[name],
            "iso_comm_s": time_allreduces(name, sizes), "cell_seconds": elapsed,
            "model_floats": sizes, "rho": None, "run_dir": str(out / name),
            "metrics": found["metrics"]}


def add_predictions(row: dict, cal: dict, n_workers: int) -> None:
    """The α–β model's time for the row's two all-reduces (one per model, per iteration)."""
    model = alphabeta.AlphaBeta(cal["alpha_s"], cal["beta_Bps"], cal["app_delay_s"])
    size = HOOKS[row["algo"]][1]
    for p in alphabeta.PROTOCOLS:
        row[f"pred_{p}_s"] = sum(model.allreduce(n_workers, size * f, p)
                                 for f in row["model_floats"])
