"""Analytic games: operator = autograd of the losses, vmap = loop, exact solutions,
monotonicity facts, the Minty condition, sampling discipline and argument checks."""

import math

import pytest
import torch
from torch.func import vmap

from gossipgan.errors import ConfigError
from gossipgan.games.analytic import (
    ANALYTIC_GAMES,
    BilinearGame,
    MintyGame,
    QuadraticGame,
    build_analytic_game,
)
from gossipgan.games.base import Game

torch.set_num_threads(1)
NAMES = sorted(ANALYTIC_GAMES)
F64 = torch.float64


def make(name, dtype=F64, **kw):
    args = dict(n_workers=4, dim=5, samples_per_worker=64, heterogeneity=0.5, noise=0.3,
                seed=3, dtype=dtype)
    args.update(kw)
    return build_analytic_game(name, **args)


def rand_params(d, gen, scale=1.0, lead=()):
    return {k: scale * torch.randn(*lead, d, generator=gen, dtype=F64) for k in ("x", "y")}


def inner(t, u):
    return sum((t[k] * u[k]).sum(-1) for k in ("x", "y"))


def diff(a, b):
    return {k: a[k] - b[k] for k in a}


@pytest.mark.parametrize("name", NAMES)
def test_is_a_game_with_players(name):
    g = make(name)
    assert isinstance(g, Game) and g.n_workers == 4
    assert (g.player("x"), g.player("y")) == ("min", "max")
    with pytest.raises(ConfigError, match="'z'"):
        g.player("z")


