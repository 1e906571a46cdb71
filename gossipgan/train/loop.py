"""The one training loop: every algorithm, every game, both backends.

    build the topology, communicator, game, workers and optimizer from the config
    for k in 1..iters:   optimizer.step(closure)      # one operator evaluation + one gossip phase
                         log / evaluate / sample / checkpoint every so many iterations
    write summary.json and plots

A SIGINT (Ctrl-C) is noted and acted on between steps: the loop writes a checkpoint and
returns normally, so no step is ever half-saved.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gossipgan import topology as topo
from gossipgan.comm import Communicator, SimComm
from gossipgan.comm.dist import DistComm, init_process_group, local_device
from gossipgan.errors import ConfigError
from gossipgan.games import Game, build_game
from gossipgan.optim import GossipOptimizer, optimizer_class
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.config import Config, math_differences, validate
from gossipgan.train.evaluate import Evaluator
from gossipgan.train.outputs import MetricsLog, prepare_run_dir, write_json
from gossipgan.train.plots import plot_run
from gossipgan.train.store import CheckpointStore
from gossipgan.workers import Workers

log = logging.getLogger("gossipgan")


@dataclass
class Run:
    """Everything a step touches, built from a Config."""

    cfg: Config
    topology: topo.Topology
    comm: Communicator
    game: Game
    workers: Workers
    optimizer: GossipOptimizer


def build_topology(cfg: Config) -> topo.Topology:
    t = cfg.topology
    options = {"ring": {"self_weight": t.self_weight},
               "erdos_renyi": {"p": t.p, "seed": t.graph_seed},
               "file": {"path": t.edges}}.get(t.name.replace("-", "_"), {})
    return topo.build(t.name, t.workers, **options)


def build_run(cfg: Config, comm: Communicator | None = None) -> Run:
    validate(cfg)
    torch.set_num_threads(cfg.run.threads)
    graph = build_topology(cfg)
    if comm is None and cfg.run.backend == "dist":
        backend = init_process_group(cfg.run.dist_backend, graph.n_workers)
        comm = DistComm(graph, delay_s=cfg.run.delay_ms / 1000)
        cfg.run.device = str(local_device(backend))
    if comm is None:
        comm = SimComm(graph, mode=cfg.run.mixing)
    game = build_game(cfg, graph.n_workers)
    workers = Workers(game, comm.workers, cfg.run.seed, cfg.run.batch, cfg.run.vectorize,
                      cfg.run.device)
    o = cfg.optim
    groups = []
    for player, lr in (("min", o.lr_g or o.lr), ("max", o.lr_d or o.lr)):
        params = [p for k, p in workers.params.items() if game.player(k) == player]
        if params:
            groups.append({"params": params, "lr": lr})
    cls = optimizer_class(o.algo)
    kwargs = dict(lr=o.lr, rounds=o.rounds)
    if cls.direction == "adam":
        kwargs.update(betas=(o.beta1, o.beta2), eps=o.eps, moments=o.moments)
    elif o.moments != "local":
        raise ConfigError(f"optim.moments={o.moments!r} applies only to Adam methods, not {o.algo}")
    return Run(cfg, graph, comm, game, workers, cls(groups, comm=comm, **kwargs))


class _StopFlag:
    """Turns SIGINT into a flag the loop checks between steps; a second SIGINT quits at once
    (KeyboardInterrupt), for when the current step or the agreement to stop takes too long."""

    def __init__(self):
        self.stop = False

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    def _handle(self, *_):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _state(run: Run, iteration: int, clock: dict, evaluator: Evaluator) -> dict:
    return {
        "iteration": iteration,
        "config": run.cfg.to_dict(),
        "workers": run.workers.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "traffic": run.comm.traffic.state_dict(),
        "clock": dict(clock),
        "evaluator": evaluator.state_dict(),
    }


def _resume(run: Run, store: CheckpointStore, evaluator: Evaluator, clock: dict, out: Path) -> int:
    """Load the checkpoint every rank agrees on; returns its iteration."""
    path = store.resume_path()
    if path is None:
        raise ConfigError(f"--resume: no checkpoint in {out} that every worker holds")
    state = load_checkpoint(path)
    diff = math_differences(Config.from_dict(state["config"]), run.cfg)
    if diff:
        raise ConfigError(f"cannot resume {out}: config differs in {', '.join(diff)} "
                          "(these change the maths)")
    run.workers.load_state_dict(state["workers"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.comm.traffic.load_state_dict(state["traffic"])
    clock.update(state["clock"])
    evaluator.load_state_dict(state["evaluator"])
    return state["iteration"]


def _together(comm: Communicator, action):
    """Run `action` on every rank; if it fails on any, fail on all with that rank's message.

    An error only one rank sees (its checkpoint is damaged, rank 0 finds the run directory
    taken) would otherwise leave the others blocked in their next collective.
    """
    result, error = None, None
    try:
        result = action()
    except ConfigError as e:
        error = str(e)
    errors = [e for e in comm.gather_objects(error) if e]
    if errors:
        raise ConfigError(errors[0])
    return result


def train(cfg: Config, out: str | Path, *, resume: bool | str = False, overwrite: bool = False,
          progress: bool = True, comm: Communicator | None = None) -> dict:
    """Run a training run into `out`; returns the summary.

    resume: False (a new run), True (continue the run in `out`), or "auto" (continue if every
    worker has a checkpoint, else start afresh: what a torchrun restart after a crash needs).
    """
    out = Path(out)
    run = build_run(cfg, comm)
    main = run.comm.is_main
    store = CheckpointStore(out, run.comm)
    if resume == "auto":
        store.check_world()
        resume = store.resume_path() is not None
        overwrite = overwrite or not resume
    _together(run.comm, lambda: prepare_run_dir(out, resume=bool(resume), overwrite=overwrite)
              if main else None)
    if resume:
        store.check_world()
    evaluator = Evaluator(run, out if main else None)
    clock = {"train_s": 0.0, "comm_s": 0.0}
    start_iter = _together(run.comm, lambda: _resume(run, store, evaluator, clock, out)) \
        if resume else 0
    if main:
        cfg.save(out / "config.yaml")
    metrics = (MetricsLog(out / "metrics.csv", resume_iter=start_iter if resume else None)
               if main else None)
    if start_iter == 0:
        evaluator.log(0, clock, metrics, full=True)

    r = cfg.run
    closure = run.workers.compute_grads
    bar = tqdm(total=r.iters, initial=start_iter, disable=not (progress and main), unit="it",
               dynamic_ncols=True,
               desc=f"{cfg.optim.algo} {run.topology.name} N={run.topology.n_workers}")
    k = start_iter
    stop = False
    with _StopFlag() as flag:
        while k < r.iters and not stop:
            t0 = time.perf_counter()
            comm_before = run.comm.traffic.seconds
            run.optimizer.step(closure)
            clock["train_s"] += time.perf_counter() - t0
            clock["comm_s"] += run.comm.traffic.seconds - comm_before
            k += 1
            bar.update(1)
            log_now = k % r.log_every == 0 or k % r.eval_every == 0 or k == r.iters
            if log_now:
                row = evaluator.log(k, clock, metrics, full=(k % r.eval_every == 0 or k == r.iters))
                bar.set_postfix(evaluator.postfix(row), refresh=False)
            if k % r.sample_every == 0 or k == r.iters:
                evaluator.samples(k)
            # Ranks must stop at the same step; agreeing costs a collective, so only at log steps.
            if log_now or not store.sharded:
                stop = run.comm.any_true(flag.stop)
            if k % r.checkpoint_every == 0 or k == r.iters or stop:
                path = store.save(_state(run, k, clock, evaluator), k)
    bar.close()
    if k < r.iters:
        if main:
            print(f"interrupted at iteration {k}/{r.iters}; checkpoint saved to {path}. "
                  f"Resume with the same command plus --resume.")
        return {"interrupted": True, "iteration": k}
    summary = evaluator.summary(k, clock)
    if main:
        write_json(out / "summary.json", summary)
        plot_run(out)
    return summary
