"""Workers' operator through `player_losses`: mapped forward + plain autograd per player.

The fast path must give, for every worker, exactly that worker's own operator: the same as
the game's torch.func `operator` applied worker by worker (the reference, itself checked
against plain nn.Module autograd in test_gan.py), in vmap and loop mode alike.
"""

from __future__ import annotations

import pytest
import torch

from gossipgan.data import load_dataset
from gossipgan.games import GanGame
from gossipgan.games.base import Batch, Game, Params
from gossipgan.sim import Workers

torch.set_num_threads(1)

N = 3


def _gan(loss: str, model: str) -> GanGame:
    if model == "mlp":
        data = load_dataset("ring8", num_samples=300, seed=0)
        return GanGame(data, N, model="mlp", loss=loss, latent_dim=4, width=16, batch_size=8)
    return GanGame(load_dataset("digits", seed=0), N, model="dcgan", loss=loss, latent_dim=4,
                   width=8, batch_size=8)


def _spread(params: Params, seed: int = 0) -> Params:
    """Different parameters on every worker, so a mix-up along the worker axis would show."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in params.items()}


def _reference(game: Game, params: Params, batch: Batch) -> Params:
    """The game's own operator, one worker at a time, stacked."""
    rows = [game.operator({k: v[i] for k, v in params.items()},
                          {k: v[i] for k, v in batch.items()}) for i in range(N)]
    return {k: torch.stack([r[k] for r in rows]) for k in params}


@pytest.mark.parametrize("mode", ["vmap", "loop"])
@pytest.mark.parametrize("loss,model", [("nsgan", "mlp"), ("hinge", "mlp"), ("wgan-gp", "mlp"),
                                        ("nsgan", "dcgan"), ("wgan-gp", "dcgan")])
def test_player_losses_path_equals_the_operator(loss, model, mode):
    game = _gan(loss, model)
    assert game.has_player_losses
    workers = Workers(game, list(range(N)), seed=5, batch_size=8, vectorize=mode)
    params = _spread(workers.params)
    batch = workers.sample()
    got = workers.operator(params, batch)
    want = _reference(game, params, batch)
    assert list(got) == list(params)
    for name in params:
        assert got[name].shape == params[name].shape
        assert got[name].is_contiguous(), name  # optimizers view it flat per worker
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)
    # the parameters are untouched and the result carries no graph
    assert all(not g.requires_grad for g in got.values())
    assert all(torch.equal(v, _spread(workers.params)[k]) for k, v in params.items())


def test_vmap_and_loop_paths_agree_to_float_precision():
    game = _gan("wgan-gp", "mlp")
    ws = {m: Workers(game, list(range(N)), seed=2, batch_size=8, vectorize=m)
          for m in ("vmap", "loop")}
    params, batch = _spread(ws["vmap"].params, seed=1), ws["vmap"].sample()
    ops = {m: w.operator(params, batch) for m, w in ws.items()}
    for name in params:
        torch.testing.assert_close(ops["vmap"][name], ops["loop"][name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_repeated_compute_grads_give_each_draws_operator_densely(mode):
    """Every step's .grad is its own draw's operator, laid out densely for the optimizers."""
    game = _gan("hinge", "mlp")
    workers, twin = (Workers(game, list(range(N)), seed=4, batch_size=8, vectorize=mode)
                     for _ in range(2))
    seen = []
    for _ in range(3):
        want = twin.operator(twin.params, twin.sample())  # twin draws the same batches
        workers.compute_grads()
        for name, p in workers.params.items():
            assert p.grad.is_contiguous(), name
            torch.testing.assert_close(p.grad, want[name], rtol=1e-6, atol=1e-7, msg=name)
        seen.append(workers.params["D.net.2.weight"].grad.clone())
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])


