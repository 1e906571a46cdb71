"""Runs a claim's experiments: each run spec is an ordinary `gossipgan.train.train` run in
OUT/<scale>/c<claim>/<name>/, each network grid condition a `run_grid` call.

Rerunning skips what is finished (summary.json, or diverged.json for a run that blew up,
which is a result too) and resumes what was interrupted (a checkpoint is there), so the whole
reproduction can be built over several sittings. The seconds each run took are added to
OUT/<scale>/c<claim>/timing.json, which the report sums.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from gossipgan.errors import Diverged
from gossipgan.reproduce.spec import DIVERGED, RunResult, RunSpec, load_result
from gossipgan.train.config import math_differences
from gossipgan.train.config_io import load_config
from gossipgan.train.loop import train

log = logging.getLogger(__name__)

TIMING = "timing.json"


class Interrupted(Exception):
    """Ctrl-C during a run: its checkpoint is written; rerunning the command continues it."""


def claim_dir(root: Path, scale: str, number: int) -> Path:
    return Path(root) / scale / f"c{number}"


def _add_time(folder: Path, name: str, seconds: float, fresh: bool = False) -> None:
    """Add a sitting's seconds to the run's total; `fresh`: the run started over (a run of
    another configuration was replaced), so its old seconds no longer count."""
    path = folder / TIMING
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[name] = round((0.0 if fresh else times.get(name, 0.0)) + seconds, 2)
    path.write_text(json.dumps(times, indent=1, sort_keys=True))


def measured_seconds(folder: Path) -> float:
    """Seconds the driver spent on this claim's runs, over every sitting."""
    path = folder / TIMING
    return sum(json.loads(path.read_text()).values()) if path.is_file() else 0.0


