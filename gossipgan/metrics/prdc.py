"""Precision, recall, density and coverage of generated samples in a feature space.

Precision and recall follow Kynkäänniemi et al. 2019 ("Improved Precision and Recall Metric
for Assessing Generative Models"), density and coverage Naeem et al. 2020 ("Reliable Fidelity
and Diversity Metrics for Generative Models"), with the definitions and tie rule of the `prdc`
package (Naeem et al.'s code). With NND_k(x) the distance from x to its k-th nearest
neighbour within its own set (x itself excluded), N real points r and M fake points f:

- precision = (1/M) Σ_f 1[∃ r: d(f, r) < NND_k(r)]  (fakes on the real manifold; fidelity)
- recall    = (1/N) Σ_r 1[∃ f: d(r, f) < NND_k(f)]  (reals on the fake manifold; diversity)
- density   = (1/(kM)) Σ_f Σ_r 1[d(f, r) < NND_k(r)]  (how many real balls hold each fake;
  about 1 when the two sets come from one distribution, above 1 where fakes crowd into dense
  real regions)
- coverage  = (1/N) Σ_r 1[min_f d(r, f) < NND_k(r)]  (real balls that hold any fake)

All four lie in [0, 1] except density, in [0, N/k]; higher is better. The comparison is
strict, as in `prdc`: a point exactly on a ball's sphere is outside it, which is why
identical sets give density exactly 1 (each real ball then holds its centre and its k - 1
nearest neighbours, the k-th lying on the sphere).

Every point is used (no subsampling), so the numbers are deterministic. They depend on the
sample sizes, because the k-NN radii shrink as a set grows: compare values measured with the
same numbers of real and fake points only. Distances are float64 `torch.cdist` in blocks of
at most BLOCK_ELEMENTS entries, so memory is bounded by a block, never the whole N x M matrix
(800 MB for 10,000 x 10,000).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gossipgan.errors import ConfigError

PRDC_METRICS = ("precision", "recall", "density", "coverage")
DEFAULT_K = 5  # both papers' choice
BLOCK_ELEMENTS = 1 << 21  # distances held at once: 16 MB of float64
# torch.cdist computes large blocks as |x|^2 + |y|^2 - 2 x.y, whose rounding depends on the
# block shape, so a distance that is exactly a radius (duplicated points, identical sets)
# can come out a hair below it in one chunking and not in another. Distances within this
# relative margin of a radius count as on the sphere, hence outside: ties then follow the
# strict rule whatever the chunk size. Float64 rounding is many orders of magnitude smaller.
TIE_TOL = 1e-9


def _features(x: Tensor, what: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ConfigError(f"the {what} features must be a 2-D tensor [points, features]; "
                          f"got {shape}")
    return x.detach().to("cpu", torch.float64)


def _check_k(k: int, n: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k (nearest neighbours) must be an integer >= 1; got {k!r}")
    if k >= n:
        raise ConfigError(f"k={k} nearest neighbours need at least {k + 1} points in the "
                          f"{what} set; it has {n}")


def _check_chunk(chunk_size: int | None) -> None:
    if chunk_size is not None and (isinstance(chunk_size, bool)
                                   or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be an integer >= 1 or None; got {chunk_size!r}")


def _blocks(x: Tensor, columns: int, chunk_size: int | None):
    """(start row, rows) blocks of `x` whose distances to `columns` points fit the budget."""
    rows = chunk_size or max(1, BLOCK_ELEMENTS // max(columns, 1))
    for start in range(0, len(x), rows):
        yield start, x[start:start + rows]


def knn_radii(x: Tensor, k: int = DEFAULT_K, *, chunk_size: int | None = None,
              what: str = "") -> Tensor:
    """NND_k of every row of `x` ([N, D]): distance to its k-th nearest other row (float64).

    `chunk_size` rows of distances are held at a time (default: BLOCK_ELEMENTS / N).
    """
    x = _features(x, what or "input")
    _check_k(k, len(x), what or "input")
    _check_chunk(chunk_size)
    # Filled in place: small per-block results kept between the big distance blocks
    # fragment the heap, and resident memory then grows by a block per iteration.
    radii = torch.empty(len(x), dtype=torch.float64)
    for start, block in _blocks(x, len(x), chunk_size):
        # Each row's own point is among its k + 1 smallest, at distance 0 (or a duplicate is:
        # the same value), so the (k + 1)-th smallest is the k-th neighbour's distance.
        d = torch.cdist(block, x)
        radii[start:start + len(block)] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


class PRDC:
    """Precision, recall, density, coverage against a fixed set of real features.

    The real side (centred features, their k-NN radii) is computed once; `__call__(fake)`
    measures a set of fake features [M, D] and returns the four PRDC_METRICS.
    """

    def __init__(self, real: Tensor, k: int = DEFAULT_K, *, chunk_size: int | None = None):
        real = _features(real, "real")
        if not torch.isfinite(real).all():
            raise ConfigError("the real features contain NaN or infinite values")
        self.k, self.chunk_size = k, chunk_size
        # The metrics are translation invariant; centring shrinks |x|^2, hence the rounding
        # of cdist's |x|^2 + |y|^2 - 2 x.y form. Fakes get the same shift.
        self.shift = real.mean(0)
        self.real = real - self.shift
        self.radii = knn_radii(self.real, k, chunk_size=chunk_size, what="real")

    def __call__(self, fake: Tensor) -> dict[str, float]:
        fake = _features(fake, "fake")
        if fake.shape[1] != self.real.shape[1]:
            raise ConfigError(f"the fake features have {fake.shape[1]} dimensions, the real "
                              f"ones {self.real.shape[1]}")
        if not torch.isfinite(fake).all():  # a diverged generator: no meaningful distance
            return dict.fromkeys(PRDC_METRICS, math.nan)
        fake = fake - self.shift
        k, n, m = self.k, len(self.real), len(fake)
        fake_radii = knn_radii(fake, k, chunk_size=self.chunk_size, what="fake")
        real_inside = self.radii * (1 - TIE_TOL)  # d < this: strictly inside (see TIE_TOL)
        fake_inside = fake_radii * (1 - TIE_TOL)
        hits = torch.zeros(m, dtype=torch.int64)  # real balls holding each fake
        recalled = torch.zeros(n, dtype=torch.bool)  # reals inside some fake ball
        nearest = torch.full((n,), math.inf, dtype=torch.float64)  # min_f d(r, f)
        # One pass over the fake x real distances, a block of fake rows at a time.
        for start, block in _blocks(fake, n, self.chunk_size):
            d = torch.cdist(block, self.real)
            hits[start:start + len(block)] = (d < real_inside).sum(1)
            recalled |= (d < fake_inside[start:start + len(block), None]).any(0)
            torch.minimum(nearest, d.min(0).values, out=nearest)  # in place, as in knn_radii
        return {"precision": float((hits > 0).double().mean()),
                "recall": float(recalled.double().mean()),
                "density": float(hits.sum()) / (k * m),
                "coverage": float((nearest < real_inside).double().mean())}


def compute_prdc(real: Tensor, fake: Tensor, k: int = DEFAULT_K, *,
                 chunk_size: int | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` features ([N, D],
    [M, D]); `chunk_size` rows of distances at a time (default: BLOCK_ELEMENTS / columns)."""
    return PRDC(real, k, chunk_size=chunk_size)(fake)
