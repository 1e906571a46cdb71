"""The GAN game's operator: each player's gradient of its OWN loss, vmap == loop, player mapping.

The reference gradients are computed with plain torch.autograd on real nn.Modules holding the
same parameters, with the losses written independently here (NS-GAN through BCE-with-logits).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gossipgan.data import load_dataset
from gossipgan.games import GanGame
from gossipgan.models import build_models
from gossipgan.sim import Workers
from gossipgan.train.build import build_run
from gossipgan.train.config import Config
from gossipgan.train.config_io import apply_overrides

torch.set_num_threads(1)

LATENT, WIDTH, GP = 4, 16, 10.0


def _game(loss: str, model: str = "mlp", n_workers: int = 3) -> GanGame:
    if model == "mlp":
        data = load_dataset("ring8", num_samples=300, seed=0)
        return GanGame(data, n_workers, model="mlp", loss=loss, latent_dim=LATENT, width=WIDTH,
                       gp_weight=GP, batch_size=8)
    data = load_dataset("digits", seed=0)
    return GanGame(data, n_workers, model="dcgan", loss=loss, latent_dim=LATENT, width=8,
                   gp_weight=GP, batch_size=8)


def _perturbed(game: GanGame, seed: int = 0) -> dict[str, torch.Tensor]:
    """Initial parameters moved a little, so no test sits at a special point."""
    gen = torch.Generator().manual_seed(seed)
    x0 = game.init_params(1)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in x0.items()}


def _modules(game: GanGame, params: dict):
    G, D = build_models(game.model, game.dataset.shape, game.latent_dim, game.width)
    G.load_state_dict({k[2:]: v for k, v in params.items() if k.startswith("G.")}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in params.items() if k.startswith("D.")}, strict=True)
    return G, D


def _reference_losses(loss: str, G, D, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x, z = batch["x"], batch["z"]
    fake = G(z)
    d_fake, d_real = D(fake), D(x)
    if loss == "nsgan":
        bce = F.binary_cross_entropy_with_logits
        ones, zeros = torch.ones_like(d_fake), torch.zeros_like(d_fake)
        return bce(d_fake, ones), bce(d_real, ones) + bce(d_fake, zeros)
    if loss == "hinge":
        return -d_fake.mean(), torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
    eps = batch["e"].view(-1, *([1] * (x.dim() - 1)))
    mix = eps * x + (1 - eps) * fake
    (g,) = torch.autograd.grad(D(mix).sum(), mix, create_graph=True)
    penalty = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return -d_fake.mean(), d_fake.mean() - d_real.mean() + GP * penalty


def _autograd(loss: str, game: GanGame, params: dict, batch: dict):
    """(dl_G/dG, dl_D/dD) and the crossed (dl_D/dG, dl_G/dD), keyed like the game's params."""
    G, D = _modules(game, params)
    lg, ld = _reference_losses(loss, G, D, batch)
    gn = [f"G.{k}" for k, _ in G.named_parameters()]
    dn = [f"D.{k}" for k, _ in D.named_parameters()]
    gg = torch.autograd.grad(lg, list(G.parameters()), retain_graph=True)
    gd = torch.autograd.grad(ld, list(D.parameters()), retain_graph=True)
    cross_g = torch.autograd.grad(ld, list(G.parameters()), retain_graph=True)
    cross_d = torch.autograd.grad(lg, list(D.parameters()))
    own = {**dict(zip(gn, gg, strict=True)), **dict(zip(dn, gd, strict=True))}
    crossed = {**dict(zip(gn, cross_g, strict=True)), **dict(zip(dn, cross_d, strict=True))}
    return own, crossed, (lg.detach().item(), ld.detach().item())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss,model", [("nsgan", "mlp"), ("hinge", "mlp"), ("wgan-gp", "mlp"),
                                        ("wgan-gp", "dcgan")])
