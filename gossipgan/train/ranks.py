"""A torch.distributed run's per-rank checkpoints, joined into one simulator checkpoint.

Every rank of a torchrun run writes `checkpoints/rank{r}-{step:08d}.pt` holding its own
worker (a worker axis of size 1; gossipgan.train.store). Stacking the ranks' tensors along
that axis, in rank order, gives exactly the state the simulator holds for the same run (its
worker axis of size N), so `gossipgan eval` restores it into a simulated run and measures the
average model x_bar (and the generator's EMA) the way it does for a simulated run.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from gossipgan.errors import ConfigError
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.config import Config

RANK_FILE = re.compile(r"^rank(\d+)-(\d+)\.pt$")


def rank_files(folder: Path) -> dict[int, dict[int, Path]]:
    """{step: {rank: file}} of the per-rank checkpoints in `folder`."""
    found: dict[int, dict[int, Path]] = {}
    for f in Path(folder).glob("rank*-*.pt"):
        if m := RANK_FILE.match(f.name):
            found.setdefault(int(m.group(2)), {})[int(m.group(1))] = f
    return found


def _cat(values: list, what: str):
    """Per-worker tensors stacked on the worker axis; anything else must agree across ranks
    (Adam's step count, iteration numbers) and is kept once."""
    first = values[0]
    if isinstance(first, torch.Tensor) and first.dim() >= 1:
        if any(v.shape[0] != 1 for v in values):
            raise ConfigError(f"{what}: a rank's checkpoint holds more than its own worker")
        return torch.cat(values)
    if isinstance(first, dict):
        return {k: _cat([v[k] for v in values], what) for k in first}
    return first


def merge_rank_states(states: list[dict], what: str = "checkpoints") -> dict:
    """The simulator's checkpoint equal to these ranks' checkpoints (in rank order)."""
    steps = {s["iteration"] for s in states}
    if len(steps) != 1:
        raise ConfigError(f"{what}: the ranks' checkpoints are of different steps {sorted(steps)}")
    merged = dict(states[0])  # config, clock, traffic and evaluator: rank 0's
    workers = [s["workers"] for s in states]
    merged["workers"] = {
        "workers": [w for s in workers for w in s["workers"]],
        "params": _cat([w["params"] for w in workers], what),
        "generators": [g for s in workers for g in s["generators"]],
        "vectorize": workers[0]["vectorize"],
    }
    optim = [s["optimizer"] for s in states]
    merged["optimizer"] = {"param_groups": optim[0]["param_groups"],
                           "state": _cat([o["state"] for o in optim], what)}
    if "ema" in states[0]:
        merged["ema"] = _cat([s["ema"] for s in states], what)
    return merged


def load_rank_checkpoints(folder: Path, step: int | None = None) -> tuple[dict, str]:
    """The merged checkpoint of `step` (default: the newest step every rank holds) of the
    per-rank files in `folder`, and a name for it (the files' pattern)."""
    found = rank_files(folder)
    if not found:
        raise ConfigError(f"no per-rank checkpoints (rank*-*.pt) in {folder}")
    newest = max(found)
    first = load_checkpoint(next(iter(found[newest].values())))
    n = Config.from_dict(first["config"]).topology.build().n_workers
    complete = sorted(s for s, ranks in found.items() if set(ranks) == set(range(n)))
    if step is None:
        if not complete:
            held = {s: sorted(r) for s, r in sorted(found.items())}
            raise ConfigError(f"{folder}: no step has a checkpoint of each of the run's {n} "
                              f"ranks (ranks per step: {held})")
        step = complete[-1]
    elif step not in complete:
        raise ConfigError(f"{folder}: step {step} lacks the checkpoints of some of the run's {n} "
                          f"ranks; complete steps: {complete or 'none'}")
    name = str(Path(folder) / f"rank*-{step:08d}.pt")
    states = [load_checkpoint(found[step][r]) for r in range(n)]
    return merge_rank_states(states, name), name


__all__ = ["RANK_FILE", "load_rank_checkpoints", "merge_rank_states", "rank_files"]
