"""Shared machinery of the analytic games: argument checks, per-worker shards, sampling.

Every analytic game is a finite sum over `n_workers * samples_per_worker` samples, one shard of
`samples_per_worker` per worker. A sample is a small dict of vectors and scalars, never a d x d
matrix, so the data stay O(N m d) in memory; the d x d parts shared by every sample are
constants of the game. Each game's operator is linear in the per-sample data, so the exact
operator over the union of all shards is the operator of the dataset means: `full_operator`
evaluates it from means accumulated in float64 from the data as stored (after the cast to
`dtype`), which is why `solution()` is exact for the finite-sum game and not only for the
distribution the data were drawn from.

The per-sample coupling matrix is `A_j = A_0 + U_j[0] V_j[0]^T + U_j[1] V_j[1]^T`: row 0 is the
worker's heterogeneity shift (`heterogeneity * p_w q_w^T`, p, q ~ N(0, I/d), so of spectral
norm about `heterogeneity`), row 1 the sample's noise (`noise * u_j v_j^T`, u, v ~ N(0, I): a
rank-one stand-in for a dense Gaussian E_j with the same operator-noise variance
E|E_j y|^2 = d |y|^2). `A_0` absorbs both dataset means, so the mean coupling is the designed
`A` whatever the heterogeneity and noise.

Random draws come from separate streams (design, heterogeneity, noise, init), each seeded
from `seed`, so changing `heterogeneity` or `noise` leaves the other draws (and with them the
designed solution) unchanged.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from gossipgan.errors import ConfigError
from gossipgan.games.base import Batch, Game, Params

DESIGN, HETERO, NOISE, INIT = range(4)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_MAX_SEED = 2**60


def check_int(what: str, value: object, minimum: int) -> int:
    """`value` as an int >= minimum, else a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(what: str, value: object, minimum: float, strict: bool = False) -> float:
    """`value` as a finite float >= minimum (> minimum if strict), else a ConfigError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value))
    ok = ok and (float(value) > minimum if strict else float(value) >= minimum)
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ConfigError(f"{what} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_dtype(value: object) -> torch.dtype:
    """torch.float32 / torch.float64 (or their names), else a ConfigError."""
    if isinstance(value, str) and value in _DTYPES:
        return _DTYPES[value]
    if value in _DTYPES.values():
        return value  # type: ignore[return-value]
    raise ConfigError(f"dtype must be one of float32, float64, got {value!r}")


def stream(seed: int, which: int) -> torch.Generator:
    """An independent CPU generator for one purpose (DESIGN, HETERO, NOISE, INIT) of `seed`."""
    return torch.Generator().manual_seed(4 * seed + which)


def orthogonal(dim: int, generator: torch.Generator) -> Tensor:
    """A Haar-random orthogonal float64 matrix (QR of a Gaussian, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).masked_fill(torch.diagonal(r) == 0, 1.0)


