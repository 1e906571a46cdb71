"""One emulated worker of the network benchmark, launched by torchrun in its namespace.

    python -m gossipgan.netem.worker SPEC.json CONDITION_INDEX

For one network condition, every worker: (1) optionally times decent-dp's neighbour exchange
against DistComm on the same schedule (peer.py); (2) trains each cell of the grid with the
training loop itself (`gossipgan.train.train` over DistComm, artifacts off), which logs wall,
communication and bytes per iteration and cls_fid; (3) times the cell's communication alone,
back to back with no compute, through the cell optimizer's `communicate`; (4) measures α and
β on the link (calibration.py: a tiny ping-pong between ranks 0 and 1; every pair exchanging
the model's message).
Rank 0 writes `result.json` beside the spec.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from gossipgan.comm.dist import DistComm, init_process_group, leave
from gossipgan.netem import alphabeta, ddp
from gossipgan.netem.calibration import calibrate
from gossipgan.optim import GossipOptimizer, optimizer_class
from gossipgan.train.config import Config
from gossipgan.train.loop import train
from gossipgan.train.outputs import read_metrics

log = logging.getLogger(__name__)

WARM_SECONDS = 3.0  # of traffic on every cell's connections before the condition is timed
ISO_SECONDS = 1.0  # aim of the back-to-back communication timing per cell
GO_TIMEOUT_S = 600  # how long a worker waits for the driver's go file of the next cell


def cell_config(spec: dict, cell: dict) -> Config:
    """The run config of one cell: the grid's shared config with the cell's algorithm,
    topology and rounds, on torch.distributed over this condition's workers."""
    base = Config.from_dict(spec["config"])
    return base.with_values({
        "optim.compression": cell.get("compression", "none"),
        "optim.consensus_step": cell.get("consensus_step"),  # compressed cells only
        "optim.algo": cell["algo"],
        "topology.name": cell["topology"] if cell["topology"] != "all_reduce" else "ring",
        "optim.rounds": cell["rounds"],
        "topology.workers": dist.get_world_size(),
        "run.backend": "dist", "run.dist_backend": "gloo",
        "run.delay_ms": spec["delay_s"] * 1e3 if spec["emulation"] == "app-delay" else 0.0,
    })


def cell_optimizer(cfg: Config, sizes: list[int]) -> GossipOptimizer:
    """The cell's optimizer over tensors of the model's parameters' sizes (what it
    communicates is what the training run's optimizer communicates, compressed per tensor)."""
    comm = DistComm(cfg.topology.build(), delay_s=cfg.run.delay_ms / 1000)
    # random values: what top-k and quantization see in a run is not all zeros
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, n, generator=gen) for n in sizes]
    o = cfg.optim
    cls = optimizer_class(o.algo)
    kwargs = {"moments": o.moments} if cls.direction == "adam" else {}
    return cls(xs, comm=comm, lr=o.lr, rounds=o.rounds, compression=o.compression,
               consensus_step=o.consensus_step, compression_seed=cfg.run.seed,
               **kwargs)


def cell_comm(cfg: Config, sizes: list[int]) -> Callable[[int], None]:
    """One iteration's communication of the cell alone: the cell's optimizer's own
    `communicate(step)` (the schedule lives there, not here)."""
    return cell_optimizer(cfg, sizes).communicate


def time_comm(cfg: Config, sizes: list[int]) -> dict:
    """The cell's per-iteration communication alone: back to back, no compute, same bytes.

    The count comes from rank 0's first (untimed) call, so every rank runs the same
    collectives; the result is the slowest rank's mean (an iteration waits for its slowest
    neighbour)."""
    one = cell_comm(cfg, sizes)
    t0 = time.perf_counter()
    one(0)
    first = [time.perf_counter() - t0]
    dist.broadcast_object_list(first, src=0)
    reps = int(min(30, max(3, ISO_SECONDS / max(first[0], 1e-4))))
    dist.barrier()
    t0 = time.perf_counter()
    for step in range(1, reps + 1):
        one(step)
    mine = (time.perf_counter() - t0) / reps
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return {"iso_comm_s": max(everyone), "iso_comm_mean_s": statistics.mean(everyone),
            "iso_reps": reps}


def train_cell(cfg: Config, run_dir: Path) -> tuple[list[dict], float | None]:
    """The cell's training: the training loop itself (`train`) without checkpoints, sample
    grids or plots, so its wall_s and comm_s are what a training run's are. Returns rank 0's
    metrics.csv rows (empty elsewhere) and the topology's rho."""
    result = train(cfg, run_dir, overwrite=True, progress=False, artifacts=False)
    rows = read_metrics(run_dir / "metrics.csv") if dist.get_rank() == 0 else []
    return rows, result["rho"]


def run_cell(spec: dict, cell: dict, out: Path) -> dict:
    cfg = cell_config(spec, cell)
    start = time.perf_counter()
    rows, rho = train_cell(cfg, out / cell["name"])
    elapsed = time.perf_counter() - start
    iso = time_comm(cfg, _sizes(spec))
    row = {**cell, **iso, "cell_seconds": elapsed, "rho": rho,
           "run_dir": str(out / cell["name"])}
    if dist.get_rank() == 0:
        row["metrics"] = rows
    return row


