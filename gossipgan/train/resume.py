"""What a checkpoint holds, and the checks a resumed run makes before it trusts one.

The checksum (train/checkpoint.py) catches a damaged file; a well-formed file can still hold
the wrong thing: a payload of another shape, a parameter missing (it would stay at a fresh
initialisation) or broadcastable ([1, ...] instead of [N, ...]), an iteration out of range,
another dataset. `check_state` checks the structure against the run that is resuming and
refuses with one line naming the file and the key; the dataset fingerprint (a hash of the
training data the run read) stops a resume on other data.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from gossipgan.errors import ConfigError
from gossipgan.train.build import Run
from gossipgan.train.config import Config, math_differences

# key -> the type its value must have
STATE_KEYS = {"iteration": int, "config": dict, "workers": dict, "optimizer": dict,
              "traffic": dict, "clock": dict, "evaluator": dict}


def data_fingerprint(run: Run) -> str | None:
    """SHA-256 of the training data the run's game learns from (None: the game has no data
    files; an analytic game's data follow from its config)."""
    data = run.game.dataset
    if data is None:
        return None
    h = hashlib.sha256()
    for t in (data.x, data.y):
        if t is not None:
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def training_state(run: Run, iteration: int, clock: dict, fingerprint: str | None) -> dict:
    """Everything the next step reads: the checkpoint's payload."""
    return {
        "iteration": iteration,
        "config": run.cfg.to_dict(),
        "workers": run.workers.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "traffic": run.comm.traffic.state_dict(),
        "clock": dict(clock),
        "evaluator": run.evaluator.state_dict(),
        "data_fingerprint": fingerprint,
        **({"ema": run.ema.state_dict()} if run.ema is not None else {}),
    }


def _bad(path: Path, what: str) -> ConfigError:
    return ConfigError(f"checkpoint {path} cannot be resumed: {what}")


def _tensor_like(path: Path, key: str, value, like: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise _bad(path, f"{key} is a {type(value).__name__}, not a tensor")
    if tuple(value.shape) != tuple(like.shape) or value.dtype != like.dtype:
        raise _bad(path, f"{key} has shape {tuple(value.shape)} {value.dtype}, this run's is "
                   f"{tuple(like.shape)} {like.dtype}")


def check_state(state, path: Path, run: Run, fingerprint: str | None) -> None:
    """Raise a ConfigError naming `path` and the key unless `state` is a checkpoint of this
    run's model, workers and data (see the module docstring)."""
    if not isinstance(state, dict):
        raise _bad(path, f"its payload is a {type(state).__name__}, not a training state")
    for key, typ in STATE_KEYS.items():
        if not isinstance(state.get(key), typ) or isinstance(state.get(key), bool):
            got = type(state[key]).__name__ if key in state else "missing"
            raise _bad(path, f"'{key}' must be a {typ.__name__} ({got})")
    k = state["iteration"]
    if not 0 <= k <= run.cfg.run.iters:
        raise _bad(path, f"iteration {k} is outside 0..run.iters ({run.cfg.run.iters})")
    diff = math_differences(Config.from_dict(state["config"]), run.cfg)
    if diff:
        raise ConfigError(f"cannot resume from {path}: the config differs in "
                          f"{', '.join(diff)} (these change the maths)")
    saved = state.get("data_fingerprint")
    if saved is not None and saved != fingerprint:
        raise ConfigError(f"cannot resume from {path}: its training data differ from what "
                          f"data.dataset={run.cfg.data.dataset!r} (data.root="
                          f"{run.cfg.data.root!r}) reads now (data_fingerprint)")
    params = state["workers"].get("params")
    if not isinstance(params, dict) or set(params) != set(run.workers.names):
        names = sorted(params) if isinstance(params, dict) else params
        missing = sorted(set(run.workers.names) - set(names or []))
        raise _bad(path, f"workers.params do not match the model (missing: "
                   f"{', '.join(missing[:3]) or 'none'}; found {len(names or [])} entries)")
    for name, value in params.items():
        _tensor_like(path, f"workers.params[{name!r}]", value, run.workers.params[name])
    gens = state["workers"].get("generators")
    if not isinstance(gens, list) or len(gens) != len(run.workers.generators):
        raise _bad(path, f"workers.generators must list {len(run.workers.generators)} states")
    _check_optimizer(state["optimizer"], path, run)
    if run.ema is not None:  # run.ema is a maths key: the config check saw it was on then too
        shadow = state.get("ema", {}).get("shadow") if isinstance(state.get("ema"), dict) else None
        if not isinstance(shadow, dict) or set(shadow) != set(run.ema.names):
            raise _bad(path, "ema.shadow does not hold this run's generator parameters")
        for name, like in zip(run.ema.names, run.ema.shadow, strict=True):
            _tensor_like(path, f"ema.shadow[{name!r}]", shadow[name], like)
    for key in ("train_s", "comm_s"):
        value = state["clock"].get(key)
        if not isinstance(value, float) or not math.isfinite(value) or value < 0:
            raise _bad(path, f"clock.{key} must be a finite number >= 0, got {value!r}")


def _check_optimizer(saved: dict, path: Path, run: Run) -> None:
    groups = saved.get("param_groups")
    mine = run.optimizer.param_groups
    if not isinstance(groups, list) or len(groups) != len(mine) or not all(
            isinstance(g, dict) and len(g.get("params", ())) == len(m["params"])
            for g, m in zip(groups, mine, strict=True)):
        raise _bad(path, "optimizer.param_groups do not match this run's parameter groups")
    params = [p for m in mine for p in m["params"]]
    entries = saved.get("state")
    if not isinstance(entries, dict):
        raise _bad(path, "optimizer.state must be a mapping")
    for index, entry in entries.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(
                entry, dict):
            raise _bad(path, f"optimizer.state has an entry {index!r} for no parameter")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                _tensor_like(path, f"optimizer.state[{index}][{key!r}]", value, params[index])


def restore(run: Run, state: dict, path: Path, clock: dict) -> int:
    """Load a checked state into the run; returns its iteration."""
    try:
        run.workers.load_state_dict(state["workers"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.comm.traffic.load_state_dict(state["traffic"])
        run.evaluator.load_state_dict(state["evaluator"])
        if run.ema is not None:
            run.ema.load_state_dict(state["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise _bad(path, f"{type(err).__name__}: {first}") from None
    clock.update(state["clock"])
    return state["iteration"]


__all__ = ["STATE_KEYS", "check_state", "data_fingerprint", "restore", "training_state"]
