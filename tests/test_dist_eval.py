"""`gossipgan eval` on a torch.distributed run: the per-rank checkpoints of one step are joined
into the simulator's state (gossipgan.train.ranks) and x_bar (and the generator's EMA) is
measured as for a simulated run; a 2-rank torchrun run evaluates like the simulator's."""

from __future__ import annotations

import json
from pathlib import Path

import dist_helpers as h
import pytest
import torch
from test_train import _assert_same

from gossipgan.cli import main
from gossipgan.errors import ConfigError
from gossipgan.train import apply_overrides, loop
from gossipgan.train.checkpoint import load_checkpoint, save_checkpoint
from gossipgan.train.config import Config
from gossipgan.train.ranks import load_rank_checkpoints, merge_rank_states

torch.set_num_threads(1)

CFG = ["topology.workers=2", "run.iters=6", "run.threads=1", "run.eval_batch=32",
       "run.log_every=1000", "run.eval_every=1000", "run.sample_every=1000",
       "run.checkpoint_every=3", "run.vectorize=loop", "run.quality_every=0",
       "game.model=dcgan", "game.loss=nsgan", "game.width=8", "data.dataset=digits",
       "run.batch=16", "optim.algo=dpoadam", "optim.lr=0.01", "run.ema=0.9"]


def _cut(value, r: int):
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        return value[r:r + 1].clone()
    return {k: _cut(v, r) for k, v in value.items()} if isinstance(value, dict) else value


def _rank(sim: dict, r: int) -> dict:
    """Worker r's share of a simulator state, as its torch.distributed rank saves it."""
    w = sim["workers"]
    return {**sim, "workers": {"workers": [r], "params": _cut(w["params"], r),
                               "generators": [w["generators"][r]], "vectorize": w["vectorize"]},
            "optimizer": {**sim["optimizer"], "state": _cut(sim["optimizer"]["state"], r)},
            "ema": {**sim["ema"], "shadow": _cut(sim["ema"]["shadow"], r)}}


def test_ranks_joined_are_the_simulators_state(tmp_path, monkeypatch):
    h.skip_pictures(monkeypatch.setattr)
    cfg = apply_overrides(Config(), CFG + ["run.iters=2", "run.checkpoint_every=1000"])
    loop.train(cfg, tmp_path, progress=False)
    sim = load_checkpoint(tmp_path / "checkpoint.pt")
    ranks = [_rank(sim, r) for r in range(2)]
    assert ranks[1]["workers"]["workers"] == [1]
    _assert_same(merge_rank_states(ranks), sim)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    save_checkpoint(ranks[0], folder / "rank0-00000002.pt")
    with pytest.raises(ConfigError, match="no step has a checkpoint of each"):
        load_rank_checkpoints(folder)
    save_checkpoint(ranks[1], folder / "rank1-00000002.pt")
    merged, name = load_rank_checkpoints(folder)
    _assert_same(merged, sim)
    assert name.endswith("rank*-00000002.pt")


def _eval(run: Path, *extra: str) -> dict:
    assert main(["eval", str(run), "--samples", "512", *extra]) == 0
    return json.loads((run / "eval.json").read_text())


@pytest.mark.slow
def test_eval_of_a_torchrun_run_equals_the_simulators(tmp_path, monkeypatch):
    dist_out, sim_out = tmp_path / "dist", tmp_path / "sim"
    tb = ["run.tensorboard=true"] if _has_tensorboard() else []
    proc = h.run(h.torchrun(2, "-m", "gossipgan", "train", "--backend", "dist", "--out",
                            str(dist_out), "--no-progress", *h.set_args(CFG + tb)),
                 timeout=240, env=h.child_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in (dist_out / "checkpoints").iterdir()) == [
        "rank0-00000003.pt", "rank0-00000006.pt", "rank1-00000003.pt", "rank1-00000006.pt"]
    if tb:  # rank 0 alone writes TensorBoard events
        assert len(list((dist_out / "tb").glob("events.out.tfevents.*"))) == 1
    h.skip_pictures(monkeypatch.setattr)
    loop.train(apply_overrides(Config(), CFG), sim_out, progress=False)
    got, want = _eval(dist_out), _eval(sim_out)
    assert got["iteration"] == want["iteration"] == 6
    assert got["checkpoint"].endswith("rank*-00000006.pt")
    assert got["metrics"].keys() == want["metrics"].keys() and "cls_fid_ema" in got["metrics"]
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    assert got["metrics"]["cls_fid"] != got["metrics"]["cls_fid_ema"]
    older = _eval(dist_out, "--checkpoint", str(dist_out / "checkpoints" / "rank1-00000003.pt"))
    assert older["iteration"] == 3


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
