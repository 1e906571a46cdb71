"""The one place a run is built from its config.

    with open_run(cfg, out) as run:     # threads set, process group joined (dist), torn down after
        run.topology  run.comm  run.game  run.workers  run.optimizer  run.evaluator  run.ema

`open_run` is the context manager every entry point uses (training, `gossipgan eval`, the
network benchmark's cells); `build_run` does the building inside it. The packages below take
plain arguments and never see a `Config`: the mapping from config keys to their arguments is
written here, once. The user's config is never changed; what is derived from it (the device,
the simulator's resolved `auto` choices) lives on the `Run` beside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from gossipgan.comm import Communicator, SimComm
from gossipgan.comm.dist import DistComm, init_process_group, local_device
from gossipgan.data import load_dataset
from gossipgan.errors import ConfigError
from gossipgan.games import Game, GanGame, build_analytic_game
from gossipgan.games.analytic import ANALYTIC_GAMES
from gossipgan.optim import GossipOptimizer, optimizer_class
from gossipgan.sim import Workers
from gossipgan.topology import Topology
from gossipgan.train.config import Config
from gossipgan.train.ema import EMA, generator_ema
from gossipgan.train.evaluate import Evaluator


@dataclass
class Run:
    """Everything a step and its measurements touch, built from `cfg` by `build_run`."""

    cfg: Config
    device: torch.device
    topology: Topology
    comm: Communicator
    game: Game
    workers: Workers
    optimizer: GossipOptimizer
    evaluator: Evaluator
    ema: EMA | None = None  # the generator's EMA (run.ema), updated by the loop's steps

    def derived(self) -> dict:
        """What was derived from the config rather than given (for summary.json)."""
        out = {"device": str(self.device), "vectorize": self.workers.vectorize}
        if isinstance(self.comm, SimComm):
            out["mixing"] = self.comm.mode
        if self.optimizer.compression is not None:  # optim.consensus_step null: its default
            out["consensus_step"] = self.optimizer.compression.gamma
        return out


# Copies of every worker's parameters a step holds at once (parameters, gradient, x, x_hat,
# Adam's two moments, the update, the mixed result): a floor, activations come on top.
STATE_COPIES = 8


def _check_model_memory(shape: tuple, cfg: Config, n_local: int) -> None:
    """Refuse before allocating when this process's workers' models cannot fit in memory."""
    from gossipgan.data.checks import check_memory
    from gossipgan.models import build_models

    g = cfg.game
    with torch.device("meta"):  # shapes only: nothing is allocated
        models = build_models(g.model, shape, g.latent_dim, g.width)
        floats = sum(p.numel() for m in models for p in m.parameters())
    check_memory(4 * floats * n_local * STATE_COPIES,
                 f"{n_local} worker(s) of a {floats:,}-parameter {g.model} GAN "
                 "(topology.workers, game.width, game.latent_dim)")


def build_game(cfg: Config, n_workers: int, device: torch.device | str = "cpu",
               n_local: int | None = None) -> Game:
    """The game `cfg` describes, split over `n_workers` shards (`n_local` of them held by this
    process: its memory is checked before the models are built)."""
    g, d = cfg.game, cfg.data
    if g.name in ANALYTIC_GAMES:
        return build_analytic_game(g.name, n_workers=n_workers, dim=g.dim,
                                   samples_per_worker=g.samples_per_worker,
                                   heterogeneity=g.heterogeneity, noise=g.noise,
                                   seed=cfg.run.seed, device=device)
    dataset = load_dataset(d.dataset, d.root, split="train", image_size=d.image_size,
                           seed=cfg.run.seed)
    _check_model_memory(dataset.shape, cfg, n_workers if n_local is None else n_local)
    return GanGame(dataset, n_workers, model=g.model, loss=g.loss, latent_dim=g.latent_dim,
                   width=g.width, gp_weight=g.gp_weight, scheme=d.shard, alpha=d.alpha,
                   batch_size=cfg.run.batch, seed=cfg.run.seed)


def build_optimizer(cfg: Config, game: Game, workers: Workers, comm: Communicator
                    ) -> GossipOptimizer:
    """The config's algorithm over the workers' parameters, one group per player (lr_g, lr_d)."""
    o = cfg.optim
    groups = []
    for player, lr in (("min", o.lr_g or o.lr), ("max", o.lr_d or o.lr)):
        params = [p for k, p in workers.params.items() if game.player(k) == player]
        if params:
            groups.append({"params": params, "lr": lr})
    cls = optimizer_class(o.algo)
    kwargs = dict(lr=o.lr, rounds=o.rounds, compression=o.compression,
                  consensus_step=o.consensus_step, compression_seed=cfg.run.seed)
    if cls.direction == "adam":
        kwargs.update(betas=(o.beta1, o.beta2), eps=o.eps, moments=o.moments)
    return cls(groups, comm=comm, **kwargs)


def build_run(cfg: Config, out: Path | None = None, comm: Communicator | None = None) -> Run:
    """The run `cfg` describes. `comm`: the communicator to use (default: the simulator, or
    DistComm when run.backend is dist; its process group must be joined: see `open_run`).
    `out`: the run directory the evaluator writes samples to (on the main process)."""
    graph = comm.topology if comm is not None else cfg.topology.build()
    device = torch.device(cfg.run.device)
    if comm is None and cfg.run.backend == "dist":
        comm = DistComm(graph, delay_s=cfg.run.delay_ms / 1000)
        device = local_device(dist.get_backend())
    elif comm is None:
        comm = SimComm(graph, mode=cfg.run.mixing)
    game = build_game(cfg, graph.n_workers, device, n_local=len(comm.workers))
    workers = Workers(game, comm.workers, cfg.run.seed, cfg.run.batch, cfg.run.vectorize, device)
    optimizer = build_optimizer(cfg, game, workers, comm)
    r = cfg.run
    if r.ema is not None and not game.generates:
        raise ConfigError(f"run.ema averages a generator; the analytic game {cfg.game.name!r} "
                          "has none (set run.ema=null)")
    ema = generator_ema(r.ema, workers.names, optimizer.iterates(), game.player)
    evaluator = Evaluator(
        game, comm, workers.names, optimizer, seed=r.seed, eval_batch=r.eval_batch,
        batch=r.batch, out=Path(out) if out is not None and comm.is_main else None,
        quality_every=r.quality_every, quality_samples=r.quality_samples,
        classifier=r.classifier, ema=ema, ema_per_worker=r.ema_per_worker,
        title=f"{cfg.optim.algo}, {graph.name} N={graph.n_workers}, t={cfg.optim.rounds}")
    return Run(cfg, device, graph, comm, game, workers, optimizer, evaluator, ema)


def together(action, gather):
    """`action()` on every rank; if it raises a ConfigError on any, raise it on all with that
    rank's message. `gather(obj)` collects one object per rank (None: one process).

    An error only one rank sees (its data file or checkpoint is damaged, rank 0 finds the run
    directory taken) would otherwise leave the others blocked in their next collective.
    """
    result, error = None, None
    try:
        result = action()
    except ConfigError as e:
        error = str(e)
    errors = gather(error) if gather else [error]
    first = next((e for e in errors if e), None)
    if first:
        raise ConfigError(first)
    return result


def _gather_all(obj) -> list:
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def open_run(cfg: Config, out: Path | None = None, comm: Communicator | None = None
             ) -> Iterator[Run]:
    """`build_run` inside what a run needs around it, undone on exit: torch's thread count
    (run.threads) and, for run.backend=dist, the torchrun process group (joined here and left
    on exit, unless the caller joined it: then it is the caller's). A process that runs
    several distributed runs joins the group once first
    (`gossipgan.comm.dist.init_process_group`): torchrun's rendezvous serves one group."""
    threads = torch.get_num_threads()
    joined = False
    try:
        torch.set_num_threads(cfg.run.threads)
        if comm is None and cfg.run.backend == "dist" and not dist.is_initialized():
            init_process_group(cfg.run.dist_backend, cfg.topology.workers,
                               timeout_s=cfg.run.comm_timeout_s)
            joined = True
        yield together(lambda: build_run(cfg, out, comm),
                       _gather_all if dist.is_initialized() else None)
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads)


__all__ = ["Run", "build_game", "build_optimizer", "build_run", "open_run", "together"]
