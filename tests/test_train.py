"""The training loop: exact resume, Ctrl-C, damaged checkpoints, atomic writes.

Tiny runs: an MLP GAN (width 16) on ring8 over 4 workers. Plots and sample pictures do not
touch the iterates, so the resume tests switch them off to stay fast.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from gossipgan.errors import ConfigError
from gossipgan.sim import Workers
from gossipgan.train import loop
from gossipgan.train.build import build_run
from gossipgan.train.checkpoint import MAGIC, load_checkpoint, save_checkpoint
from gossipgan.train.config import Config
from gossipgan.train.config_io import apply_overrides
from gossipgan.train.evaluate import Evaluator
from gossipgan.train.outputs import prepare_run_dir, settle_run_dir

torch.set_num_threads(1)

TINY = ["game.model=mlp", "game.loss=nsgan",
        "data.dataset=ring8", "game.width=16", "game.latent_dim=4",
        "topology.workers=4", "run.batch=16", "run.eval_batch=64", "run.log_every=1",
        "run.eval_every=3", "run.sample_every=1000", "run.checkpoint_every=1000"]


def tiny(*extra: str) -> Config:
    return apply_overrides(Config(), TINY + list(extra))


@pytest.fixture
def no_pictures(monkeypatch):
    monkeypatch.setattr(loop, "plot_run", lambda out: [])
    monkeypatch.setattr(Evaluator, "samples", lambda self, k: None)


def _assert_same(a, b, where: str = "") -> None:
    """Bit-identical nested state: same keys, same types, torch.equal tensors."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def _assert_same_run(dir_a: Path, dir_b: Path) -> None:
    a, b = load_checkpoint(dir_a / "checkpoint.pt"), load_checkpoint(dir_b / "checkpoint.pt")
    assert a["iteration"] == b["iteration"]
    _assert_same(a["workers"], b["workers"], "workers")
    _assert_same(a["optimizer"], b["optimizer"], "optimizer")
    assert a["optimizer"]["state"], "the optimizer state is empty: nothing was compared"
    for key in ("messages", "bytes", "gossip_rounds"):
        assert a["traffic"][key] == b["traffic"][key], key


def _iters(run_dir: Path) -> list[int]:
    return [int(r["iter"]) for r in _rows(run_dir)]


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _same_summary(a: dict, b: dict) -> None:
    timing = ("wall_s", "comm_s")
    assert {k: v for k, v in a.items() if k not in timing} == {
        k: v for k, v in b.items() if k not in timing}


@pytest.mark.parametrize("algo,k,every", [("dpoadam", 3, 1000), ("dposg", 3, 1000),
                                          ("cpoadam", 3, 1000), ("dpoadam", 5, 3)])
def test_resume_is_bit_identical(tmp_path, no_pictures, algo, k, every):
    full, half = tmp_path / "full", tmp_path / "half"
    opts = (f"optim.algo={algo}", f"run.checkpoint_every={every}", "optim.lr=0.01")
    summary = loop.train(tiny(*opts, f"run.iters={2 * k}"), full, progress=False)
    first = loop.train(tiny(*opts, f"run.iters={k}"), half, progress=False)
    assert first["iters"] == k and load_checkpoint(half / "checkpoint.pt")["iteration"] == k
    resumed = loop.train(tiny(*opts, f"run.iters={2 * k}"), half, resume=True, progress=False)
    _assert_same_run(full, half)
    _same_summary(summary, resumed)
    assert _iters(half) == _iters(full) == list(range(2 * k + 1))
    # Row k of the short run was a final (full) evaluation; what every row logs is the same.
    keep = ("iter", "epoch", "bytes_sent", "messages", "consensus", "loss_g", "loss_d")
    assert [{c: r[c] for c in keep} for r in _rows(half)] == [
        {c: r[c] for c in keep} for r in _rows(full)]
    # The run really moved (a no-op resume would compare equal too).
    x0 = build_run(tiny(*opts)).workers.params
    params = load_checkpoint(half / "checkpoint.pt")["workers"]["params"]
    assert all(not torch.equal(params[n], x0[n]) for n in x0)


def test_resume_from_an_older_checkpoint_drops_later_metrics(tmp_path, no_pictures):
    """A crash after metrics were logged past the last checkpoint: no duplicated rows."""
    full, run = tmp_path / "full", tmp_path / "run"
    loop.train(tiny("run.iters=8"), full, progress=False)
    loop.train(tiny("run.iters=4"), run, progress=False)
    saved = (run / "checkpoint.pt").read_bytes()
    loop.train(tiny("run.iters=6"), run, resume=True, progress=False)
    assert _iters(run) == list(range(7))
    (run / "checkpoint.pt").write_bytes(saved)  # back to iteration 4, rows 5..6 are stale
    loop.train(tiny("run.iters=8"), run, resume=True, progress=False)
    assert _iters(run) == list(range(9))
    _assert_same_run(full, run)


def _interrupt_at(monkeypatch, call: int) -> None:
    """Send a real SIGINT to this process during the `call`-th operator evaluation."""
    original = Workers.compute_grads
    count = {"n": 0}

    def compute_grads(self):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Workers, "compute_grads", compute_grads)


