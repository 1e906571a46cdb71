"""`gossipgan train` through `gossipgan.cli.main`: outputs, bad inputs, config precedence,
sharding, Ctrl-C (in process and a real SIGINT to a subprocess)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gossipgan.cli import build_parser, main
from gossipgan.cli.common import config_from_args
from gossipgan.errors import ConfigError
from gossipgan.sim import Workers
from gossipgan.train import loop
from gossipgan.train.build import build_run
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.config import Config
from gossipgan.train.config_io import apply_overrides, load_config
from gossipgan.train.evaluate import Evaluator

torch.set_num_threads(1)

TINY = ["--dataset", "ring8", "--model", "mlp", "--set", "game.width=16", "--set",
        "game.latent_dim=4", "--workers", "4", "--batch", "16", "--set", "run.eval_batch=64",
        "--set", "run.log_every=1", "--no-progress"]


def train_argv(out: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--out", str(out), *extra]


def parse_config(argv: list[str]) -> Config:
    return config_from_args(build_parser().parse_args(argv))


@pytest.fixture
def no_pictures(monkeypatch):
    monkeypatch.setattr(loop, "plot_run", lambda out: [])
    monkeypatch.setattr(Evaluator, "samples", lambda self, k: None)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(train_argv(out, "--iters", "2")) == 0
    return out


# --- end to end ---------------------------------------------------------------------------

def test_digits_end_to_end(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = ["train", "--dataset", "digits", "--iters", "40", "--workers", "4", "--batch", "16",
            "--set", "game.width=16", "--set", "run.eval_every=20", "--set", "run.log_every=10",
            "--set", "run.eval_batch=256", "--set", "run.quality_every=0", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed

    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"config.yaml", "metrics.csv", "checkpoint.pt", "summary.json",
            "samples/xbar_000040.png", "samples/worker0_000040.png",
            "plots/grad_op_norm_sq.png", "plots/consensus.png", "plots/losses.png"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    for png in (out / "samples").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    for col in ("iter", "epoch", "wall_s", "comm_s", "loss_g", "loss_d", "grad_op_norm_sq",
                "consensus"):
        assert col in rows[0], col
    assert [int(r["iter"]) for r in rows] == [0, 10, 20, 30, 40]
    assert all(r["grad_op_norm_sq"] for r in rows if int(r["iter"]) % 20 == 0)
    assert float(rows[-1]["consensus"]) > 0 and float(rows[-1]["wall_s"]) > 0
    assert float(rows[-1]["epoch"]) == pytest.approx(40 * 16 / (1500 // 4), abs=1e-3)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["iters"] == 40 and summary["workers"] == 4
    assert summary["final_grad_op_norm_sq"] == pytest.approx(float(rows[-1]["grad_op_norm_sq"]),
                                                             rel=1e-4)
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 40

    # config.yaml holds everything: reloading it with --config gives the same Config.
    expected = parse_config(argv)
    assert load_config(out / "config.yaml") == expected
    assert parse_config(["train", "--config", str(out / "config.yaml")]) == expected


# --- bad inputs ---------------------------------------------------------------------------

BAD = [  # (extra argv, text the one-line message must contain)
    (["--dataset", "mnist-idx", "--data-root", "/nonexistent"], "/nonexistent"),
    (["--dataset", "cifar10", "--data-root", "{empty}"], "{empty}"),
    (["--dataset", "mnist-idx", "--data-root", "{empty}"], "{empty}"),
    (["--dataset", "imagefolder", "--data-root", "{empty}"], "{empty}"),
    (["--dataset", "mnist-idx"], "'mnist-idx'"),
    (["--dataset", "digits", "--data-root", "{empty}"], "{empty}"),
    (["--dataset", "imagenet"], "'imagenet'"),
    (["--model", "vgg"], "'vgg'"),
    (["--loss", "lsgan"], "'lsgan'"),
    (["--dataset", "digits", "--model", "resnet"], "(1, 8, 8)"),
    (["--batch", "100000"], "100000"),
    (["--shard", "dirichlet", "--alpha", "0"], "alpha"),
    (["--shard", "dirichlet", "--alpha", "-0.5"], "-0.5"),
    (["--shard", "stratified"], "'stratified'"),
    (["--set", "run.nope=1"], "run.nope"),
    (["--set", "nope.iters=1"], "nope.iters"),
    (["--set", "run.iters=1.5"], "1.5"),
    (["--set", "optim.lr=fast"], "fast"),
    (["--set", "run.iters"], "run.iters"),
    (["--set", "run.device=tpu9"], "tpu9"),
    (["--loss", "wgan-gp", "--set", "game.gp_weight=-1"], "game.gp_weight"),
    (["--workers", "0"], "topology.workers"),
    (["--algo", "sgd"], "'sgd'"),
    (["--config", "/nonexistent/cfg.yaml"], "/nonexistent/cfg.yaml"),
    (["--resume"], "{fresh}"),
]


@pytest.mark.parametrize("extra,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, needle):
    subs = {"{empty}": str(tmp_path / "empty"), "{fresh}": str(tmp_path / "fresh")}
    (tmp_path / "empty").mkdir()
    extra = [subs.get(a, a) for a in extra]
    out = tmp_path / "fresh"
    assert main(train_argv(out, "--iters", "2", *extra)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossipgan: error: "), captured.err
    assert subs.get(needle, needle) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize("extra,needle", [
    (["--lr", "0.5"], "optim.lr"),
    (["--seed", "3"], "run.seed"),
    (["--set", "game.width=8"], "game.width"),
    ([], "--overwrite"),
])
def test_bad_input_against_an_existing_run(finished_run, capsys, extra, needle):
    resume = ["--resume"] if extra else []
    before = (finished_run / "checkpoint.pt").read_bytes()
    assert main(train_argv(finished_run, "--iters", "4", *resume, *extra)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(finished_run) in lines[0]
    assert (finished_run / "checkpoint.pt").read_bytes() == before  # nothing was touched


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_checkpoint_on_resume(tmp_path, capsys, no_pictures, damage):
    out = tmp_path / "run"
    assert main(train_argv(out, "--iters", "2")) == 0
    ckpt = out / "checkpoint.pt"
    data = bytearray(ckpt.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) * 2 // 3:]
    ckpt.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(train_argv(out, "--iters", "4", "--resume")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(ckpt) in err and "Traceback" not in err


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["train", "--iters", "many"])
    assert e.value.code == 2


# --- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize("item,path,value", [
    ("optim.lr=1e-3", "optim.lr", 0.001),          # YAML 1.1 reads 1e-3 as a string
    ("optim.lr=3", "optim.lr", 3.0),
    ("run.iters=12", "run.iters", 12),
    ("game.width=null", "game.width", None),
    ("game.width=8", "game.width", 8),
    ("optim.lr_g=0.5", "optim.lr_g", 0.5),
    ("data.root=/some/dir", "data.root", "/some/dir"),
    ("data.root=123", "data.root", "123"),
])
def test_set_coerces_to_the_field_type(item, path, value):
    cfg = apply_overrides(Config(), [item])
    section, key = path.split(".")
    got = getattr(getattr(cfg, section), key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("item", [
    "run.iters=1.5", "run.iters=true", "run.iters=ten", "optim.lr=true", "optim.lr=fast",
    "run.batch=", "game.width=[1, 2]", "run.seed=0x", "run.nope=1", "nope.x=1", "runiters=3",
    "run.iters"])
def test_set_rejects_bad_keys_and_types(item):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), [item])
    assert "\n" not in str(e.value)


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(Config(), ["optim.lr=3e-4", "game.width=24", "data.root=/x/y",
                                     "optim.lr_d=0.001", "run.iters=7",
                                     "topology.self_weight=0.25"])
    cfg.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    Config().save(tmp_path / "d.yaml")
    assert load_config(tmp_path / "d.yaml") == Config()


def test_precedence_defaults_file_flags_set(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"optim": {"lr": "1e-3", "beta1": 0.7},
                                    "run": {"iters": 7, "batch": 5, "seed": 3}}))
    cfg = parse_config(["train", "--config", str(path), "--iters", "9", "--lr", "0.2",
                        "--set", "optim.lr=0.3", "--set", "run.seed=4"])
    assert cfg.optim.beta2 == Config().optim.beta2     # default
    assert (cfg.optim.beta1, cfg.run.batch) == (0.7, 5)  # file over default
    assert cfg.run.iters == 9                          # flag over file
    assert (cfg.optim.lr, cfg.run.seed) == (0.3, 4)    # --set over flag and file


def test_bad_config_file(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  lr: [1, 2]\n")
    assert main(train_argv(tmp_path / "run", "--config", str(path))) == 2
    assert "optim.lr" in capsys.readouterr().err


# --- sharding -----------------------------------------------------------------------------

def _dominant_share(run) -> float:
    """Mean over workers of the share of a worker's most frequent class."""
    y = run.game.dataset.y
    shares = [torch.bincount(y[s], minlength=8).max().item() / len(s) for s in run.game.shards]
    return sum(shares) / len(shares)


