"""bench/sim_throughput.py compares the simulator with two yardsticks; the comparison is only
fair if they compute the same gradients. Checked here at tiny size, with a smoke run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gossipgan.data import load_dataset
from gossipgan.games import GanGame
from gossipgan.sim import Workers

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location(
    "sim_throughput", Path(__file__).parents[1] / "bench" / "sim_throughput.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("loss", bench.LOSSES)
def test_naive_loop_yardstick_computes_each_workers_operator(loss):
    n = 3
    game = GanGame(load_dataset("ring8", num_samples=300, seed=0), n, model="mlp", loss=loss,
                   latent_dim=4, width=16, gp_weight=bench.GP_WEIGHT, batch_size=8)
    sim = Workers(game, list(range(n)), 0, 8, vectorize="vmap")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for v in sim.params.values():
            v.add_(0.05 * torch.randn(v.shape, generator=gen))  # a different model per worker
    batch = sim.sample()
    want = sim.operator(sim.params, batch)
    names = [k for k in sim.names if k.startswith("G.")] + [k for k in sim.names
                                                             if k.startswith("D.")]
    for i in range(n):
        g, d = bench.module_pair(game, sim.params, i)
        got = bench.plain_grads(loss, g, d, {k: v[i] for k, v in batch.items()})
        for name, grad in zip(names, got, strict=True):
            torch.testing.assert_close(grad, want[name][i], rtol=1e-4, atol=1e-5, msg=name)


def test_big_batch_yardstick_is_the_same_arithmetic_on_one_model():
    """One model on the N workers' batches together = the mean of its per-batch gradients."""
    n = 3
    game = GanGame(load_dataset("ring8", num_samples=300, seed=0), n, model="mlp",
                   latent_dim=4, width=16, batch_size=8)
    sim = Workers(game, list(range(n)), 0, 8, vectorize="loop")
    batch = sim.sample()
    g, d = bench.module_pair(game, sim.params, 0)
    big = bench.plain_grads("nsgan", g, d, {k: v.flatten(0, 1) for k, v in batch.items()})
    parts = [bench.plain_grads("nsgan", g, d, {k: v[i] for k, v in batch.items()})
             for i in range(n)]
    for j, grad in enumerate(big):
        torch.testing.assert_close(grad, sum(p[j] for p in parts) / n, rtol=1e-4, atol=1e-6)


def test_bench_runs_end_to_end_at_tiny_size(capsys):
    r = bench.bench_operator("mlp", 2, 4, repeats=1, loss="wgan-gp")
    assert r["loss"] == "wgan-gp" and r["auto_picks"] == "vmap"
    assert {"sim auto", "naive loop", "big batch", "sim vmap, wm inner"} <= set(r["seconds"])
    g = bench.bench_gossip("mlp", "ring", 4, repeats=1)
    bench.print_operator(r)
    bench.print_gossip(g)
    bench.print_goals({"operator": [dict(r, n=64)], "gossip": [g]})
    out = capsys.readouterr().out
    assert "MLP wgan-gp N=64" in out and "sparse round" in out


def test_optimizer_step_bench_runs_at_tiny_size(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    spec = importlib.util.spec_from_file_location(
        "optim_step", Path(__file__).parents[1] / "bench" / "optim_step.py")
    optim_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(optim_step)
    r = optim_step.bench_step("mlp", 4, repeats=1)
    optim_step.print_step(r)
    assert "fused step" in capsys.readouterr().out
    assert optim_step.functional.FUSED_DEVICES == ("cpu", "cuda")  # restored after timing


def test_vmap_rule_bench_runs_at_tiny_size(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    spec = importlib.util.spec_from_file_location(
        "vmap_rule", Path(__file__).parents[1] / "bench" / "vmap_rule.py")
    vmap_rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vmap_rule)
    per_worker, ratio = vmap_rule.loop_over_vmap("nsgan", 8, 2, repeats=1)
    assert per_worker > 0 and ratio > 0