def test_sigint_saves_a_checkpoint_and_resume_matches(tmp_path, monkeypatch, no_pictures, capsys):
    full, run = tmp_path / "full", tmp_path / "run"
    cfg = ("run.iters=8", "optim.algo=dposg", "optim.lr=0.01")
    loop.train(tiny(*cfg), full, progress=False)
    handler = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        result = loop.train(tiny(*cfg), run, progress=False)
    assert result == {"interrupted": True, "iteration": 3, "iters": 8,
                      "checkpoint": str(run / "checkpoint.pt")}
    assert signal.getsignal(signal.SIGINT) is handler  # the loop put the old handler back
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 3
    assert not (run / "summary.json").exists()
    assert capsys.readouterr().out == ""  # the library prints nothing: telling is the CLI's job
    summary = loop.train(tiny(*cfg), run, resume=True, progress=False)
    assert summary["iters"] == 8
    _assert_same_run(full, run)
    assert _iters(run) == list(range(9))


def test_sigint_at_the_last_step_finishes_the_run(tmp_path, monkeypatch, no_pictures):
    _interrupt_at(monkeypatch, 4)
    summary = loop.train(tiny("run.iters=4"), tmp_path, progress=False)
    assert not summary.get("interrupted") and summary["iters"] == 4
    assert (tmp_path / "summary.json").is_file()


def test_second_sigint_quits_at_once(tmp_path, monkeypatch, no_pictures):
    loop.train(tiny("run.iters=2"), tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    original = Workers.compute_grads

    def compute_grads(self):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    handler = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(Workers, "compute_grads", compute_grads)
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny("run.iters=6"), tmp_path, resume=True, progress=False)
    assert signal.getsignal(signal.SIGINT) is handler
    assert (tmp_path / "checkpoint.pt").read_bytes() == before  # the last good one is kept


# --- checkpoint files -------------------------------------------------------------------------

def _corrupt(kind: str, data: bytes) -> bytes:
    head = len(MAGIC) + 65
    if kind == "empty":
        return b""
    if kind == "truncated-header":
        return data[:10]
    if kind == "truncated-payload":
        return data[: head + (len(data) - head) // 2]
    flip = {"flip-magic": 0, "flip-digest": len(MAGIC) + 3, "flip-payload": len(data) - 7,
            "flip-middle": head + (len(data) - head) // 2}[kind]
    return data[:flip] + bytes([data[flip] ^ 0x40]) + data[flip + 1:]


@pytest.mark.parametrize("kind", ["empty", "truncated-header", "truncated-payload", "flip-magic",
                                  "flip-digest", "flip-payload", "flip-middle"])
def test_damaged_checkpoint_is_a_config_error_naming_the_file(tmp_path, kind):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"x": torch.arange(1000.0), "step": 7}, path)
    assert load_checkpoint(path)["step"] == 7
    path.write_bytes(_corrupt(kind, path.read_bytes()))
    with pytest.raises(ConfigError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_missing_checkpoint_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    for step in range(3):
        save_checkpoint({"step": step, "x": torch.full((10,), float(step))}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 99, "x": torch.zeros(10)}, path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["step"] == 2  # the old checkpoint is intact


def test_training_leaves_no_temporary_files(tmp_path, no_pictures):
    loop.train(tiny("run.iters=4", "run.checkpoint_every=1"), tmp_path, progress=False)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 4


# --- run directories --------------------------------------------------------------------------

def test_overwrite_clears_the_previous_run(tmp_path):
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "summary.json"):
        (tmp_path / name).write_text("old")
    old = (("plots", "x.png"), ("samples", "y.png"), ("checkpoints", "rank0-00001000.pt"))
    for sub, name in old:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / name).write_text("old")
    with pytest.raises(ConfigError, match="--overwrite"):
        prepare_run_dir(tmp_path, resume=False, overwrite=False)
    prepare_run_dir(tmp_path, resume=False, overwrite=True)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    # The old run waits in .replaced/ until the new one has started; nothing of it stays in
    # the run directory (an old per-rank checkpoint with a higher step would be picked up by a
    # later --resume).
    assert all(name.startswith(".replaced/") for name in left) and len(left) == 7, left
    settle_run_dir(tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_overwrite_that_fails_to_start_keeps_the_old_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    loop.train(tiny("run.iters=2"), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the new run's start-up

    monkeypatch.setattr(Evaluator, "log", broken)
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny("run.iters=3"), out, overwrite=True, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and not (out / ".replaced").exists()


def test_a_replacement_killed_before_it_started_is_undone_on_the_next_start(tmp_path):
    (tmp_path / ".replaced").mkdir()
    (tmp_path / ".replaced" / "checkpoint.pt").write_text("old run")
    (tmp_path / "config.yaml").write_text("half-started new run")
    prepare_run_dir(tmp_path, resume=True, overwrite=False)  # the old run is there to resume
    assert (tmp_path / "checkpoint.pt").read_text() == "old run"
    assert not (tmp_path / ".replaced").exists()


def test_stale_temporaries_of_killed_saves_are_removed_on_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    junk = [out / "checkpoint.pt.abc123.tmp", out / "checkpoint.pt.zz.tmp"]
    for f in junk:
        f.write_bytes(b"\0" * 100)
    (out / "notes.tmp").write_text("not ours")
    loop.train(tiny("run.iters=2"), out, progress=False)
    assert not any(f.exists() for f in junk) and (out / "notes.tmp").exists()


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(ConfigError, match="no run to resume"):
        prepare_run_dir(tmp_path / "nothing", resume=True, overwrite=False)

