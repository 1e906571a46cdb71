"""`gossipgan eval` and `gossipgan compare`, and the quality columns training logs.

The central check: eval on a checkpoint gives exactly the quality training logged at that
iteration (same x_bar, same sample seed, same classifier). Tiny runs: 2 workers, 4 iterations.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from gossipgan.cli import main
from gossipgan.data import load_dataset
from gossipgan.metrics import CLS_METRICS, MIXTURE_METRICS

torch.set_num_threads(1)

BASE = ["--workers", "2", "--iters", "4", "--batch", "8", "--no-progress",
        "--set", "run.eval_every=2", "--set", "run.log_every=2",
        "--set", "run.sample_every=1000", "--set", "run.eval_batch=64"]
IMAGE = ["--set", "run.quality_samples=512", "--set", "game.width=8"]
RING = ["--dataset", "ring8", "--model", "mlp", "--set", "game.width=16",
        "--set", "game.latent_dim=4"]


def _train(out, *extra: str) -> None:
    assert main(["train", "--out", str(out), *BASE, *extra]) == 0


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dpoadam"
    _train(out, *IMAGE)
    return out


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ring"
    _train(out, *RING)
    return out


def _rows(run):
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("fixture, keys, samples", [
    ("digits_run", CLS_METRICS, "512"), ("ring_run", MIXTURE_METRICS, "2500"),
])
def test_eval_equals_the_value_logged_during_training(request, capsys, fixture, keys, samples):
    run = request.getfixturevalue(fixture)
    rows = _rows(run)
    assert [r["iter"] for r in rows if r[keys[0]]] == ["0", "2", "4"]  # every eval_every
    summary = json.loads((run / "summary.json").read_text())
    assert main(["eval", str(run), "--samples", samples]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["iteration"] == 4 and result["samples"] == int(samples)
    for key in keys:
        assert result["metrics"][key] == summary[f"final_{key}"], key  # bit-identical
        assert float(rows[-1][key]) == pytest.approx(result["metrics"][key], rel=1e-5)
    printed = capsys.readouterr().out
    assert keys[0] in printed and "eval.json" in printed


def test_eval_reports_its_feature_space(digits_run, capsys):
    assert main(["eval", str(digits_run), "--samples", "600",
                 "--out", str(digits_run / "e600.json")]) == 0
    result = json.loads((digits_run / "e600.json").read_text())
    assert result["classifier_dataset"] == "digits" and result["reference_images"] == 1500
    assert "NOT Inception" in result["note"]
    assert "not comparable to Inception" in capsys.readouterr().out
    assert set(result["metrics"]) == set(CLS_METRICS)


def test_quality_off_and_every_k(tmp_path):
    _train(tmp_path / "off", *RING, "--set", "run.quality_every=0")
    assert not any(k in _rows(tmp_path / "off")[0] for k in MIXTURE_METRICS)
    _train(tmp_path / "k4", *RING, "--set", "run.quality_every=4")
    assert [r["iter"] for r in _rows(tmp_path / "k4") if r["hq_rate"]] == ["0", "4"]


def test_compare_draws_and_tabulates_several_runs(digits_run, tmp_path, capsys):
    other = tmp_path / "cpoadam"
    _train(other, *IMAGE, "--algo", "cpoadam")
    out = tmp_path / "cmp"
    assert main(["compare", str(digits_run), str(other), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dpoadam" in printed and "cpoadam" in printed and "cls_fid" in printed
    for name in ("compare_iter.png", "compare_wall.png", "compare.json"):
        assert (out / name).stat().st_size > 0
    table = json.loads((out / "compare.json").read_text())["final"]
    assert table["cpoadam"]["algo"] == "cpoadam" and table["dpoadam"]["cls_fid"] > 0


def test_train_classifier_for_a_users_dataset(tmp_path, capsys):
    digits = load_dataset("digits", split="all")
    images = ((digits.x[:, 0] + 1) * 127.5).round().numpy().astype(np.uint8)
    np.savez(tmp_path / "mine.npz", x=images, y=digits.y.numpy())
    run = tmp_path / "run"
    _train(run, *IMAGE, "--dataset", "npz", "--data-root", str(tmp_path / "mine.npz"))
    assert not any(k in _rows(run)[0] for k in CLS_METRICS)  # none shipped: off, with a warning
    capsys.readouterr()
    assert main(["eval", str(run), "--samples", "512"]) == 2
    err = capsys.readouterr().err
    assert "no shipped classifier for dataset 'npz'" in err and "--train-classifier" in err
    assert main(["eval", str(run), "--samples", "512", "--train-classifier",
                 "--epochs", "3"]) == 0
    assert "10% hold-out" in capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    assert result["classifier"] == str(run / "classifier.pt") and result["metrics"]["cls_fid"] > 0
    # later evals find RUN_DIR/classifier.pt by themselves
    assert main(["eval", str(run), "--samples", "512"]) == 0


@pytest.mark.parametrize("setup, args, needle", [
    ("empty", [], "no run in"),
    ("missing", [], "is not a directory"),
    ("corrupt", [], "corrupted or truncated"),
    ("copy", ["--samples", "100"], "too few for a stable cls_fid: use at least 512"),
    ("copy", ["--checkpoint", "nowhere.pt"], "no checkpoint at nowhere.pt"),
    ("copy", ["--samples", "512", "--inception-weights", "/no/w.pth"], "Inception"),
])
def test_eval_bad_input_exit_2(digits_run, tmp_path, capsys, setup, args, needle):
    target = tmp_path / "r"
    if setup == "empty":
        target.mkdir()
    elif setup in ("corrupt", "copy"):
        shutil.copytree(digits_run, target)
    if setup == "corrupt":
        data = bytearray((target / "checkpoint.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (target / "checkpoint.pt").write_bytes(bytes(data))
    assert main(["eval", str(target), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_compare_bad_input_exit_2(digits_run, tmp_path, capsys):
    assert main(["compare", str(digits_run), str(tmp_path)]) == 2
    assert "no run in" in capsys.readouterr().err
    assert main(["compare", str(digits_run), "--keys", "hq_rate"]) == 2
    assert "no run logged hq_rate" in capsys.readouterr().err
