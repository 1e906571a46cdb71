"""The optimizers against independent references (single-machine optimistic gradient descent,
torch.optim.Adam, OGD on the averaged operator), state_dict round trips, argument checks,
per-player step sizes, mixed Adam moments, and the behaviour the theory predicts on the
analytic games (optimism beats plain descent-ascent on bilinear games, more gossip rounds give
better consensus, every method converges on a strongly monotone game)."""

import io

import pytest
import torch

from gossipgan import topology as topo
from gossipgan.comm import SimComm
from gossipgan.errors import ConfigError
from gossipgan.games import build_analytic_game
from gossipgan.optim import (
    ALGORITHMS,
    CPOSG,
    DPOSG,
    DPSGDA,
    DExtraGrad,
    DPAdam,
    DPOAdam,
    optimizer_class,
)
from gossipgan.sim import Workers

torch.set_num_threads(1)
F64 = torch.float64
ADAM = {name for name, cls in ALGORITHMS.items() if cls.direction == "adam"}


def linear_operator(n: int, d: int, seed: int, hetero: float = 0.0):
    """Per-worker monotone affine operators T_i(z) = M_i z + b_i (skew part + small PSD part)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(d, d, generator=g, dtype=F64)
    base = (s - s.T) + 0.1 * torch.eye(d, dtype=F64)
    ms = torch.stack([base + hetero * torch.randn(d, d, generator=g, dtype=F64) for _ in range(n)])
    bs = torch.randn(n, d, generator=g, dtype=F64) * (1 + hetero)
    return ms, bs


def apply(ms, bs, z):
    """T_i(z_i) for every worker row of z: [n, d]."""
    return torch.einsum("nij,nj->ni", ms, z) + bs


def ogd(op, z0: torch.Tensor, lr: float, steps: int) -> list[torch.Tensor]:
    """Single-machine optimistic gradient descent, written from the textbook recursion:
    z_1 = z_0 - lr g(z_0),  z_{k+1} = z_k - 2 lr g(z_k) + lr g(z_{k-1})."""
    g_prev = op(z0)
    z = z0 - lr * g_prev
    out = [z]
    for _ in range(steps - 1):
        g = op(z)
        z = z - 2 * lr * g + lr * g_prev
        g_prev = g
        out.append(z)
    return out


# --- exact references --------------------------------------------------------------------

def test_dposg_one_worker_is_optimistic_gradient_descent():
    ms, bs = linear_operator(1, 6, seed=0)
    z0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    lr, steps = 0.05, 40
    p = z0.clone().requires_grad_(True)
    opt = DPOSG([p], comm=SimComm(topo.complete(1)), lr=lr, rounds=2)
    expect = ogd(lambda z: apply(ms, bs, z), z0, lr, steps)
    x_prev = z0.clone()
    for k in range(steps):
        p.grad = apply(ms, bs, p.detach())
        opt.step()
        torch.testing.assert_close(p.detach(), expect[k], rtol=1e-12, atol=1e-12)
        # the iterate x_k = x_{k-1} - lr g(z_k), z_0 = x_0: the first step leaves x_0 alone
        x = opt.iterates()[0]
        if k == 0:
            assert torch.equal(x, z0)
        else:
            torch.testing.assert_close(x, x_prev - lr * p.grad, rtol=1e-12, atol=1e-12)
        x_prev = x.clone()
    assert opt.iteration == steps


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_dpadam_one_worker_equals_torch_adam(dtype):
    gen = torch.Generator().manual_seed(2)
    p1 = torch.randn(1, 5, 3, generator=gen, dtype=dtype).requires_grad_(True)
    q1 = torch.randn(1, 4, generator=gen, dtype=dtype).requires_grad_(True)
    p2, q2 = (t.detach().clone().requires_grad_(True) for t in (p1, q1))
    kw = dict(lr=0.07, betas=(0.5, 0.9), eps=1e-6)
    ours = DPAdam([p1, q1], comm=SimComm(topo.complete(1)), **kw)
    ref = torch.optim.Adam([p2, q2], fused=True, **kw)  # DPAdam runs the fused kernel
    for _ in range(30):
        for (p, q), opt in (((p1, q1), ours), ((p2, q2), ref)):
            p.grad = torch.sin(3 * p.detach()) + p.detach() ** 3
            q.grad = torch.cos(q.detach()) - q.detach()
            opt.step()
    assert torch.equal(p1, p2) and torch.equal(q1, q2)
    assert not torch.equal(p1.detach(), p1.detach() * 0)  # moved somewhere non-trivial


def test_cposg_keeps_workers_identical_and_is_ogd_on_the_averaged_operator():
    n, d, lr, steps = 4, 5, 0.05, 30
    ms, bs = linear_operator(n, d, seed=3, hetero=0.5)
    z0 = torch.randn(d, generator=torch.Generator().manual_seed(4), dtype=F64)
    p = z0.repeat(n, 1).requires_grad_(True)
    comm = SimComm(topo.ring(n))
    opt = CPOSG([p], comm=comm, lr=lr, rounds=3)
    m_bar, b_bar = ms.mean(0), bs.mean(0)
    expect = ogd(lambda z: z @ m_bar.T + b_bar, z0.unsqueeze(0), lr, steps)
    for k in range(steps):
        p.grad = apply(ms, bs, p.detach())
        assert not torch.allclose(p.grad[0], p.grad[1])  # heterogeneous operators
        opt.step()
        for i in range(1, n):
            assert torch.equal(p[i], p[0])
        torch.testing.assert_close(p[0:1].detach(), expect[k], rtol=1e-10, atol=1e-12)
    assert comm.traffic.gossip_rounds == 0
    assert comm.traffic.allreduces == steps


def test_dextragrad_one_worker_is_extragradient():
    ms, bs = linear_operator(1, 4, seed=5)
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(6), dtype=F64)
    p = z.clone().requires_grad_(True)
    opt = DExtraGrad([p], comm=SimComm(topo.complete(1)), lr=0.1)
    calls = []

    def closure():
        calls.append(1)
        p.grad = apply(ms, bs, p.detach())

    for _ in range(10):
        half = z - 0.1 * apply(ms, bs, z)
        z = z - 0.1 * apply(ms, bs, half)
        opt.step(closure)
        torch.testing.assert_close(p.detach(), z, rtol=1e-12, atol=1e-12)
    assert len(calls) == 20  # two operator evaluations per step


def mixing_product(t: topo.Topology, rounds: int, step: int) -> torch.Tensor:
    """W_{r+t-1} ... W_r, r = step * rounds: the gossip phase of iteration `step` (0-based)."""
    out = torch.eye(t.n_workers, dtype=F64)
    for r in range(step * rounds, (step + 1) * rounds):
        out = torch.tensor(t.matrices[r % len(t.matrices)]) @ out
    return out


@pytest.mark.parametrize("rounds", [1, 2])
def test_dposg_and_dpsgda_follow_the_design_recursions_on_n_workers(rounds):
    """DESIGN.md section 3 on 4 workers of a time-varying graph, heterogeneous operators:
    DPOSG  x_hat = mix(x_{k-1}); z_k = x_hat - lr g_{k-1}; g_k = g(z_k); x_k = x_hat - lr g_k
    DPSGDA x_k = mix(x_{k-1}) - lr g(x_{k-1})."""
    n, d, lr, steps = 4, 3, 0.05, 12
    t = topo.one_peer_exponential(n)
    ms, bs = linear_operator(n, d, seed=11, hetero=0.7)
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(12), dtype=F64).repeat(n, 1)

    p = x0.clone().requires_grad_(True)
    opt = DPOSG([p], comm=SimComm(t), lr=lr, rounds=rounds)
    x, g_prev = x0.clone(), apply(ms, bs, x0)
    p.grad = g_prev.clone()
    opt.step()  # the first step only prepares z_1 from g_0 = g(x_0)
    for k in range(1, steps):
        x_hat = mixing_product(t, rounds, k - 1) @ x
        z = x_hat - lr * g_prev
        torch.testing.assert_close(p.detach(), z, rtol=1e-12, atol=1e-12)
        g_prev = apply(ms, bs, z)
        x = x_hat - lr * g_prev
        p.grad = apply(ms, bs, p.detach())
        opt.step()
        torch.testing.assert_close(opt.iterates()[0], x, rtol=1e-12, atol=1e-12)

    p = x0.clone().requires_grad_(True)
    opt = DPSGDA([p], comm=SimComm(t), lr=lr, rounds=rounds)
    x = x0.clone()
    for k in range(steps):
        x = mixing_product(t, rounds, k) @ x - lr * apply(ms, bs, x)
        p.grad = apply(ms, bs, p.detach())
        opt.step()
        torch.testing.assert_close(p.detach(), x, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(x[0], x[1])  # the workers did differ


# --- the simulator on the analytic games ------------------------------------------------

def make_problem(game="quadratic", n=4, dim=3, het=0.5, noise=0.3, seed=0, batch=4,
                 topology=None):
    g = build_analytic_game(game, n_workers=n, dim=dim, samples_per_worker=16,
                            heterogeneity=het, noise=noise, seed=seed)
    t = topology if topology is not None else topo.ring(n)
    comm = SimComm(t)
    workers = Workers(g, comm.workers, seed, batch)
    return g, comm, workers


def build_opt(name, workers, comm, lr=None, **kw):
    lr = lr if lr is not None else (0.02 if name in ADAM else 0.05)
    groups = [{"params": [workers.params[k]]} for k in workers.names]
    return optimizer_class(name)(groups, comm=comm, lr=lr, **kw)


def metrics(game, comm, workers, opt):
    it = opt.iterates()
    x_bar = dict(zip(workers.names, comm.average(it), strict=True))
    op = game.full_operator(x_bar)
    grad_sq = float(sum(v.double().pow(2).sum() for v in op.values()))
    cons = float(sum((x.double() - x_bar[k].double()).pow(2).flatten(1).sum(1).mean()
                     for k, x in zip(workers.names, it, strict=True)))
    sol = game.solution()
    dist = float(sum((x_bar[k] - sol[k]).double().pow(2).sum() for k in sol))
    return grad_sq, cons, dist


def snapshot(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def restore(blob: bytes):
    return torch.load(io.BytesIO(blob), weights_only=False)


CASES = [(name, {}) for name in ALGORITHMS] + [
    ("dpoadam", {"moments": "mixed"}), ("dpadam", {"moments": "mixed"}),
    ("dposg", {"rounds": 2}),
]


CASE_IDS = ["-".join([n, *map(str, k.values())]) for n, k in CASES]


@pytest.mark.parametrize("name, kw", CASES, ids=CASE_IDS)
def test_state_dict_round_trip_resumes_bit_identically(name, kw):
    k_steps = 5
    topology = topo.one_peer_exponential(4)  # time-varying: the step index matters too
    game, comm, workers = make_problem(topology=topology)
    opt = build_opt(name, workers, comm, **kw)
    for _ in range(k_steps):
        opt.step(workers.compute_grads)
    saved_opt, saved_workers = snapshot(opt.state_dict()), snapshot(workers.state_dict())
    for _ in range(k_steps):
        opt.step(workers.compute_grads)
    straight = [p.detach().clone() for p in workers.params.values()]
    straight_it = [x.clone() for x in opt.iterates()]

    _, comm2, workers2 = make_problem(topology=topology)
    opt2 = build_opt(name, workers2, comm2, **kw)
    workers2.load_state_dict(restore(saved_workers))
    opt2.load_state_dict(restore(saved_opt))
    assert opt2.iteration == k_steps
    for _ in range(k_steps):
        opt2.step(workers2.compute_grads)
    assert opt2.iteration == 2 * k_steps
    for a, b in zip(straight, workers2.params.values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight_it, opt2.iterates(), strict=True):
        assert torch.equal(a, b)
    # and the run moved: the check above is not comparing two untouched starting points
    assert not torch.equal(straight[0], restore(saved_workers)["params"][workers.names[0]])


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_state_is_cloned_never_aliased(name):
    _, comm, workers = make_problem()
    opt = build_opt(name, workers, comm)
    for _ in range(2):
        opt.step(workers.compute_grads)
    for p in workers.params.values():
        ptrs = [p.data_ptr()] + [v.data_ptr() for v in opt.state[p].values()
                                 if torch.is_tensor(v) and v.dim() > 0]
        assert len(ptrs) == len(set(ptrs)), f"{name}: state buffers share storage"


# --- argument checks ---------------------------------------------------------------------

def _param():
    return torch.zeros(2, 3, requires_grad=True)


ERRORS = [
    (DPOSG, dict(lr=0.0), "Invalid learning rate"),
    (DPOSG, dict(lr=-1e-3), "Invalid learning rate"),
    (DPOAdam, dict(lr=float("nan")), "Invalid learning rate"),
    (DPOSG, dict(rounds=0), "Invalid number of gossip rounds"),
    (DPSGDA, dict(rounds=-2), "Invalid number of gossip rounds"),
    (DPOSG, dict(rounds=1.5), "Invalid number of gossip rounds"),
    (DPOSG, dict(rounds="2"), "Invalid number of gossip rounds"),
    (DPOSG, dict(rounds=True), "Invalid number of gossip rounds"),
    (DPOAdam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    (DPOAdam, dict(betas=(-0.1, 0.999)), "Invalid beta parameter at index 0"),
    (DPAdam, dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1"),
    (DPOAdam, dict(eps=-1e-8), "Invalid epsilon value"),
    (DPOAdam, dict(moments="shared"), "Invalid moments"),
    (DPOSG, dict(moments="mixed"), "moments='mixed'"),
    (DPSGDA, dict(moments="mixed"), "moments='mixed'"),
    (ALGORITHMS["cpoadam"], dict(moments="mixed"), "moments='mixed'"),
    (DExtraGrad, dict(moments="mixed"), "moments='mixed'"),
]


@pytest.mark.parametrize("cls, kw, message", ERRORS,
                         ids=[f"{c.__name__}-{k}" for c, k, _ in ERRORS])
def test_bad_arguments(cls, kw, message):
    with pytest.raises(ConfigError, match=message) as info:
        cls([_param()], comm=SimComm(topo.ring(2)), **kw)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)  # catchable like torch.optim's own errors


def test_bad_group_arguments():
    comm = SimComm(topo.ring(2))
    with pytest.raises(ConfigError, match="Invalid learning rate: -0.5"):
        DPOSG([{"params": [_param()], "lr": -0.5}, {"params": [_param()]}], comm=comm, lr=0.1)
    with pytest.raises(ConfigError, match="same rounds"):
        DPOSG([{"params": [_param()], "rounds": 2}, {"params": [_param()]}], comm=comm)


def test_comm_must_be_a_communicator():
    with pytest.raises(ConfigError, match="Communicator, got str"):
        DPOSG([_param()], comm="ring", lr=0.1)
    with pytest.raises(ConfigError, match="Communicator, got Topology"):
        DPOSG([_param()], comm=topo.ring(2), lr=0.1)


def test_dextragrad_needs_a_closure():
    p = _param()
    opt = DExtraGrad([p], comm=SimComm(topo.ring(2)), lr=0.1)
    p.grad = torch.ones_like(p)
    with pytest.raises(ConfigError, match="closure"):
        opt.step()
    assert torch.equal(p, torch.zeros(2, 3))  # nothing moved


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown algorithm 'adamw'") as info:
        optimizer_class("adamw")
    for name in ALGORITHMS:
        assert name in str(info.value)
    assert optimizer_class("DPOSG") is DPOSG


def test_missing_gradient_is_reported():
    p, q = _param(), _param()
    opt = DPOSG([p, q], comm=SimComm(topo.ring(2)), lr=0.1)
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="gradient"):
        opt.step()


# --- per-player step sizes and mixed moments -------------------------------------------

@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_per_player_learning_rates(name):
    """One step with a constant operator moves each group by its own lr (Adam: lr * g/(|g|+eps),
    which is about lr * sign(g))."""
    lrs = (0.1, 0.003)
    gx = torch.tensor([[0.5, -2.0, 1.0]], dtype=F64)
    gy = torch.tensor([[-1.5, 0.25]], dtype=F64)
    x = torch.zeros(1, 3, dtype=F64, requires_grad=True)
    y = torch.ones(1, 2, dtype=F64, requires_grad=True)
    opt = optimizer_class(name)(
        [{"params": [x], "lr": lrs[0]}, {"params": [y], "lr": lrs[1]}],
        comm=SimComm(topo.complete(1)), lr=1.0)

    def closure():
        x.grad, y.grad = gx.clone(), gy.clone()

    opt.step(closure)
    for p, p0, g, lr in ((x, 0.0, gx, lrs[0]), (y, 1.0, gy, lrs[1])):
        direction = g / (g.abs() + 1e-8) if name in ADAM else g
        torch.testing.assert_close(p.detach() - p0, -lr * direction, rtol=1e-9, atol=1e-15)


def _adam_pair(grads_fn, n=4):
    """DPOAdam with local and with mixed moments from the same start, two steps each;
    returns the mixed run's comm, both states, both parameters and the mixed run's grads."""
    comm_l, comm_m = SimComm(topo.ring(n)), SimComm(topo.ring(n))
    start = torch.randn(1, 6, generator=torch.Generator().manual_seed(8), dtype=F64)
    pl = start.repeat(n, 1).requires_grad_(True)
    pm = start.repeat(n, 1).requires_grad_(True)
    local = DPOAdam([pl], comm=comm_l, lr=0.01, moments="local")
    mixed = DPOAdam([pm], comm=comm_m, lr=0.01, moments="mixed")
    grads_m = []
    for k in range(2):
        for p, opt in ((pl, local), (pm, mixed)):
            p.grad = grads_fn(p.detach(), k)
            if opt is mixed:
                grads_m.append(p.grad.clone())
            opt.step()
    return comm_m, local.state[pl], mixed.state[pm], pl, pm, grads_m


def test_mixed_moments_gossip_the_adam_moments():
    shifts = torch.randn(4, 6, generator=torch.Generator().manual_seed(9), dtype=F64) * 3

    def grads(p, k):  # heterogeneous workers: each has its own shift
        return p * (k + 1) + shifts

    comm, s_local, s_mixed, pl, pm, g = _adam_pair(grads)
    for key in ("exp_avg", "exp_avg_sq"):
        assert not torch.allclose(s_local[key], s_mixed[key])
    assert not torch.allclose(pl, pm)
    # by hand: the moments are updated with the worker's own gradient, then gossiped with x
    w = torch.tensor(comm.topology.matrices[0])
    b1, b2 = 0.9, 0.999
    m = w @ ((1 - b1) * g[0])
    v = w @ ((1 - b2) * g[0] ** 2)
    m = w @ (b1 * m + (1 - b1) * g[1])
    v = w @ (b2 * v + (1 - b2) * g[1] ** 2)
    torch.testing.assert_close(s_mixed["exp_avg"], m, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(s_mixed["exp_avg_sq"], v, rtol=1e-12, atol=1e-15)
    # the local run keeps each worker's own moments, which a gossip round would change
    assert not torch.allclose(s_local["exp_avg"], w @ s_local["exp_avg"])


def test_mixed_moments_equal_local_when_workers_agree():
    comm, s_local, s_mixed, pl, pm, _ = _adam_pair(lambda p, k: torch.sin(p) + k)
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(s_local[key], s_mixed[key], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(pl, pm, rtol=1e-12, atol=1e-15)
    # gossip carried three buffers per parameter (x, m, v): 2 steps x 8 directed edges of the
    # 4-ring x 3 buffers x 6 float64 numbers
    assert comm.traffic.bytes == 2 * 8 * 3 * 6 * 8


# --- what the theory predicts -------------------------------------------------------------

def test_noise_free_iid_game_gives_the_exact_operator_on_every_sample():
    """The premise of the convergence tests below: noise 0 and heterogeneity 0 make every
    minibatch operator the full-data operator, and heterogeneity alone makes workers differ."""
    gen = torch.Generator().manual_seed(10)
    point = {k: torch.randn(4, generator=gen) for k in ("x", "y")}
    for het, exact in ((0.0, True), (1.0, False)):
        game, _, _ = make_problem("bilinear", n=3, dim=4, het=het, noise=0.0)
        full = game.full_operator(point)
        close = []
        for w in range(3):
            op = game.operator(point, game.sample(w, gen, 3))
            close.append(all(torch.allclose(op[k], full[k].to(op[k]), atol=1e-5) for k in op))
        assert all(close) if exact else not any(close), (het, close)
    # and with noise two batches of one worker differ
    game, _, _ = make_problem("bilinear", n=2, dim=4, het=0.0, noise=0.5)
    a = game.operator(point, game.sample(0, gen, 2))
    b = game.operator(point, game.sample(0, gen, 2))
    assert not torch.allclose(a["x"], b["x"])


def _run(game, comm, workers, opt, iters):
    start = metrics(game, comm, workers, opt)
    consensus = []
    for _ in range(iters):
        opt.step(workers.compute_grads)
        consensus.append(metrics(game, comm, workers, opt)[1])
    return start, metrics(game, comm, workers, opt), sum(consensus) / iters


def test_optimism_converges_on_bilinear_where_descent_ascent_diverges():
    results = {}
    for name in ("dposg", "dpsgda"):
        game, comm, workers = make_problem("bilinear", n=4, dim=4, het=0.0, noise=0.0)
        opt = build_opt(name, workers, comm, lr=0.3, rounds=1)
        start = metrics(game, comm, workers, opt)
        for _ in range(300):
            opt.step(workers.compute_grads)
        results[name] = (start, metrics(game, comm, workers, opt))
    (g0, _, d0), (g1, _, d1) = results["dposg"]
    assert g0 > 1.0
    assert g1 < g0 * 1e-6, (g0, g1)
    assert d1 < d0 * 1e-6
    (g0, _, d0), (g1, _, d1) = results["dpsgda"]
    assert g1 > g0 * 1e3, (g0, g1)  # spirals out: |z - z*| grows like sqrt(1 + lr^2)^k
    assert d1 > d0 * 1e3


def test_more_gossip_rounds_give_smaller_consensus_distance():
    out = {}
    for rounds in (1, 3):
        game, comm, workers = make_problem("bilinear", n=8, dim=4, het=1.0, noise=0.0)
        opt = build_opt("dposg", workers, comm, lr=0.05, rounds=rounds)
        _, end, mean_consensus = _run(game, comm, workers, opt, 200)
        out[rounds] = (end[1], mean_consensus, comm.traffic.gossip_rounds)
    assert out[1][2] == 200 and out[3][2] == 600
    assert out[1][0] > 1e-3  # heterogeneous shards: the workers do disagree
    assert out[3][0] < 0.5 * out[1][0], out  # final consensus distance
    assert out[3][1] < 0.5 * out[1][1], out  # average over the run


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_method_converges_on_the_strongly_monotone_quadratic(name):
    game, comm, workers = make_problem("quadratic", n=4, dim=3, het=0.1, noise=0.0)
    kw = dict(lr=0.03, betas=(0.5, 0.999)) if name in ADAM else dict(lr=0.1)
    opt = build_opt(name, workers, comm, **kw)
    start = metrics(game, comm, workers, opt)
    for _ in range(300):
        opt.step(workers.compute_grads)
    end = metrics(game, comm, workers, opt)
    assert start[2] > 1.0
    assert end[2] < start[2] * 1e-3, (start, end)
    assert end[0] < start[0] * 1e-3
    assert end[1] < 1e-3  # consensus


def test_fused_adam_kernel_agrees_with_torchs_default_kernel(monkeypatch):
    """adam_updates runs torch's fused kernel on CPU; the maths is the default kernel's."""
    import gossipgan.optim.functional as functional

    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(8, 5, 3, generator=gen), torch.randn(8, 4, generator=gen)]

    def three_steps() -> list[torch.Tensor]:
        m, v = [torch.zeros_like(g) for g in grads], [torch.zeros_like(g) for g in grads]
        steps = [torch.zeros(()) for _ in grads]
        out = []
        for k in range(3):
            out += functional.adam_updates([g * (k + 1) for g in grads], m, v, steps, lr=0.01,
                                           betas=(0.5, 0.999), eps=1e-8)
        return out + m + v

    kernels = []
    torch_adam = functional._torch_adam
    monkeypatch.setattr(functional, "_torch_adam",
                        lambda *a, **kw: kernels.append(kw["fused"]) or torch_adam(*a, **kw))
    fused = three_steps()
    monkeypatch.setattr(functional, "FUSED_DEVICES", ())
    default = three_steps()
    assert kernels == [True] * 3 + [None] * 3
    for a, b in zip(fused, default, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_comm_phases_says_how_often_a_step_communicates(algo):
    """The network benchmark predicts traffic from `comm_phases`: it must match a real step."""
    cls = optimizer_class(algo)
    comm = SimComm(topo.ring(4))
    p = torch.randn(4, 3, dtype=F64).requires_grad_(True)
    opt = cls([p], comm=comm, lr=0.01, initial="any")  # random rows: workers apart

    def closure():
        p.grad = p.detach().clone()

    for _ in range(3):  # past the first step, which optimistic methods treat specially
        opt.step(closure)
    before = comm.traffic.gossip_rounds + comm.traffic.allreduces
    opt.step(closure)
    assert comm.traffic.gossip_rounds + comm.traffic.allreduces - before == cls.comm_phases


@pytest.mark.parametrize("compression", ["none", "topk:0.5", "qsgd:2"])
@pytest.mark.parametrize("moments", ["local", "mixed"])
@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_communicate_sends_what_a_step_sends(algo, moments, compression):
    """`communicate()` times the network for the benchmark: the same messages, bytes, rounds
    and all-reduces as a real step, on a time-varying schedule (the rounds must line up);
    compressed gossip (static graphs only) on a ring: the compressed bytes."""
    cls = optimizer_class(algo)
    if moments == "mixed" and (cls.direction != "adam" or cls.centralized):
        pytest.skip("moments='mixed' applies to decentralized Adam methods only")
    if compression != "none" and cls.centralized:
        pytest.skip("compression applies to decentralized methods only")
    kwargs = {"moments": moments} if cls.direction == "adam" else {}
    if compression != "none":
        kwargs["compression"] = compression

    def traffic_of(action) -> dict:
        comm = SimComm(topo.one_peer_exponential(4) if compression == "none" else topo.ring(4))
        p = torch.randn(4, 3, dtype=F64).requires_grad_(True)
        opt = cls([p], comm=comm, lr=0.01, rounds=3, initial="any", **kwargs)  # rows apart

        def closure():
            p.grad = p.detach().clone()

        for _ in range(2):
            opt.step(closure)
        before = comm.traffic.state_dict()
        action(opt, closure)
        after = comm.traffic.state_dict()
        return {k: after[k] - before[k] for k in after if k != "seconds"}

    stepped = traffic_of(lambda opt, closure: opt.step(closure))
    alone = traffic_of(lambda opt, closure: opt.communicate())
    assert alone == stepped and stepped["bytes"] > 0
    if not cls.centralized:  # and the byte count the alpha-beta prediction uses
        opt = cls([torch.zeros(4, 3, dtype=F64)], comm=SimComm(topo.ring(4)), lr=0.01,
                  **kwargs)
        assert stepped["bytes"] == stepped["messages"] * opt.message_bytes()
