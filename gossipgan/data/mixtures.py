"""2-D Gaussian mixtures used to study mode collapse (PacGAN / VEEGAN definitions).

- ``ring8``: 8 modes at (cos 2πi/8, sin 2πi/8), i = 0..7, isotropic std 0.01.
- ``grid25``: 25 modes at {−4, −2, 0, 2, 4}², isotropic std 0.05.

Angles are ``2π·i/8`` for i in 0..7, deliberately not ``linspace(0, 2π, 8)``, whose first
and last angles coincide and leave 7 distinct modes. A sample's label is the index of the
mode it was drawn from (the row of :func:`mixture_modes`), modes are picked uniformly.
The metrics module uses :func:`mixture_modes` and :func:`mixture_std` for mode coverage.
"""

from __future__ import annotations

import math

import torch

from gossipgan.errors import check_choice

MIXTURES: tuple[str, ...] = ("ring8", "grid25")
_STD = {"ring8": 0.01, "grid25": 0.05}
# The test split draws from its own stream so it never repeats the training samples.
_TEST_STREAM = 1_000_003


def _modes64(name: str) -> torch.Tensor:
    check_choice("mixture", name, MIXTURES)
    if name == "ring8":
        angles = 2.0 * math.pi * torch.arange(8, dtype=torch.float64) / 8.0
        return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    side = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    return torch.cartesian_prod(side, side)


def mixture_modes(name: str) -> torch.Tensor:
    """Mode centres of mixture `name` as a float32 tensor [k, 2] (k = 8 or 25)."""
    return _modes64(name).to(torch.float32)


def mixture_std(name: str) -> float:
    """Per-coordinate standard deviation of every component of mixture `name`."""
    check_choice("mixture", name, MIXTURES)
    return _STD[name]


def sample_mixture(
    name: str, num_samples: int, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `num_samples` points (float32 [n, 2]) and their mode labels (int64 [n]).

    Deterministic in (`seed`, `split`): "train" and "all" share a stream, "test" uses
    another one so held-out points differ from training points.
    """
    modes = _modes64(name)
    stream = _TEST_STREAM if split == "test" else 0
    gen = torch.Generator().manual_seed(seed + stream)
    labels = torch.randint(len(modes), (num_samples,), generator=gen)
    noise = torch.randn(num_samples, 2, generator=gen, dtype=torch.float64)
    points = modes[labels] + _STD[name] * noise
    return points.to(torch.float32), labels