@pytest.mark.parametrize("name", NAMES)
def test_operator_is_autograd_of_losses(name):
    g = make(name)
    batch = g.sample(1, torch.Generator().manual_seed(0), 16)
    params = {k: v.requires_grad_() for k, v in rand_params(5, torch.Generator().manual_seed(1),
                                                            scale=2.0).items()}
    losses = g.losses(params, batch)
    gx, = torch.autograd.grad(losses["loss_min"], params["x"], retain_graph=True)
    gy, = torch.autograd.grad(losses["loss_max"], params["y"])
    op = g.operator(params, batch)
    torch.testing.assert_close(op["x"], gx, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(op["y"], gy, rtol=1e-10, atol=1e-10)
    assert torch.equal(losses["loss_max"], -losses["loss_min"])


@pytest.mark.parametrize("name", NAMES)
def test_operator_vmaps_over_workers_like_a_loop(name):
    g = make(name, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    batches = [g.sample(w, gen, 8) for w in range(4)]
    stacked_batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
    params = {k: v.float() for k, v in rand_params(5, gen, lead=(4,)).items()}
    out = vmap(g.operator)(params, stacked_batch)
    for w in range(4):
        ref = g.operator({k: v[w] for k, v in params.items()}, batches[w])
        for k in ("x", "y"):
            torch.testing.assert_close(out[k][w], ref[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("het,noise", [(0.0, 0.0), (0.0, 0.5), (1.0, 0.5)])
def test_solution_zeroes_the_full_operator(name, het, noise):
    g = make(name, heterogeneity=het, noise=noise)
    t = g.full_operator(g.solution())
    assert max(t["x"].abs().max(), t["y"].abs().max()) < 1e-9
    everything = g.large_batch(torch.Generator().manual_seed(0), 10**9)
    t = g.operator(g.solution(), everything)
    assert max(t["x"].abs().max(), t["y"].abs().max()) < 1e-9
    assert g.distance_to_solution(g.init_params(0)) > 1.0


@pytest.mark.parametrize("name", NAMES)
def test_full_operator_is_the_operator_of_all_data(name):
    g = make(name)
    p = rand_params(5, torch.Generator().manual_seed(2), scale=3.0)
    full = g.operator(p, g.large_batch(torch.Generator(), 4 * 64))
    exact = g.full_operator(p)
    for k in ("x", "y"):
        torch.testing.assert_close(full[k], exact[k], rtol=1e-12, atol=1e-12)
    # leading (worker) axes are accepted and act row by row
    stacked = g.full_operator({k: torch.stack([v, 2 * v]) for k, v in p.items()})
    torch.testing.assert_close(stacked["x"][0], exact["x"])


@pytest.mark.parametrize("name", NAMES)
def test_float32_default_and_close_to_float64(name):
    g32 = make(name, dtype=torch.float32)
    g64 = make(name)
    assert build_analytic_game(name, n_workers=2, dim=3).dtype == torch.float32
    s32, s64 = g32.solution(), g64.solution()
    assert s32["x"].dtype == torch.float32
    for k in ("x", "y"):
        torch.testing.assert_close(s32[k].double(), s64[k], rtol=1e-4, atol=1e-4)


def test_quadratic_is_mu_strongly_monotone():
    g = make("quadratic", heterogeneity=2.0, noise=0.5, mu=0.3)
    gen = torch.Generator().manual_seed(0)
    u, v = rand_params(5, gen, 5.0, (500,)), rand_params(5, gen, 5.0, (500,))
    gap = inner(diff(g.full_operator(u), g.full_operator(v)), diff(u, v))
    dist = g.distance_to_solution(u) * 0 + inner(diff(u, v), diff(u, v))
    assert (gap >= 0.3 * dist * (1 - 1e-6)).all()
    # each sample's P_j, Q_j is positive definite, so a minibatch operator is monotone too
    batch = g.sample(0, gen, 4)
    tb = vmap(g.operator, in_dims=(0, None))
    assert (inner(diff(tb(u, batch), tb(v, batch)), diff(u, v)) > 0).all()


def test_bilinear_is_monotone_but_not_strongly():
    g = make("bilinear", heterogeneity=1.0, noise=0.5)
    gen = torch.Generator().manual_seed(0)
    u, v = rand_params(5, gen, 5.0, (500,)), rand_params(5, gen, 5.0, (500,))
    gap = inner(diff(g.full_operator(u), g.full_operator(v)), diff(u, v))
    assert gap.abs().max() < 1e-10 * inner(diff(u, v), diff(u, v)).max()
    batch = g.sample(2, gen, 4)
    tb = vmap(g.operator, in_dims=(0, None))
    assert inner(diff(tb(u, batch), tb(v, batch)), diff(u, v)).abs().max() < 1e-9


def test_minty_potential_inequality_holds_for_all_u():
    # |u| >= 1.5: 2u^2 >= 3|u| >= |3u sin 2u|; below that a dense grid settles it.
    u = torch.linspace(-1.5, 1.5, 1_000_001, dtype=F64)
    assert (2 * u**2 + 3 * u * torch.sin(2 * u) >= 0).all()
    ratio = 2 + 3 * torch.sin(2 * u[u != 0]) / u[u != 0]
    assert ratio.min() > 0.69
    # the constant matters: with 5 instead of 3 the inequality fails (near u = 2.2)
    wide = torch.linspace(0, 10, 10_001, dtype=F64)
    assert (2 * wide**2 + 5 * wide * torch.sin(2 * wide) < 0).any()
    # and the 3 makes the potential nonconvex somewhere: phi'' = 2 + 6 cos 2u < 0
    assert (2 + 6 * torch.cos(2 * wide) < 0).any()


@pytest.mark.parametrize("het", [0.0, 2.0])
def test_minty_condition_on_random_points(het):
    g = make("minty", heterogeneity=het, noise=1.0, coupling=5.0)
    gen = torch.Generator().manual_seed(0)
    w = {k: 40 * torch.rand(10_000, 5, generator=gen, dtype=F64) - 20 for k in ("x", "y")}
    # plus the diagonal w = t (1, ..., 1), where every coordinate sits in the same bad spot
    t = torch.linspace(-20, 20, 4001, dtype=F64)[:, None].expand(4001, 5)
    w = {k: torch.cat([v, t]) for k, v in w.items()}
    sq = inner(w, w)
    a_min = g.shard(0)["a"].min()
    for w_id in range(4):
        a_min = torch.minimum(a_min, g.shard(w_id)["a"].min())
    assert (inner(g.full_operator(w), w) >= 0.69 * a_min * sq).all()
    # every minibatch operator satisfies it too (and per worker: the solution is shared)
    for worker in range(4):
        batch = g.sample(worker, gen, 3)
        assert (inner(vmap(g.operator, in_dims=(0, None))(w, batch), w) >= 0).all()
    assert g.distance_to_solution(g.solution()) == 0


def test_minty_is_nonconvex_and_not_monotone():
    g = make("minty", heterogeneity=0.0, noise=0.0, dim=3)
    batch = g.sample(0, torch.Generator(), 2)
    y = torch.zeros(3, dtype=F64)
    x = torch.full((3,), math.pi / 2, dtype=F64)
    hess = torch.autograd.functional.hessian(
        lambda x_: g.losses({"x": x_, "y": y}, batch)["loss_min"], x)
    assert torch.linalg.eigvalsh(hess).max() < 0  # -4a in every direction
    u = {"x": x, "y": x.clone()}
    v = {"x": x + 1e-3, "y": x + 1e-3}
    assert inner(diff(g.full_operator(u), g.full_operator(v)), diff(u, v)) < 0


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_deterministic_and_from_the_workers_shard(name):
    g = make(name)
    a = g.sample(2, torch.Generator().manual_seed(7), 32)
    b = g.sample(2, torch.Generator().manual_seed(7), 32)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = g.sample(2, torch.Generator().manual_seed(8), 32)
    assert not all(torch.equal(a[k], c[k]) for k in a)

    def rows(batch):
        return torch.cat([v.reshape(len(v), -1) for _, v in sorted(batch.items())], 1)

    def matches(drawn, shard):  # [n_drawn] bool: row equals some row of the shard exactly
        return (drawn[:, None, :] == shard[None, :, :]).all(-1).any(1)

    assert matches(rows(a), rows(g.shard(2))).all()
    assert not matches(rows(a), rows(g.shard(1))).any()


def test_sample_uses_only_its_generator():
    g = make("quadratic")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    g.sample(0, torch.Generator().manual_seed(0), 10)
    g.large_batch(torch.Generator().manual_seed(0), 10)
    assert torch.equal(before, torch.get_rng_state())


def test_large_batch_sizes():
    g = make("bilinear")
    small = g.large_batch(torch.Generator().manual_seed(0), 50)
    assert small["b"].shape == (50, 5) and small["U"].shape == (50, 2, 5)
    assert torch.unique(small["V"][:, 1], dim=0).shape[0] == 50  # distinct samples
    assert g.large_batch(torch.Generator(), 10**6)["b"].shape == (4 * 64, 5)


@pytest.mark.parametrize("name", NAMES)
def test_heterogeneity_changes_local_operators_not_the_solution(name):
    iid, het = make(name, heterogeneity=0.0), make(name, heterogeneity=1.0)
    p = rand_params(5, torch.Generator().manual_seed(0))
    spread = {}
    for label, g in (("iid", iid), ("het", het)):
        local = [g.operator(p, g.shard(w)) for w in range(4)]
        spread[label] = sum(inner(diff(t, local[0]), diff(t, local[0])) for t in local)
    assert spread["het"] > 20 * spread["iid"] > 0
    for k in ("x", "y"):
        torch.testing.assert_close(iid.solution()[k], het.solution()[k], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_no_noise_no_heterogeneity_means_identical_shards(name):
    g = make(name, heterogeneity=0.0, noise=0.0)
    p = rand_params(5, torch.Generator().manual_seed(0))
    ref = g.full_operator(p)
    for w in range(4):
        t = g.operator(p, g.sample(w, torch.Generator().manual_seed(w), 1))
        for k in ("x", "y"):
            torch.testing.assert_close(t[k], ref[k], rtol=1e-12, atol=1e-12)


def test_distance_to_solution_on_stacked_params():
    g = make("quadratic")
    s = g.solution()
    stacked = {k: torch.stack([v, v + 1.0, v - 2.0]) for k, v in s.items()}
    torch.testing.assert_close(g.distance_to_solution(stacked),
                               torch.tensor([0.0, 10.0, 40.0], dtype=F64))


def test_optimistic_gda_converges_where_gda_diverges_on_bilinear():
    g = make("bilinear", heterogeneity=1.0, noise=0.5)
    eta, steps = 0.2, 400
    z0 = g.init_params(0)
    d0 = g.distance_to_solution(z0)
    z, t_prev = dict(z0), g.full_operator(z0)
    for _ in range(steps):
        t = g.full_operator(z)
        z = {k: z[k] - 2 * eta * t[k] + eta * t_prev[k] for k in z}
        t_prev = t
    assert g.distance_to_solution(z) < 1e-6 * d0
    z = dict(z0)
    for _ in range(steps):
        t = g.full_operator(z)
        z = {k: z[k] - eta * t[k] for k in z}
    # A_bar is orthogonal, so each step multiplies the squared distance by exactly 1 + eta^2
    ratio = (g.distance_to_solution(z) / d0).item()
    assert ratio == pytest.approx((1 + eta**2) ** steps, rel=1e-6)  # about 6.5e6


BAD = [
    ("nope", {}, "unknown analytic game 'nope'; known: bilinear, quadratic, minty"),
    ("bilinear", {"dim": 0}, "dim must be an integer >= 1, got 0"),
    ("bilinear", {"dim": 2.5}, "dim must be an integer >= 1, got 2.5"),
    ("bilinear", {"n_workers": 0}, "n_workers must be an integer >= 1, got 0"),
    ("quadratic", {"samples_per_worker": 0}, "samples_per_worker must be an integer >= 1, got 0"),
    ("minty", {"heterogeneity": -1.0}, "heterogeneity must be a finite number >= 0.0, got -1.0"),
    ("minty", {"heterogeneity": float("nan")}, "heterogeneity must be a finite number"),
    ("bilinear", {"noise": -0.1}, "noise must be a finite number >= 0.0, got -0.1"),
    ("quadratic", {"mu": 0.0}, "mu must be a finite number > 0.0, got 0.0"),
    ("minty", {"scale": -1.0}, "scale must be a finite number > 0.0"),
    ("bilinear", {"dtype": torch.int64}, "dtype must be one of float32, float64"),
    ("bilinear", {"seed": -1}, "seed must be an integer >= 0, got -1"),
    ("bilinear", {"mu": 1.0}, "unknown argument(s) mu for analytic game 'bilinear'"),
]


@pytest.mark.parametrize("name,override,message", BAD)
def test_bad_arguments_raise_config_error(name, override, message):
    args = dict(n_workers=2, dim=3, samples_per_worker=4)
    args.update(override)
    with pytest.raises(ConfigError) as err:
        build_analytic_game(name, **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_runtime_arguments():
    g = make("minty")
    with pytest.raises(ConfigError, match="worker must be in 0..3, got 4"):
        g.sample(4, torch.Generator(), 2)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        g.sample(0, torch.Generator(), 0)
    with pytest.raises(ConfigError, match="needs dim"):
        build_analytic_game("minty", n_workers=2)


def test_registry_classes():
    assert ANALYTIC_GAMES == {"bilinear": BilinearGame, "quadratic": QuadraticGame,
                              "minty": MintyGame}
    assert build_analytic_game("minty", n_workers=2, dim=2, dtype="float64").dtype == F64