class ShardedGame(Game):
    """Base of the analytic games: players x (min) and y (max), each a vector of size `dim`.

    Subclasses fill `self._data` (per-sample tensors of shape [n_workers, m, ...]), the
    constant `self._A` (the A_0 of the module doc) and `self._means` (float64 dataset means).
    """

    def __init__(
        self,
        n_workers: int,
        dim: int,
        samples_per_worker: int,
        heterogeneity: float,
        noise: float,
        seed: int,
        dtype: torch.dtype | str,
        device: torch.device | str,
    ) -> None:
        self.n_workers = check_int("n_workers", n_workers, 1)
        self.dim = check_int("dim", dim, 1)
        self.samples_per_worker = check_int("samples_per_worker", samples_per_worker, 1)
        self.heterogeneity = check_float("heterogeneity", heterogeneity, 0.0)
        self.noise = check_float("noise", noise, 0.0)
        self.seed = check_int("seed", seed, 0)
        if self.seed >= _MAX_SEED:
            raise ConfigError(f"seed must be < 2**60, got {seed}")
        self.shard_size = self.samples_per_worker  # read by the training loop for epochs
        self.dtype = check_dtype(dtype)
        self.device = torch.device(device)
        self._data: dict[str, Tensor] = {}
        self._means: dict[str, Tensor] = {}
        self._A = torch.zeros(0)
        self._solution: Params = {}

    # ---- construction helpers (float64 in, stored data out) ----

    def _store(self, name: str, value: Tensor) -> Tensor:
        """Store per-sample data in the game's dtype; return it as stored, back in float64."""
        assert value.shape[:2] == (self.n_workers, self.samples_per_worker), value.shape
        self._data[name] = value.to(self.dtype).to(self.device)
        return self._data[name].to(torch.float64).cpu()

    def _make_coupling(self, target: Tensor, hetero: torch.Generator,
                       noise: torch.Generator) -> Tensor:
        """Store U, V and A_0 so the dataset-mean coupling is `target`; return it as realized."""
        n, m, d = self.n_workers, self.samples_per_worker, self.dim
        p = torch.randn(n, d, generator=hetero, dtype=torch.float64) / math.sqrt(d)
        q = torch.randn(n, d, generator=hetero, dtype=torch.float64) / math.sqrt(d)
        u = torch.randn(n, m, d, generator=noise, dtype=torch.float64)
        v = torch.randn(n, m, d, generator=noise, dtype=torch.float64)
        shift_u = (self.heterogeneity * p)[:, None].expand(n, m, d)
        shift_v = q[:, None].expand(n, m, d)
        uu = self._store("U", torch.stack([shift_u, self.noise * u], dim=2))
        vv = self._store("V", torch.stack([shift_v, v], dim=2))
        low_rank = torch.einsum("nmri,nmrj->ij", uu, vv) / (n * m)
        self._A = (target - low_rank).to(self.dtype).to(self.device)
        return self._A.to(torch.float64).cpu() + low_rank

    def _with_mean(self, name: str, target: Tensor, spread: Tensor) -> Tensor:
        """Store `spread` shifted so its dataset mean is `target`; return the realized mean."""
        stored = self._store(name, target + spread - spread.mean(dim=(0, 1)))
        return stored.mean(dim=(0, 1))

    def _set_solution(self, x: Tensor, y: Tensor) -> None:
        self._solution = {"x": x.to(self.dtype).to(self.device),
                          "y": y.to(self.dtype).to(self.device)}

    def _mean(self, name: str, like: Tensor) -> Tensor:
        """A float64 dataset mean, cast to the dtype and device of `like`."""
        return self._means[name].to(dtype=like.dtype, device=like.device)

    # ---- the shared coupling term ----

    def _coupling(self, batch: Batch, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(mean_j A_j y, mean_j A_j^T x) over the batch, without forming any A_j."""
        u, v = batch["U"], batch["V"]
        ay = self._A @ y + torch.einsum("bri,br->i", u, v @ y) / u.shape[0]
        atx = self._A.T @ x + torch.einsum("bri,br->i", v, u @ x) / u.shape[0]
        return ay, atx

    def _full_coupling(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(A_bar y, A_bar^T x) with the dataset-mean coupling; x, y may carry leading axes."""
        a = self._mean("A", x)
        return y @ a.T, x @ a

    # ---- the Game interface ----

    def init_params(self, seed: int) -> Params:
        """Standard normal x and y (norm about sqrt(dim) each), from their own seed stream."""
        gen = stream(check_int("seed", seed, 0), INIT)
        x = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        y = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        return {"x": x.to(self.dtype).to(self.device), "y": y.to(self.dtype).to(self.device)}

    def player(self, name: str) -> str:
        players = {"x": "min", "y": "max"}
        if name not in players:
            raise ConfigError(f"unknown parameter {name!r}; known: x, y")
        return players[name]

    def shard(self, worker: int) -> Batch:
        """All of `worker`'s samples, as one batch."""
        if isinstance(worker, bool) or not isinstance(worker, int) or not (
                0 <= worker < self.n_workers):
            raise ConfigError(f"worker must be in 0..{self.n_workers - 1}, got {worker!r}")
        return {k: v[worker] for k, v in self._data.items()}

    def sample(self, worker: int, generator: torch.Generator, batch_size: int) -> Batch:
        """`batch_size` samples of `worker`'s shard, drawn with replacement from `generator`."""
        shard = self.shard(worker)
        batch_size = check_int("batch_size", batch_size, 1)
        idx = torch.randint(self.samples_per_worker, (batch_size,), generator=generator,
                            device=generator.device).to(self.device)
        return {k: v[idx] for k, v in shard.items()}

    def large_batch(self, generator: torch.Generator, size: int) -> Batch:
        """The whole dataset if `size` covers it, else `size` distinct samples of the union."""
        size = check_int("size", size, 1)
        total = self.n_workers * self.samples_per_worker
        flat = {k: v.reshape(total, *v.shape[2:]) for k, v in self._data.items()}
        if size >= total:
            return flat
        idx = torch.randperm(total, generator=generator, device=generator.device)[:size]
        return {k: v[idx.to(self.device)] for k, v in flat.items()}

    def solution(self) -> Params:
        """The exact solution of the finite-sum game (solved in float64), in the game dtype."""
        return {k: v.clone() for k, v in self._solution.items()}

    def distance_to_solution(self, params: Params) -> Tensor:
        """||x - x*||^2 + ||y - y*||^2; params may carry leading (worker) axes."""
        return sum(((params[k] - s.to(params[k])) ** 2).sum(-1)
                   for k, s in self._solution.items())

    def full_operator(self, params: Params) -> Params:
        """The exact operator over the union of all shards; params may carry leading axes."""
        raise NotImplementedError

    def eval_operator(self, params: Params, batch: Batch) -> Params:
        """Exact: the operator over every shard, whatever the batch."""
        return self.full_operator(params)
