"""The one training loop: every algorithm, every game, both backends, and the benchmark.

    with open_run(cfg, out) as run:                       # gossipgan.train.build
        for step in steps(run, start, cfg.run.iters):     # optimizer.step(closure), timed
            log / evaluate / sample / checkpoint every so many iterations
    write summary.json and plots

`steps` is the only place that calls `optimizer.step` in a loop; `train` consumes it for
everything around the steps. The network benchmark's timed cells are `train` runs with
`artifacts=False` (no checkpoints, samples or plots). A SIGINT (Ctrl-C) is noted and acted on
between steps: the loop writes a checkpoint and returns normally, so no step is half-saved.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from gossipgan.comm import Communicator
from gossipgan.errors import ConfigError, Diverged, PeerFailure
from gossipgan.train.build import Run, open_run, together
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.config import Config
from gossipgan.train.outputs import (
    MetricsLog,
    prepare_run_dir,
    restore_replaced,
    settle_run_dir,
    write_json,
)
from gossipgan.train.plots import plot_run
from gossipgan.train.resume import check_state, data_fingerprint, restore, training_state
from gossipgan.train.store import CheckpointStore
from gossipgan.train.tblog import TensorBoardLog, require_tensorboard

log = logging.getLogger("gossipgan")


@dataclass(frozen=True)
class Step:
    """What one `optimizer.step` took: its iteration (1-based), wall and communication
    seconds, and the bytes this process's workers sent."""

    iteration: int
    seconds: float
    comm_seconds: float
    bytes_sent: int


def steps(run: Run, start: int, stop: int) -> Iterator[Step]:
    """Steps start+1 .. stop of `run`: one operator evaluation and one communication phase
    each (extragradient: two of each), timed. Stop consuming to stop training."""
    closure, traffic, ema = run.workers.compute_grads, run.comm.traffic, run.ema
    for k in range(start + 1, stop + 1):
        t0, comm0, bytes0 = time.perf_counter(), traffic.seconds, traffic.bytes
        run.optimizer.step(closure)
        if ema is not None:  # each worker's own EMA: local, no communication
            ema.update(run.optimizer.iterates())
        yield Step(k, time.perf_counter() - t0, traffic.seconds - comm0, traffic.bytes - bytes0)


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


def _resume(run: Run, store: CheckpointStore, clock: dict, out: Path,
            fingerprint: str | None) -> int:
    """Load the checkpoint every rank agrees on, after checking it fits this run."""
    path = store.resume_path()
    if path is None:
        raise ConfigError(f"--resume: no checkpoint in {out} that every worker holds")
    state = load_checkpoint(path)
    check_state(state, path, run, fingerprint)
    return restore(run, state, path, clock)


def _together(comm: Communicator, action):
    return together(action, comm.gather_objects)


PLAYERS = {"min": "min player's (the generator's)", "max": "max player's (the "
           "discriminator's)"}


def _agree(run: Run, k: int, stop: bool, row: dict | None, checkpoint: Path | None) -> bool:
    """Whether any rank was asked to stop; raises Diverged (on every rank) if any rank holds a
    non-finite parameter or gradient, or the logged losses at x_bar are not finite."""
    player = run.workers.nonfinite()
    what = f"the {PLAYERS[player]} parameters or gradients are" if player else None
    if what is None and row is not None:
        bad = [key for key, v in row.items() if key.startswith("loss_")
               and v is not None and not math.isfinite(v)]
        what = f"{bad[0]} at the average model is" if bad else None
    answers = run.comm.gather_objects((stop, what))
    diverged = next((w for _, w in answers if w), None)
    if diverged:
        kept = f"the last finite checkpoint is {checkpoint}" if checkpoint else \
            "no checkpoint was written before it"
        raise Diverged(f"training diverged at iteration {k}: {diverged} not finite; lower "
                       f"the step size (optim.lr); {kept}")
    return any(s for s, _ in answers)


def summary(run: Run, k: int, clock: dict) -> dict:
    """summary.json: the run's final figures (from the last full evaluation)."""
    last, first = run.evaluator.last_full, run.evaluator.first
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
    out["derived"] = run.derived()
    return out


def _newest(store: CheckpointStore) -> str:
    steps_held = store.steps()
    if not steps_held:
        return "no checkpoint was written yet"
    return f"the newest checkpoint here is {store.path_of(steps_held[-1])} (resume with --resume)"


def train(cfg: Config, out: str | Path, *, resume: bool | str = False, overwrite: bool = False,
          progress: bool = True, comm: Communicator | None = None, artifacts: bool = True
          ) -> dict:
    """Run a training run into `out`; returns the summary.

    resume: False (a new run), True (continue the run in `out`), or "auto" (continue if every
    worker has a checkpoint, else start afresh: what a torchrun restart after a crash needs).
    artifacts: False writes only config.yaml, metrics.csv and summary.json (no checkpoints,
    sample grids or plots): the network benchmark's timed cells.
    """
    out = Path(out)
    with open_run(cfg, out, comm) as run:
        try:
            return _train(run, out, resume, overwrite, progress, artifacts)
        except PeerFailure as err:
            raise PeerFailure(f"{err}; {_newest(CheckpointStore(out, run.comm))}") from None