def _state(spec: RunSpec, run_dir: Path) -> str:
    """'done', 'resume' (a checkpoint of the same run), or 'new' (nothing, or another run)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        return "new"
    saved, wanted = load_config(cfg_path), spec.config()
    if math_differences(saved, wanted):
        log.warning("%s holds a run of another configuration (%s): replacing it", run_dir,
                    ", ".join(math_differences(saved, wanted)))
        return "new"
    finished = (run_dir / "summary.json").is_file() or (run_dir / DIVERGED).is_file()
    if finished and saved.run.iters == wanted.run.iters:
        return "done"
    if wanted.run.iters < saved.run.iters:
        return "new"  # a shorter run is asked for: its checkpoint may lie beyond the end
    return "resume" if (run_dir / "checkpoint.pt").is_file() else "new"


def _train_spec(spec: RunSpec, folder: Path, state: str | None = None
                ) -> tuple[float, bool, bool]:
    """Train `spec` into folder/<name> unless it is finished; resume it if interrupted.
    `state`: its _state, if the caller has it. Returns (seconds spent, whether it started
    over, whether Ctrl-C interrupted it)."""
    run_dir = folder / spec.name
    state = state or _state(spec, run_dir)
    if state == "done":
        return 0.0, False, False
    (run_dir / DIVERGED).unlink(missing_ok=True)
    (run_dir / "summary.json").unlink(missing_ok=True)
    log.debug("%s: %s", run_dir, state)
    start = time.perf_counter()
    try:
        result = train(spec.config(), run_dir, resume=state == "resume",
                       overwrite=state == "new", progress=False)
    except Diverged as err:  # e.g. DPSGDA on a bilinear game: the claim's evidence
        (run_dir / DIVERGED).write_text(json.dumps({"error": str(err)}))
        result = {}
    return time.perf_counter() - start, state == "new", bool(result.get("interrupted"))


def _interrupted(folder: Path) -> Interrupted:
    return Interrupted(f"interrupted in {folder} (checkpoints written); rerun the same "
                       "command to continue")


def run_one(spec: RunSpec, folder: Path) -> RunResult:
    """Train `spec` into folder/<name> unless it is finished; resume it if interrupted."""
    state = _state(spec, folder / spec.name)
    start, fresh = time.perf_counter(), state == "new"
    try:
        seconds, fresh, interrupted = _train_spec(spec, folder, state)
    except BaseException:
        _add_time(folder, spec.name, time.perf_counter() - start, fresh=fresh)
        raise
    if seconds:
        _add_time(folder, spec.name, seconds, fresh=fresh)
    if interrupted:
        raise _interrupted(folder / spec.name)
    loaded = load_result(spec, folder / spec.name)
    assert loaded is not None, folder / spec.name
    return loaded


def run_specs(specs: list[RunSpec], folder: Path, desc: str, progress: bool = True
              ) -> list[RunResult]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in tqdm(specs, desc=desc, unit="run", disable=not progress, dynamic_ncols=True):
        out.append(run_one(spec, folder))
    return out


_STOP = None  # in a pool worker: the parent's "start no further run" event
_STOPPED = False  # in a pool worker: a run of this process was interrupted (it got Ctrl-C)


def _pool_init(level: int, stop) -> None:
    """A pool worker: the parent's log level, the stop event, and the simulator's malloc
    opt-in (this process is the reproduction's own; gossipgan.sim.malloc)."""
    global _STOP
    from gossipgan.sim import keep_freed_memory

    logging.getLogger("gossipgan").setLevel(level)
    keep_freed_memory()
    _STOP = stop


def _pool_task(spec: RunSpec, folder: Path) -> tuple[float, bool, bool]:
    """_train_spec, unless a Ctrl-C has stopped this worker or the parent: the pool hands
    queued runs to workers before the parent can cancel them, and those must not start."""
    global _STOPPED
    if _STOPPED or (_STOP is not None and _STOP.is_set()):
        return 0.0, False, True
    seconds, fresh, _STOPPED = _train_spec(spec, folder)
    return seconds, fresh, _STOPPED


def run_parallel(work: list[tuple[RunSpec, Path]], jobs: int, desc: str,
                 progress: bool = True) -> None:
    """The (spec, folder) runs over `jobs` processes (each run one thread, run.threads); the
    seconds are added to each folder's timing.json here, by the one parent process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    todo = [(s, f) for s, f in work if _state(s, f / s.name) != "done"]
    if not todo:
        return
    for _, f in todo:
        f.mkdir(parents=True, exist_ok=True)
    level = logging.getLogger("gossipgan").getEffectiveLevel()
    interrupted: list[Path] = []
    recorded: set = set()

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()

    def record(fut) -> None:  # a finished run's seconds, once
        if fut in recorded or not fut.done() or fut.cancelled() or fut.exception():
            return
        recorded.add(fut)
        spec, folder = futures[fut]
        seconds, fresh, stopped = fut.result()
        if seconds or fresh:
            _add_time(folder, spec.name, seconds, fresh=fresh)
        if stopped:
            stop.set()
            interrupted.append(folder / spec.name)

    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pool_init,
                             initargs=(level, stop)) as pool:
        futures = {pool.submit(_pool_task, s, f): (s, f) for s, f in todo}
        bar = tqdm(total=len(work), initial=len(work) - len(todo), desc=desc, unit="run",
                   disable=not progress, dynamic_ncols=True)
        try:
            for fut in as_completed(futures):
                fut.result()  # a run's error is the command's error
                record(fut)
                if interrupted:  # Ctrl-C reached the workers: the others stop too
                    break
                bar.update(1)
        except KeyboardInterrupt:  # the workers got the same Ctrl-C: they checkpoint and stop
            stop.set()
            interrupted.append(todo[0][1])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for fut in futures:
                record(fut)
            bar.close()
    if interrupted:
        raise _interrupted(interrupted[0])


def finished(specs: list[RunSpec], folder: Path) -> list[RunResult] | None:
    """Every spec's result if all are finished, else None (the report uses a smaller scale)."""
    if any(_state(s, folder / s.name) != "done" for s in specs):
        return None  # missing, unfinished, or a run of another configuration
    results = [load_result(s, folder / s.name) for s in specs]
    return results  # type: ignore[return-value]


# --- network grids (claims 7-8) ---------------------------------------------------------------

DONE = "done.json"


def _grid_done(grid, target: Path) -> bool:
    """done.json is there and grid.json describes this very grid (not an older size)."""
    from dataclasses import asdict

    if not (target / DONE).is_file() or not (target / "grid.json").is_file():
        return False
    saved = json.loads((target / "grid.json").read_text())
    return all(saved.get(k) == v for k, v in asdict(grid).items())


def run_grids(grids: list[tuple[str, object]], folder: Path, desc: str,
              progress: bool = True) -> list[Path]:
    """Each (name, Grid) into folder/<name>/ unless done.json is there; one condition per grid
    (the claims build them so) makes a condition the unit that is skipped or rerun."""
    from gossipgan.netem.grid import run_grid  # lazily: the library core never loads netem

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, grid in tqdm(grids, desc=desc, unit="condition", disable=not progress,
                           dynamic_ncols=True):
        target = folder / name
        if not _grid_done(grid, target):
            (target / DONE).unlink(missing_ok=True)
            start = time.perf_counter()
            try:
                results = run_grid(grid, target)
            finally:
                _add_time(folder, name, time.perf_counter() - start, fresh=True)
            (target / DONE).write_text(json.dumps(results))
        out.append(target)
    return out


def grids_finished(grids: list[tuple[str, object]], folder: Path) -> list[Path] | None:
    paths = [folder / name for name, _ in grids]
    done = all(_grid_done(g, p) for p, (_, g) in zip(paths, grids, strict=True))
    return paths if done else None


def run_claim(module: ModuleType, root: Path, scale: str, progress: bool = True) -> None:
    folder = claim_dir(root, scale, module.NUMBER)
    desc = f"claim {module.NUMBER} ({scale})"
    if hasattr(module, "grids"):
        run_grids(module.grids(scale), folder, desc, progress)
    else:
        run_specs(module.specs(scale), folder, desc, progress)


def results_of(module: ModuleType, root: Path, scale: str):
    """The claim's finished results at `scale` (run results, or grid folders), else None."""
    folder = claim_dir(root, scale, module.NUMBER)
    if hasattr(module, "grids"):
        return grids_finished(module.grids(scale), folder)
    return finished(module.specs(scale), folder)


__all__ = ["Interrupted", "claim_dir", "finished", "measured_seconds", "results_of",
           "run_claim", "run_grids", "run_one", "run_parallel", "run_specs"]
