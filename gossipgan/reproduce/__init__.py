"""`gossipgan reproduce`: each claim of the seed paper tested by ordinary training runs.

    from gossipgan.reproduce import reproduce
    reproduce("runs/reproduce", scale="quick", only=[1, 3])   # runs, then REPRODUCTION.md

One module per claim (c1_optimism.py ... c8_topology_gan.py: the run specs as data and an
`analyse`), the driver (driver.py: skip finished runs, resume interrupted ones) and the report
writer (report.py). The network claims (7, 8) import gossipgan.netem only when they run.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from gossipgan.errors import ConfigError
from gossipgan.reproduce.spec import check_scale

log = logging.getLogger(__name__)

CLAIM_MODULES = ("c1_optimism", "c2_stationary", "c3_rounds", "c4_workers",
                 "c5_heterogeneity", "c6_gans", "c7_network", "c8_topology_gan")


def claims(only: list[int] | None = None) -> list[ModuleType]:
    """The claim modules, in order; `only`: their numbers (1-8)."""
    modules = [importlib.import_module(f"gossipgan.reproduce.{m}") for m in CLAIM_MODULES]
    if only is None:
        return modules
    known = {m.NUMBER for m in modules}
    bad = [n for n in only if n not in known]
    if bad:
        raise ConfigError(f"--only: no claim {bad[0]}; claims are 1..{len(modules)}")
    return [m for m in modules if m.NUMBER in set(only)]


def check_jobs(jobs: int) -> int:
    cores = os.cpu_count() or 1
    if not 1 <= jobs <= cores:
        raise ConfigError(f"--jobs {jobs}: needs 1 to {cores} (this machine's cores); each job "
                          "is one single-threaded training run")
    return jobs


SITTINGS = "sittings.json"


def record_sitting(folder: Path, sitting: dict) -> None:
    """Append one sitting (start, claims, jobs, wall-clock) to folder/sittings.json."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SITTINGS
    sittings = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([*sittings, sitting], indent=1))


def _run(chosen: list[ModuleType], out: Path, scale: str, jobs: int, progress: bool) -> None:
    from gossipgan.reproduce.driver import claim_dir, run_claim, run_parallel

    if jobs > 1:
        sims = [m for m in chosen if not hasattr(m, "grids")]
        # the GAN claim first: its runs are the longest, and long-first keeps both jobs busy
        work = [(spec, claim_dir(out, scale, m.NUMBER)) for m in reversed(sims)
                for spec in m.specs(scale)]
        start = time.perf_counter()
        run_parallel(work, jobs, f"claims {','.join(str(m.NUMBER) for m in sims)} ({scale}, "
                     f"{jobs} jobs)", progress)
        log.info("simulator claims (%s scale): %.0f s this sitting", scale,
                 time.perf_counter() - start)
        chosen = [m for m in chosen if hasattr(m, "grids")]
    for module in chosen:
        start = time.perf_counter()
        run_claim(module, out, scale, progress)
        log.info("claim %d (%s scale): %.0f s this sitting", module.NUMBER, scale,
                 time.perf_counter() - start)


def reproduce(out: str | Path, *, scale: str = "full", only: list[int] | None = None,
              report_only: bool = False, report_dir: str | Path = ".", progress: bool = True,
              jobs: int = 1) -> Path:
    """Run the claims' experiments at `scale` (unless `report_only`) into OUT/<scale>/, then
    write REPRODUCTION.md and docs/reproduction/ under `report_dir` for every claim (each at
    the largest scale whose runs are finished). Returns the report's path.

    jobs > 1: the simulator runs of every chosen claim share `jobs` processes; the network
    claims (7, 8) then run alone, as they time wall-clock and use every core."""
    from gossipgan.reproduce.report import write_report

    check_scale(scale)
    check_jobs(jobs)
    out = Path(out)
    chosen = claims(only)  # checked even with report_only: a wrong --only is an error
    if not report_only:
        started, start, done = datetime.now(timezone.utc), time.perf_counter(), False
        try:
            _run(chosen, out, scale, jobs, progress)
            done = True
        finally:  # an interrupted sitting's wall-clock counts too
            record_sitting(out / scale, {
                "started": started.isoformat(timespec="seconds"), "jobs": jobs,
                "claims": [m.NUMBER for m in chosen], "completed": done,
                "wall_s": round(time.perf_counter() - start, 1)})
    return write_report(claims(), out, Path(report_dir))


__all__ = ["CLAIM_MODULES", "SITTINGS", "check_jobs", "claims", "record_sitting", "reproduce"]