def _train(run: Run, out: Path, resume: bool | str, overwrite: bool, progress: bool,
           artifacts: bool) -> dict:
    main = run.comm.is_main
    tensorboard = run.cfg.run.tensorboard and artifacts and main
    if run.cfg.run.tensorboard:  # before the run directory is touched; every rank fails alike
        _together(run.comm, lambda: require_tensorboard() if tensorboard else None)
    store = CheckpointStore(out, run.comm)
    if resume == "auto":
        store.check_world()
        resume = store.resume_path() is not None
        overwrite = overwrite or not resume
    _together(run.comm, lambda: prepare_run_dir(out, resume=bool(resume), overwrite=overwrite)
              if main else None)
    try:
        start, clock, fingerprint, metrics = _start(run, out, store, resume, artifacts)
    except BaseException:
        if main:
            restore_replaced(out)  # the new run did not start: the one it replaced is back
        raise
    if main:
        settle_run_dir(out)
    tb = TensorBoardLog(out if tensorboard else None, start if resume else None)
    try:
        if start == 0:
            tb.scalars(run.evaluator.first)  # the iteration-0 row _start logged
        return _steps_and_outputs(run, out, store, start, clock, fingerprint, metrics,
                                  progress, artifacts, tb)
    finally:
        tb.close()


def _start(run: Run, out: Path, store: CheckpointStore, resume: bool | str, artifacts: bool):
    """Resume or begin: (start iteration, clock, data fingerprint, metrics log); a new run's
    iteration-0 evaluation is done here, so a run that gets past this started cleanly."""
    main, evaluator = run.comm.is_main, run.evaluator
    store.remove_stale_temporaries()
    if resume:
        store.check_world()
    clock = {"train_s": 0.0, "comm_s": 0.0}
    fingerprint = data_fingerprint(run) if artifacts or resume else None
    start = _together(run.comm, lambda: _resume(run, store, clock, out, fingerprint)) \
        if resume else 0
    if main:
        run.cfg.save(out / "config.yaml")
    metrics = MetricsLog(out / "metrics.csv", resume_iter=start if resume else None) \
        if main else None
    if start == 0:
        evaluator.log(0, clock, metrics, full=True, quality=True)
    run.comm.barrier()  # the main process measured quality alone: start the clocks together
    return start, clock, fingerprint, metrics


def _steps_and_outputs(run: Run, out: Path, store: CheckpointStore, start: int, clock: dict,
                       fingerprint: str | None, metrics: MetricsLog | None, progress: bool,
                       artifacts: bool, tb: TensorBoardLog) -> dict:
    cfg, r, evaluator, main = run.cfg, run.cfg.run, run.evaluator, run.comm.is_main
    quality_every = r.quality_every or r.eval_every
    bar = tqdm(total=r.iters, initial=start, disable=not (progress and main), unit="it",
               dynamic_ncols=True,
               desc=f"{cfg.optim.algo} {run.topology.name} N={run.topology.n_workers}")
    k, stop, path, row = start, False, None, None
    with _StopFlag() as flag:
        for step in steps(run, start, r.iters):
            k = step.iteration
            clock["train_s"] += step.seconds
            clock["comm_s"] += step.comm_seconds
            bar.update(1)
            last = k == r.iters
            full = k % r.eval_every == 0 or last
            log_now = k % r.log_every == 0 or full
            if log_now:
                row = evaluator.log(k, clock, metrics, full=full,
                                    quality=full and (k % quality_every == 0 or last))
                tb.scalars(row)
                bar.set_postfix(evaluator.postfix(row), refresh=False)
                if full and main and not progress:
                    log.info("%s: iteration %d/%d %s", out.name, k, r.iters,
                             evaluator.postfix(row))
            if artifacts and (k % r.sample_every == 0 or last):
                tb.images(k, evaluator.samples(k))
            save = artifacts and (k % r.checkpoint_every == 0 or last)
            # Ranks must stop at the same step and agree that the iterates are finite before
            # a save; agreeing costs a collective and the finiteness check a pass over the
            # parameters, so only at log and checkpoint steps (it also starts the next step's
            # clocks together after an evaluation).
            if log_now or save:
                stop = _agree(run, k, flag.stop, row if log_now else None, path)
            elif not store.sharded:
                stop = flag.stop  # one process holds every worker: nothing to agree on
            if artifacts and (save or stop):
                path = store.save(training_state(run, k, clock, fingerprint), k)
            if stop:
                break
    bar.close()
    if k < r.iters:
        return {"interrupted": True, "iteration": k, "iters": r.iters,
                "checkpoint": str(path) if path else None}
    result = summary(run, k, clock)
    if main:
        write_json(out / "summary.json", result)
        if artifacts:
            plot_run(out)
    return result


__all__ = ["Step", "steps", "summary", "train"]