def test_operator_is_each_players_gradient_of_its_own_loss(loss, model):
    game = _game(loss, model)
    params = _perturbed(game)
    batch = game.sample(1, torch.Generator().manual_seed(3), 8)
    op = game.operator(params, batch)
    own, crossed, (lg, ld) = _autograd(loss, game, params, batch)
    assert set(op) == set(params) == set(own)
    for name in params:
        assert op[name].shape == params[name].shape
        assert _close(op[name], own[name]), name
    # The test can tell a swap: the other player's loss has a different gradient here.
    assert any(not _close(own[n], crossed[n]) for n in params if n.startswith("G."))
    assert any(not _close(own[n], crossed[n]) for n in params if n.startswith("D."))
    logged = game.losses(params, batch)
    assert logged["loss_g"].item() == pytest.approx(lg, rel=1e-5)
    assert logged["loss_d"].item() == pytest.approx(ld, rel=1e-5)


@pytest.mark.parametrize("loss,model", [("nsgan", "mlp"), ("hinge", "mlp"), ("wgan-gp", "mlp"),
                                        ("nsgan", "dcgan")])
def test_vmap_and_loop_give_the_same_operator(loss, model):
    game = _game(loss, model)
    workers = {mode: Workers(game, [0, 1, 2], seed=5, batch_size=8, vectorize=mode)
               for mode in ("vmap", "loop")}
    # Different parameters per worker, so a mix-up along the worker axis would show.
    gen = torch.Generator().manual_seed(0)
    params = {k: v + 0.05 * torch.randn(v.shape, generator=gen)
              for k, v in workers["vmap"].params.items()}
    batches = {mode: w.sample() for mode, w in workers.items()}
    for key in batches["vmap"]:
        assert torch.equal(batches["vmap"][key], batches["loop"][key])
    assert not torch.equal(batches["vmap"]["x"][0], batches["vmap"]["x"][1])
    ops = {mode: w.operator(params, batches[mode]) for mode, w in workers.items()}
    for i in range(3):
        single = game.operator({k: v[i] for k, v in params.items()},
                               {k: v[i] for k, v in batches["loop"].items()})
        for name in params:
            assert _close(ops["vmap"][name][i], single[name]), (name, i)
            assert _close(ops["loop"][name][i], single[name]), (name, i)


def test_player_mapping_and_per_player_step_sizes():
    """One DPOSG step from a consensual x0 moves G by -lr_g dl_G/dG and D by -lr_d dl_D/dD."""
    lr_g, lr_d = 0.1, 0.3
    cfg = apply_overrides(Config(), [
        "game.model=mlp", "data.dataset=ring8", f"game.width={WIDTH}", f"game.latent_dim={LATENT}",
        "topology.workers=3", "run.batch=8", "optim.algo=dposg", f"optim.lr_g={lr_g}",
        f"optim.lr_d={lr_d}", "game.loss=nsgan",
    ])
    run = build_run(cfg)
    game, workers = run.game, run.workers
    assert {game.player(n) for n in workers.names if n.startswith("G.")} == {"min"}
    assert {game.player(n) for n in workers.names if n.startswith("D.")} == {"max"}
    lrs = {id(p): g["lr"] for g in run.optimizer.param_groups for p in g["params"]}
    assert all(lrs[id(workers.params[n])] == (lr_g if n.startswith("G.") else lr_d)
               for n in workers.names)

    x0 = {k: v.detach().clone() for k, v in workers.params.items()}
    rng = [g.get_state() for g in workers.generators]
    run.optimizer.step(workers.compute_grads)
    for g, s in zip(workers.generators, rng, strict=True):
        g.set_state(s)
    batch = workers.sample()  # the very batch the step drew
    for i in range(3):
        own, _, _ = _autograd("nsgan", game, {k: v[i] for k, v in x0.items()},
                              {k: v[i] for k, v in batch.items()})
        for name in workers.names:
            lr = lr_g if name.startswith("G.") else lr_d
            expected = x0[name][i] - lr * own[name]
            assert _close(workers.params[name][i], expected), (name, i)
