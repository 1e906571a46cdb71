"""Analytic stochastic min-max games with a known solution, split over worker shards.

Three games, all with players x (min) and y (max) in R^d and a finite-sum objective
f = mean_j f_j over the samples of all shards (see `analytic_base` for how a sample is stored):

- `BilinearGame`: monotone but not strongly monotone; simultaneous gradient descent-ascent
  diverges on it, optimistic / extragradient methods converge.
- `QuadraticGame`: mu-strongly monotone.
- `MintyGame`: nonconvex-nonconcave, with a Minty solution at the origin.

`heterogeneity` (>= 0) gives each worker its own shifts of the per-sample data (0: every shard
drawn from the same distribution), `noise` (>= 0) the per-sample spread. Neither moves the
global solution: the dataset means of the shifted terms are absorbed into the constants.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor

from gossipgan.errors import ConfigError, check_choice
from gossipgan.games.analytic_base import (
    DESIGN,
    HETERO,
    NOISE,
    ShardedGame,
    check_float,
    orthogonal,
    stream,
)
from gossipgan.games.base import Batch, Params

_F64 = torch.float64


def _spread(n: int, m: int, d: int, het: float, noise: float, g_het: torch.Generator,
            g_noise: torch.Generator) -> Tensor:
    """Per-sample vectors: a worker shift (shared by its shard) plus per-sample noise."""
    shift = torch.randn(n, 1, d, generator=g_het, dtype=_F64).expand(n, m, d)
    return het * shift + noise * torch.randn(n, m, d, generator=g_noise, dtype=_F64)


class BilinearGame(ShardedGame):
    """f(x, y) = mean_j [x^T A_j y + b_j^T x + c_j^T y];  T = (A y + b, -(A^T x + c)).

    The mean coupling A is `coupling` times a random orthogonal matrix (condition number 1),
    so T is monotone with <T(u) - T(v), u - v> = 0: not strongly monotone, and simultaneous
    gradient descent-ascent spirals out (each step multiplies the distance to the solution by
    sqrt(1 + (eta * coupling)^2)). Solution: x* = -A^{-T} c, y* = -A^{-1} b.
    """

    def __init__(self, n_workers: int, dim: int, samples_per_worker: int = 256,
                 heterogeneity: float = 0.0, noise: float = 0.1, seed: int = 0,
                 coupling: float = 1.0, dtype: torch.dtype | str = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(n_workers, dim, samples_per_worker, heterogeneity, noise, seed, dtype,
                         device)
        self.coupling = check_float("coupling", coupling, 0.0, strict=True)
        n, m, d = self.n_workers, self.samples_per_worker, self.dim
        g_design, g_het, g_noise = (stream(self.seed, s) for s in (DESIGN, HETERO, NOISE))
        a = self.coupling * orthogonal(d, g_design)
        x_star = torch.randn(d, generator=g_design, dtype=_F64)
        y_star = torch.randn(d, generator=g_design, dtype=_F64)
        a_bar = self._make_coupling(a, g_het, g_noise)
        spread_b = _spread(n, m, d, self.heterogeneity, self.noise, g_het, g_noise)
        spread_c = _spread(n, m, d, self.heterogeneity, self.noise, g_het, g_noise)
        b_bar = self._with_mean("b", -a @ y_star, spread_b)
        c_bar = self._with_mean("c", -a.T @ x_star, spread_c)
        self._means = {"A": a_bar, "b": b_bar, "c": c_bar}
        self._set_solution(-torch.linalg.solve(a_bar.T, c_bar), -torch.linalg.solve(a_bar, b_bar))

    def operator(self, params: Params, batch: Batch) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._coupling(batch, x, y)
        return {"x": ay + batch["b"].mean(0), "y": -(atx + batch["c"].mean(0))}

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        x, y = params["x"], params["y"]
        ay, _ = self._coupling(batch, x, y)
        f = x @ ay + batch["b"].mean(0) @ x + batch["c"].mean(0) @ y
        return {"loss_min": f, "loss_max": -f}

    def full_operator(self, params: Params) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._full_coupling(x, y)
        return {"x": ay + self._mean("b", x), "y": -(atx + self._mean("c", x))}


class QuadraticGame(ShardedGame):
    """f = mean_j [x^T P_j x / 2 + x^T A_j y - y^T Q_j y / 2 + b_j^T x - c_j^T y].

    T = (P x + A y + b, Q y - A^T x + c), mu-strongly monotone: the coupling cancels in
    <T(u) - T(v), u - v> = dx^T P dx + dy^T Q dy >= mu |u - v|^2 since P, Q >= mu I.
    Per sample P_j = lam_j P_0 + R_j R_j^T with P_0 = mu I + G G^T / d, lam_j > 0 (noise; its
    dataset mean is 1) and R_j = sqrt(heterogeneity) r_w the worker's PSD shift, so every
    P_j is positive definite (likewise Q_j). The solution is drawn first and b, c chosen to
    make it one; `solution()` then re-solves the realized finite-sum system in float64.
    """

    def __init__(self, n_workers: int, dim: int, samples_per_worker: int = 256,
                 heterogeneity: float = 0.0, noise: float = 0.1, seed: int = 0,
                 mu: float = 0.5, dtype: torch.dtype | str = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(n_workers, dim, samples_per_worker, heterogeneity, noise, seed, dtype,
                         device)
        self.mu = check_float("mu", mu, 0.0, strict=True)
        n, m, d = self.n_workers, self.samples_per_worker, self.dim
        g_design, g_het, g_noise = (stream(self.seed, s) for s in (DESIGN, HETERO, NOISE))
        eye = torch.eye(d, dtype=_F64)
        g_p, g_q = (torch.randn(d, d, generator=g_design, dtype=_F64) for _ in range(2))
        self._P = (self.mu * eye + g_p @ g_p.T / d).to(self.dtype).to(self.device)
        self._Q = (self.mu * eye + g_q @ g_q.T / d).to(self.dtype).to(self.device)
        a = torch.randn(d, d, generator=g_design, dtype=_F64) / math.sqrt(d)
        x_star = torch.randn(d, generator=g_design, dtype=_F64)
        y_star = torch.randn(d, generator=g_design, dtype=_F64)
        a_bar = self._make_coupling(a, g_het, g_noise)
        p_bar = self._curvature("lam", "R", self._P, g_het, g_noise)
        q_bar = self._curvature("kap", "S", self._Q, g_het, g_noise)
        spread_b = _spread(n, m, d, self.heterogeneity, self.noise, g_het, g_noise)
        spread_c = _spread(n, m, d, self.heterogeneity, self.noise, g_het, g_noise)
        b_bar = self._with_mean("b", -(p_bar @ x_star + a_bar @ y_star), spread_b)
        c_bar = self._with_mean("c", a_bar.T @ x_star - q_bar @ y_star, spread_c)
        self._means = {"A": a_bar, "P": p_bar, "Q": q_bar, "b": b_bar, "c": c_bar}
        system = torch.cat([torch.cat([p_bar, a_bar], 1), torch.cat([-a_bar.T, q_bar], 1)], 0)
        z = torch.linalg.solve(system, -torch.cat([b_bar, c_bar]))
        self._set_solution(z[:d], z[d:])

    def _curvature(self, scale_key: str, shift_key: str, base: Tensor, g_het: torch.Generator,
                   g_noise: torch.Generator) -> Tensor:
        """Store lam_j and R_j of P_j = lam_j P_0 + R_j R_j^T; return the realized mean P."""
        n, m, d = self.n_workers, self.samples_per_worker, self.dim
        r = torch.randn(n, 1, d, generator=g_het, dtype=_F64).expand(n, m, d) / math.sqrt(d)
        lam = torch.exp(self.noise * torch.randn(n, m, generator=g_noise, dtype=_F64))
        lam = self._store(scale_key, lam / lam.mean())
        shift = self._store(shift_key, math.sqrt(self.heterogeneity) * r)
        psd = torch.einsum("nmi,nmj->ij", shift, shift) / (n * m)
        return lam.mean() * base.to(_F64).cpu() + psd

    def _curv(self, batch: Batch, scale_key: str, shift_key: str, base: Tensor,
              z: Tensor) -> Tensor:
        """mean_j (lam_j P_0 + R_j R_j^T) z over the batch."""
        r = batch[shift_key]
        return batch[scale_key].mean(0) * (base @ z) + torch.einsum("bi,b->i", r, r @ z) / len(r)

    def operator(self, params: Params, batch: Batch) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._coupling(batch, x, y)
        px = self._curv(batch, "lam", "R", self._P, x)
        qy = self._curv(batch, "kap", "S", self._Q, y)
        return {"x": px + ay + batch["b"].mean(0), "y": qy - atx + batch["c"].mean(0)}

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        x, y = params["x"], params["y"]
        ay, _ = self._coupling(batch, x, y)
        px = self._curv(batch, "lam", "R", self._P, x)
        qy = self._curv(batch, "kap", "S", self._Q, y)
        f = (x @ px - y @ qy) / 2 + x @ ay + batch["b"].mean(0) @ x - batch["c"].mean(0) @ y
        return {"loss_min": f, "loss_max": -f}

    def full_operator(self, params: Params) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._full_coupling(x, y)
        px, qy = x @ self._mean("P", x), y @ self._mean("Q", x)  # P, Q symmetric
        return {"x": px + ay + self._mean("b", x), "y": qy - atx + self._mean("c", x)}


# phi(u) = u^2 + 3 sin^2 u. The 3 makes phi'' = 2 + 6 cos 2u negative near u = pi/2 (about
# 39% of the line), while u phi'(u) = 2u^2 + 3u sin 2u stays >= 0: 2 + 3 sin(2u)/u >= 0.69.
_SIN_WEIGHT = 3.0


def _potential(u: Tensor) -> Tensor:
    return (u**2 + _SIN_WEIGHT * torch.sin(u) ** 2).sum(-1)


def _potential_grad(u: Tensor) -> Tensor:
    return 2 * u + _SIN_WEIGHT * torch.sin(2 * u)


class MintyGame(ShardedGame):
    """f(x, y) = mean_j [a_j phi(x) + x^T A_j y - a_j phi(y)],  phi(u) = sum_i u_i^2 + 3 sin^2 u_i.

    Nonconvex-nonconcave: phi'' = 2 + 6 cos(2u) < 0 for cos(2u) < -1/3 (e.g. u = pi/2), so
    f(., y) is nonconvex and f(x, .) nonconcave, and T is not monotone. Yet phi is star-convex
    about 0 and the coupling cancels in <T(w), w> = a (<phi'(x), x> + <phi'(y), y>) >= 0
    (in fact >= 0.69 a |w|^2), so w* = 0 solves the Minty variational inequality
    <T(w), w - w*> >= 0 for all w, and is the only zero of T. a_j = scale * exp(heterogeneity
    g_w + noise e_j) > 0 and A_j (mean: `coupling` times an orthogonal matrix) vary by worker
    and sample; the solution stays at 0 for every worker.

    The construction is ours. The condition it satisfies is the "coherence" / Minty condition
    of Mertikopoulos et al., "Optimistic mirror descent in saddle-point problems: going the
    extra (gradient) mile" (ICLR 2019), and the Minty VI assumption of Liu et al. (2020), the
    decentralized parallel optimistic GAN training paper this project implements.
    """

    def __init__(self, n_workers: int, dim: int, samples_per_worker: int = 256,
                 heterogeneity: float = 0.0, noise: float = 0.1, seed: int = 0,
                 coupling: float = 1.0, scale: float = 1.0,
                 dtype: torch.dtype | str = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(n_workers, dim, samples_per_worker, heterogeneity, noise, seed, dtype,
                         device)
        self.coupling = check_float("coupling", coupling, 0.0)
        self.scale = check_float("scale", scale, 0.0, strict=True)
        n, m, d = self.n_workers, self.samples_per_worker, self.dim
        g_design, g_het, g_noise = (stream(self.seed, s) for s in (DESIGN, HETERO, NOISE))
        a_bar = self._make_coupling(self.coupling * orthogonal(d, g_design), g_het, g_noise)
        log_a = (self.heterogeneity * torch.randn(n, 1, generator=g_het, dtype=_F64)
                 + self.noise * torch.randn(n, m, generator=g_noise, dtype=_F64))
        a = self._store("a", self.scale * torch.exp(log_a))
        self._means = {"A": a_bar, "a": a.mean()}
        self._set_solution(torch.zeros(d, dtype=_F64), torch.zeros(d, dtype=_F64))

    def operator(self, params: Params, batch: Batch) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._coupling(batch, x, y)
        a = batch["a"].mean(0)
        return {"x": a * _potential_grad(x) + ay, "y": a * _potential_grad(y) - atx}

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        x, y = params["x"], params["y"]
        ay, _ = self._coupling(batch, x, y)
        f = batch["a"].mean(0) * (_potential(x) - _potential(y)) + x @ ay
        return {"loss_min": f, "loss_max": -f}

    def full_operator(self, params: Params) -> Params:
        x, y = params["x"], params["y"]
        ay, atx = self._full_coupling(x, y)
        a = self._mean("a", x)
        return {"x": a * _potential_grad(x) + ay, "y": a * _potential_grad(y) - atx}


ANALYTIC_GAMES: dict[str, type[ShardedGame]] = {
    "bilinear": BilinearGame,
    "quadratic": QuadraticGame,
    "minty": MintyGame,
}


def build_analytic_game(name: str, **kwargs: object) -> ShardedGame:
    """The analytic game `name` built from keyword arguments; ConfigError on any bad one."""
    cls = ANALYTIC_GAMES[check_choice("analytic game", name, ANALYTIC_GAMES)]
    allowed = list(inspect.signature(cls.__init__).parameters)[1:]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)} for analytic game "
                          f"{name!r}; allowed: {', '.join(allowed)}")
    missing = [p for p in ("n_workers", "dim") if p not in kwargs]
    if missing:
        raise ConfigError(f"analytic game {name!r} needs {', '.join(missing)}")
    return cls(**kwargs)  # type: ignore[arg-type]