def test_operator_is_not_called_on_the_fast_path(monkeypatch):
    game = _gan("nsgan", "mlp")

    def boom(params, batch):
        raise AssertionError("the torch.func operator ran")

    monkeypatch.setattr(game, "operator", boom)
    for mode in ("vmap", "loop"):
        workers = Workers(game, list(range(N)), seed=0, batch_size=8, vectorize=mode)
        workers.compute_grads()
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in workers.params.values())


class Bilinear(Game):
    """l_min = <x, c * y> + |x|^2 / 2,  l_max = -<x, c * y>; u belongs to min but is unused.

    T = (c * y + x, -c * x, 0): a sum-of-losses surrogate would give x the max player's
    cross term too, and a worker mix-up would pair one worker's x with another's y.
    """

    n_workers = N

    def init_params(self, seed: int) -> Params:
        gen = torch.Generator().manual_seed(seed)
        return {"x": torch.randn(4, generator=gen), "y": torch.randn(4, generator=gen),
                "u": torch.ones(2)}

    def player(self, name: str) -> str:
        return "max" if name == "y" else "min"

    def sample(self, worker: int, generator: torch.Generator, batch_size: int) -> Batch:
        return {"c": torch.randn(batch_size, 4, generator=generator).mean(0)}

    def operator(self, params: Params, batch: Batch) -> Params:
        x, y, c = params["x"], params["y"], batch["c"]
        return {"x": c * y + x, "y": -c * x, "u": torch.zeros_like(params["u"])}

    def large_batch(self, generator: torch.Generator, size: int) -> Batch:
        return self.sample(0, generator, size)


class BilinearWithLosses(Bilinear):
    def player_losses(self, params: Params, batch: Batch) -> dict[str, torch.Tensor]:
        x, y, c = params["x"], params["y"], batch["c"]
        return {"min": (x * c * y).sum() + 0.5 * x.pow(2).sum(), "max": -(x * c * y).sum()}


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_each_player_gets_its_own_gradient_per_worker(mode):
    game, plain = BilinearWithLosses(), Bilinear()
    assert game.has_player_losses and not plain.has_player_losses
    fast = Workers(game, list(range(N)), seed=0, batch_size=5, vectorize=mode)
    slow = Workers(plain, list(range(N)), seed=0, batch_size=5, vectorize=mode)
    fast.params = _spread(fast.params)
    slow.params = {k: v.clone() for k, v in fast.params.items()}
    with torch.no_grad():  # as optimizers call the closure: the fast path turns grad back on
        fast.compute_grads()
        slow.compute_grads()
    for name in fast.names:
        torch.testing.assert_close(fast.params[name].grad, slow.params[name].grad,
                                   rtol=1e-6, atol=1e-7)
    assert torch.equal(fast.params["u"].grad, torch.zeros(N, 2))
    assert not torch.equal(fast.params["x"].grad[0], fast.params["x"].grad[1])


def test_games_without_player_losses_say_so():
    with pytest.raises(NotImplementedError, match="Bilinear has no player_losses"):
        Bilinear().player_losses({}, {})



@pytest.mark.parametrize("model,width,n,picks", [
    ("mlp", 16, 3, "vmap"),      # small: one batched matmul per layer wins
    ("mlp", 256, 3, "vmap"),     # 273k parameters per worker
    ("mlp", 384, 3, "loop"),     # 606k: over VMAP_MAX_PARAMS
    ("dcgan", 8, 3, "vmap"),     # 4k parameters in conv kernels
    ("dcgan", 64, 3, "loop"),    # 264k in conv kernels: grouped convolutions are slow on CPU
    ("mlp", 16, 1, "loop"),      # one worker: nothing to map over
])
def test_auto_picks_vmap_or_loop_by_the_size_rule(model, width, n, picks):
    data = load_dataset("ring8", num_samples=300, seed=0) if model == "mlp" else \
        load_dataset("digits", seed=0)
    game = GanGame(data, n, model=model, latent_dim=4, width=width, batch_size=4)
    sim = Workers(game, list(range(n)), 0, 4)
    assert sim.vectorize == "auto"
    sim.compute_grads()
    assert sim.vectorize == picks
