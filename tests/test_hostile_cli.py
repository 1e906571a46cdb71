"""Hostile input through the CLI (issue 13): every case ends in exit 2 (3 for divergence) with
ONE line on stderr naming the file or option, no traceback, and the old run left intact.

The data-file cases live in tests/test_data_hostile.py; output-path and option cases also in
tests/test_architecture.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gossipgan.cli import main
from gossipgan.train.checkpoint import load_checkpoint, save_checkpoint

TINY = ["--set", "game.name=bilinear", "--set", "game.dim=3", "--batch", "4", "--iters", "4",
        "--set", "run.checkpoint_every=2", "--set", "run.eval_every=2", "--no-progress"]


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --- damaged checkpoints with a valid checksum --------------------------------------------

def _edit(state: dict, case: str):
    w = state["workers"]["params"]
    first = next(iter(w))
    if case == "payload is a list":
        return [1, 2, 3]
    if case == "no workers key":
        state.pop("workers")
    elif case == "config is a string":
        state["config"] = "game: gan"
    elif case == "iteration -5":
        state["iteration"] = -5
    elif case == "iteration past run.iters":
        state["iteration"] = 10**6
    elif case == "a parameter missing":
        w.pop(first)
    elif case == "a parameter of shape [1, ...]":
        w[first] = w[first][:1]
    elif case == "a parameter of another dtype":
        w[first] = w[first].double()
    elif case == "optimizer state of another shape":
        entry = next(iter(state["optimizer"]["state"].values()))
        entry["x"] = entry["x"][:1]
    elif case == "clock is nan":
        state["clock"]["train_s"] = float("nan")
    elif case == "a parameter is a string":
        w[first] = "weights"
    return state


CHECKPOINT_CASES = ["payload is a list", "no workers key", "config is a string", "iteration -5",
                    "iteration past run.iters", "a parameter missing",
                    "a parameter of shape [1, ...]", "a parameter of another dtype",
                    "optimizer state of another shape", "clock is nan",
                    "a parameter is a string"]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_damaged_checkpoint_is_refused_on_resume(finished, tmp_path, capsys, case):
    run = _copy(finished, tmp_path / "run")
    path = run / "checkpoint.pt"
    save_checkpoint(_edit(load_checkpoint(path), case), path)
    before = _digest(run)
    assert main(["train", "--out", str(run), *TINY, "--iters", "6", "--resume"]) == 2
    _one_line(capsys, str(path))
    assert _digest(run) == before  # nothing of the old run was touched


# --- damaged run files -----------------------------------------------------------------------

@pytest.mark.parametrize("text", ["iter,wall_s\nten,1\n", "wall_s,comm_s\n1,2\n",
                                  "iter,wall_s\n1.5,2\n"])
def test_damaged_metrics_csv_is_refused_on_resume(finished, tmp_path, capsys, text):
    run = _copy(finished, tmp_path / "run")
    (run / "metrics.csv").write_text(text)
    assert main(["train", "--out", str(run), *TINY, "--iters", "6", "--resume"]) == 2
    _one_line(capsys, "metrics.csv")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"metrics": [1]}'])
def test_damaged_eval_json_in_compare(finished, tmp_path, capsys, text):
    run = _copy(finished, tmp_path / "run")
    (run / "eval.json").write_text(text)
    assert main(["compare", str(run), str(finished), "--out", str(tmp_path / "cmp")]) == 2
    _one_line(capsys, "eval.json")


# --- config files --------------------------------------------------------------------------

CONFIG_FILES = {
    "binary": b"\x00\xff\xfe\x80" * 64,
    "nested 100k deep": b"a: " + b"[" * 100_000 + b"]" * 100_000,
    "python tag": b"run: !!python/object/apply:os.system ['echo hacked']\n",
    "duplicate key": b"optim:\n  lr: 0.1\n  lr: 0.2\n",
    "malformed": b"optim:\n  lr: [0.1\n  beta1: 0.5\n",
    "not a mapping": b"- 1\n- 2\n",
    "unknown section": b"optimizer:\n  lr: 0.1\n",
}


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_bad_config_file_is_one_line(tmp_path, capsys, case):
    path = tmp_path / "c.yaml"
    path.write_bytes(CONFIG_FILES[case])
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = _one_line(capsys)
    assert str(path) in err or "section" in err, err
    assert "hacked" not in err and not (tmp_path / "r").exists()


# --- sizes that cannot be allocated, seeds out of range, non-finite values ------------------

OPTION_CASES = [
    (["topology", "ring", "--workers", "1000000"], "topology.workers=1000000 is too large"),
    (["train", "--set", "game.width=100000000"], "game.width=100000000 is too large"),
    (["train", "--set", "game.latent_dim=100000000"], "game.latent_dim=100000000 is too large"),
    (["train", "--set", "run.eval_batch=10000000000"], "run.eval_batch=10000000000"),
    (["solve", "--dim", "100000000000"], "game.dim=100000000000 is too large"),
    (["train", "--set", "data.image_size=100000"], "data.image_size must be at most"),
    (["train", "--set", "game.width=16000", "--workers", "64", "--batch", "8"],
     "needs 1.9 TiB of memory"),
    (["topology", "erdos_renyi", "--workers", "8", "--seed", "-1"], "topology.graph_seed"),
    (["train", "--seed", str(2**70)], "run.seed must be below 2**63"),
    (["train", "--seed", "-3"], "run.seed must be >= 0"),
    (["train", "--lr", "inf"], "'optim.lr' must be a finite number"),
    (["train", "--lr", "nan"], "'optim.lr' must be a finite number"),
    (["train", "--set", "game.gp_weight=.nan"], "'game.gp_weight' must be a finite number"),
    (["train", "--set", "run.threads=100000"], "run.threads=100000"),
    (["train", "--resume", "--overwrite"], "--resume and --overwrite contradict"),
    (["train", "--edges", "g.txt"], "topology.edges does not apply to topology 'ring'"),
    (["train", "--set", "run.dist_backend=foo"], "unknown run.dist_backend 'foo'"),
    (["train", "--set", "run.comm_timeout_s=0"], "run.comm_timeout_s must be > 0"),
]


@pytest.mark.parametrize("argv,needle", OPTION_CASES, ids=[" ".join(a)[:50] for a, _ in
                                                           OPTION_CASES])
def test_bad_option_is_one_line(tmp_path, capsys, argv, needle):
    out = ["--out", str(tmp_path / "r")] if argv[0] in ("train", "solve") else []
    assert main([*argv, *out]) == 2
    _one_line(capsys, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--samples", "0"], "--samples must be in 1.."),
    (["--samples", "100000000"], "--samples must be in 1.."),
    (["--epochs", "0", "--train-classifier"], "--epochs must be in 1..1000"),
    (["--epochs", "3"], "--epochs applies only with --train-classifier"),
])
def test_bad_eval_option_is_one_line(finished, capsys, argv, needle):
    assert main(["eval", str(finished), *argv]) == 2
    _one_line(capsys, needle)


@pytest.mark.parametrize("content", [b"", b"not a torch file", np.arange(9).tobytes()])
def test_bad_classifier_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "cls.pt"
    path.write_bytes(content)
    argv = ["train", "--out", str(tmp_path / "r"), "--iters", "1", "--no-progress",
            "--set", f"run.classifier={path}"]
    assert main(argv) == 2
    _one_line(capsys, str(path), "not a usable gossipgan classifier")


# --- resuming on other data -------------------------------------------------------------------

def _npz(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8),
             y=rng.integers(0, 3, 64))
    return path


def test_resume_on_other_data_is_refused(tmp_path, capsys):
    a, b = _npz(tmp_path / "a.npz", 0), _npz(tmp_path / "b.npz", 1)
    out = tmp_path / "run"
    gan = ["--dataset", "npz", "--batch", "4", "--set", "game.width=8", "--set",
           "run.quality_every=0", "--set", "run.eval_batch=32", "--no-progress", "--out",
           str(out)]
    assert main(["train", "--data-root", str(a), "--iters", "2", *gan]) == 0
    config = (out / "config.yaml").read_bytes()
    assert main(["train", "--data-root", str(b), "--iters", "4", "--resume", *gan]) == 2
    _one_line(capsys, "training data differ", "data_fingerprint")
    assert (out / "config.yaml").read_bytes() == config  # not rewritten for the other data
    assert main(["train", "--data-root", str(a), "--iters", "4", "--resume", *gan]) == 0


def test_divergence_of_solve_is_exit_3(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", "--lr", "1e300", "--iters", "50", "--out", str(out),
                 "--no-progress"]) == 3
    _one_line(capsys, "training diverged at iteration")
    assert not (out / "summary.json").exists()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root")
@pytest.mark.parametrize("size", ["8k", "40k", "120k"])
def test_a_full_disk_is_one_line(tmp_path, capsys, size):
    """The run directory on a tiny tmpfs: some write (config, metrics, a checkpoint, a
    plot) fails with ENOSPC; the run ends with one line, exit 2, no traceback."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code = main(["solve", "--iters", "40", "--out", str(disk / "run"), "--no-progress",
                     "--set", "run.checkpoint_every=10"])
        if code == 0:
            pytest.skip(f"a {size} disk was enough for this run")
        assert code == 2
        _one_line(capsys, "No space left on device")
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
