"""The generator's EMA (run.ema, gossipgan.train.ema): its arithmetic, that the average of the
workers' EMAs is the EMA of x_bar, exact resume, and the *_ema quality columns.

Tiny runs as in test_train.py: an MLP GAN (width 16) on ring8 over 4 workers.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from test_train import _assert_same, _assert_same_run, no_pictures, tiny  # noqa: F401

from gossipgan.cli import main
from gossipgan.errors import ConfigError
from gossipgan.train import loop
from gossipgan.train.build import build_run
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.ema import EMA, decay_at
from gossipgan.train.loop import steps

torch.set_num_threads(1)


def test_ema_of_a_constant_is_the_constant():
    c = [torch.randn(3, 5), torch.randn(3, 2, 2)]
    ema = EMA(["a", "b"], c, 0.999)
    for _ in range(50):
        ema.update([t.clone() for t in c])
    assert all(torch.equal(e, t) for e, t in zip(ema.shadow, c, strict=True))


def test_decay_zero_is_the_iterate_and_the_warm_up_caps_the_decay():
    ema = EMA(["a"], [torch.zeros(2, 3)], 0.0)
    for _ in range(3):
        x = torch.randn(2, 3)
        ema.update([x])
        assert torch.equal(ema.shadow[0], x)
    assert decay_at(0.999, 1) == 2 / 11 and decay_at(0.5, 10_000) == 0.5


def test_only_the_generator_is_averaged():
    run = build_run(tiny("run.ema=0.9"))
    assert run.ema.names and all(n.startswith("G.") for n in run.ema.names)
    assert len(run.ema.names) < len(run.workers.names)


def _run_steps(cfg, n: int):
    run = build_run(cfg)
    x_bars = []
    for _ in steps(run, 0, n):
        x_bars.append(run.evaluator.x_bar())
    return run, x_bars


def test_average_of_the_workers_emas_is_the_ema_of_x_bar():
    run, x_bars = _run_steps(tiny("run.ema=0.8", "optim.lr=0.01"), 12)
    names = run.ema.names
    start = build_run(tiny()).evaluator.x_bar()
    want = {n: start[n].double() for n in names}
    for k, x_bar in enumerate(x_bars, start=1):
        d = decay_at(0.8, k)
        want = {n: d * want[n] + (1 - d) * x_bar[n].double() for n in names}
    got = run.ema.average(run.comm)
    for n in names:
        torch.testing.assert_close(got[n].double(), want[n], rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(got[n], start[n]) for n in names)  # it moved


def test_decay_zero_gives_x_bar_exactly(tmp_path):
    """With decay 0 the EMA is the iterate itself: its x_bar, metrics and all, is x_bar's."""
    run, x_bars = _run_steps(tiny("run.ema=0", "optim.lr=0.01"), 4)
    ema_bar = run.evaluator.ema_x_bar(x_bars[-1])
    assert all(torch.equal(ema_bar[n], x_bars[-1][n]) for n in run.ema.names)
    loop.train(tiny("run.ema=0", "run.iters=3", "run.sample_every=3"), tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    full = [r for r in rows if r["hq_rate"]]
    assert full and all(r[f"{k}_ema"] == r[k] for r in full for k in ("hq_rate", "modes_covered"))
    assert (tmp_path / "samples" / "xbar_ema_000003.png").is_file()


def test_resume_with_ema_equals_an_uninterrupted_run(tmp_path, no_pictures):  # noqa: F811
    full, half = tmp_path / "full", tmp_path / "half"
    opts = ("run.ema=0.9", "run.ema_per_worker=true", "optim.lr=0.01")
    loop.train(tiny(*opts, "run.iters=6"), full, progress=False)
    loop.train(tiny(*opts, "run.iters=3"), half, progress=False)
    loop.train(tiny(*opts, "run.iters=6"), half, resume=True, progress=False)
    _assert_same_run(full, half)
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(half / "checkpoint.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"] == 6
    for n, e in a["ema"]["shadow"].items():
        assert torch.equal(e, b["ema"]["shadow"][n]), n
    x0 = build_run(tiny()).workers.params
    assert all(not torch.equal(e, x0[n]) for n, e in a["ema"]["shadow"].items())
    rows = list(csv.DictReader((half / "metrics.csv").open()))
    assert rows[-1]["consensus_ema"] and rows[-1]["hq_rate_ema"]


def test_resume_with_another_decay_is_refused(tmp_path, no_pictures):  # noqa: F811
    loop.train(tiny("run.ema=0.9", "run.iters=2"), tmp_path, progress=False)
    for other in ("run.ema=0.99", "run.ema=null"):
        with pytest.raises(ConfigError, match="run.ema"):
            loop.train(tiny(other, "run.iters=4"), tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("sets, match", [
    (["run.ema=1.0"], "run.ema"), (["run.ema=-0.1"], "run.ema"),
    (["run.ema_per_worker=true"], "needs run.ema"),
])
def test_bad_ema_settings_are_one_line_errors(sets, match):
    with pytest.raises(ConfigError, match=match) as err:
        tiny(*sets)
    assert "\n" not in str(err.value)


def test_ema_on_an_analytic_game_is_refused():
    with pytest.raises(ConfigError, match="generator"):
        build_run(tiny("game.name=bilinear", "run.ema=0.9"))


def test_eval_reports_the_ema_beside_x_bar(tmp_path, capsys):
    loop.train(tiny("run.ema=0.9", "run.iters=4", "optim.lr=0.01"), tmp_path, progress=False)
    assert main(["eval", str(tmp_path), "--samples", "2500"]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    last = list(csv.DictReader((tmp_path / "metrics.csv").open()))[-1]
    for key in ("hq_rate", "modes_covered"):
        assert float(last[f"{key}_ema"]) == pytest.approx(metrics[f"{key}_ema"], abs=1e-6)
        assert float(last[key]) == pytest.approx(metrics[key], abs=1e-6)
    assert "EMA" in capsys.readouterr().out