def _sizes(spec: dict) -> list[int]:
    return spec.get("param_sizes") or [spec["n_floats"]]


def add_predictions(spec: dict, row: dict, cal: dict) -> None:
    """The α–β model's communication time per iteration for the row's cell, with the bytes
    its messages really carry (compressed cells: the compressed payload)."""
    cfg = cell_config(spec, row)
    optimizer = cell_optimizer(cfg, _sizes(spec))
    model = alphabeta.AlphaBeta(cal["alpha_s"], cal["beta_Bps"], cal["app_delay_s"])
    nbytes = 4 * spec["n_floats"] if optimizer.centralized else optimizer.message_bytes()
    row["message_bytes"] = nbytes
    kwargs = dict(centralized=optimizer.centralized, rounds=cfg.optim.rounds,
                  nbytes=nbytes, phases=optimizer.comm_phases)
    topology = cfg.topology.build()
    for p in alphabeta.PROTOCOLS:
        row[f"pred_{p}_s"] = alphabeta.predict(model, topology, protocol=p, **kwargs)


def _wait_go(out: Path, index: int) -> dict:
    """Worker 0 waits for the driver's go-<index> (the network is shaped), then everyone."""
    found = [None]
    if dist.get_rank() == 0:
        path = out / f"go-{index}"
        deadline = time.monotonic() + GO_TIMEOUT_S
        while not path.exists():
            if time.monotonic() > deadline:  # the driver is gone: do not wait forever
                raise RuntimeError(f"no {path} after {GO_TIMEOUT_S} s: the benchmark driver "
                                   "stopped")
            time.sleep(0.05)
        found[0] = json.loads(path.read_text())
    dist.broadcast_object_list(found, src=0)
    return found[0]


def warm_up(spec: dict, seconds: float = WARM_SECONDS) -> None:
    """Traffic on every connection the cells will use, before anything is timed.

    Each condition starts fresh workers (grid.run_grid), and a fresh TCP connection's windows
    grow only with traffic: over tens of ms of round trip a cold one is markedly slower per
    model-sized exchange than a warm one (BENCHMARKS.md, "Network conditions"). A long
    training run's connections are warm."""
    cells = [cell_comm(cell_config(spec, cell), _sizes(spec)) for cell in spec["cells"]]
    deadline = [time.perf_counter() + seconds]
    dist.broadcast_object_list(deadline, src=0)  # rank 0's clock decides for everyone
    done, step = [False], 0
    while not done[0]:
        for one in cells:
            one(step)
        step += 1
        done = [time.perf_counter() > deadline[0]]
        dist.broadcast_object_list(done, src=0)


def run_condition(spec: dict, out: Path) -> dict:
    """The peer comparison, every cell, then α and β, for the condition in `spec`.

    α and β come last, on the connections the cells have warmed: a fresh TCP connection's
    windows grow only with traffic, so a cold one would measure a slower link than the one the
    cells saw (BENCHMARKS.md, "Network conditions")."""
    rank = dist.get_rank()
    n_floats = spec["n_floats"]
    warm_up(spec)
    peer_rows = []
    if spec.get("peer"):  # first: the training cells' traffic would age only our connections
        from gossipgan.netem.peer import compare

        peer_rows = compare(n_floats, spec)
    rows = []
    for cell in spec["cells"]:
        rows.append(run_cell(spec, cell, out))
        if rank == 0:
            log.info("%s: cell %s done in %.1f s", spec["label"], cell["name"],
                     rows[-1]["cell_seconds"])
    for name in spec.get("ddp", []):  # what users run today, on the same links
        rows.append(ddp.run_ddp(spec, name, out))
    cal = calibrate(spec, 4 * n_floats)
    cal["n_floats"] = n_floats
    for row in rows:
        if row.get("baseline") == "ddp":
            ddp.add_predictions(row, cal, dist.get_world_size())
        else:
            add_predictions(spec, row, cal)
    return {"calibration": cal, "cells": rows, "peer": peer_rows}


def main(spec_path: str, index: int) -> int:
    """Run condition `index` of the spec (fresh workers per condition, see grid.run_grid)."""
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    torch.set_num_threads(1)
    init_process_group("gloo")
    condition = {**spec, **_wait_go(out, index)}
    folder = out / "conditions" / condition["label"]
    if dist.get_rank() == 0:
        folder.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    result = run_condition(condition, folder)
    if dist.get_rank() == 0:
        tmp = folder / "result.json.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.rename(folder / "result.json")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # DDP's note on a [1, d] parameter's gradient layout (size-1 dimensions: the same memory
    # order) fills workers.log once per model and condition; it changes nothing measured here
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # the driver waits for exit status 0 of every worker: no teardown abort after result.json
    leave(main(sys.argv[1], int(sys.argv[2])))