def test_iid_and_dirichlet_sharding_through_the_config(tmp_path, capsys, no_pictures):
    iid = build_run(parse_config(["train", *TINY]))
    skewed_argv = train_argv(tmp_path / "dir", "--shard", "dirichlet", "--alpha", "0.1",
                             "--batch", "4", "--iters", "3")
    skewed = build_run(parse_config(skewed_argv))
    assert len({len(s) for s in iid.game.shards}) == 1
    assert len({len(s) for s in skewed.game.shards}) > 1
    assert _dominant_share(iid) < 0.2 < 0.5 < _dominant_share(skewed)
    assert main(skewed_argv) == 0
    saved = load_config(tmp_path / "dir" / "config.yaml")
    assert (saved.data.shard, saved.data.alpha) == ("dirichlet", 0.1)
    assert load_checkpoint(tmp_path / "dir" / "checkpoint.pt")["iteration"] == 3


# --- Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_in_process_then_resume(tmp_path, monkeypatch, capsys, no_pictures):
    full, run = tmp_path / "full", tmp_path / "run"
    argv = ["--iters", "6", "--algo", "dposg", "--lr", "0.01"]
    assert main(train_argv(full, *argv)) == 0
    original, calls = Workers.compute_grads, []

    def compute_grads(self):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    with monkeypatch.context() as m:
        m.setattr(Workers, "compute_grads", compute_grads)
        capsys.readouterr()
        assert main(train_argv(run, *argv)) == 0
    printed = capsys.readouterr().out
    assert "interrupted at iteration 2/6" in printed and "--resume" in printed
    assert not (run / "summary.json").exists()
    assert main(train_argv(run, *argv, "--resume")) == 0
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(run / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 6
    for name, value in a["workers"]["params"].items():
        assert torch.equal(value, b["workers"]["params"][name]), name


@pytest.mark.slow
def test_sigint_to_a_real_process(tmp_path):
    """`python -m gossipgan train`, SIGINT once it is training: exit 0, checkpoint, resumable."""
    out = tmp_path / "run"
    argv = train_argv(out, "--iters", "100000", "--algo", "dposg", "--lr", "0.01")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gossipgan", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 150  # generous: a loaded 2-core machine starts slowly
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.csv"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:  # iteration >= 2
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "interrupted at iteration" in stdout and "--resume" in stdout
    k = load_checkpoint(out / "checkpoint.pt")["iteration"]
    assert 2 <= k < 100000
    # Resume for two more iterations (run.iters does not change the maths) and compare with
    # an uninterrupted run of the same length in this process.
    assert main(train_argv(out, "--iters", str(k + 2), "--algo", "dposg", "--lr", "0.01",
                           "--resume")) == 0
    ref = tmp_path / "ref"
    assert main(train_argv(ref, "--iters", str(k + 2), "--algo", "dposg", "--lr", "0.01")) == 0
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == k + 2
    for name, value in a["workers"]["params"].items():
        assert torch.equal(value, b["workers"]["params"][name]), name
