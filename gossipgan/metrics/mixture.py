"""Mode-collapse metrics for the 2-D Gaussian mixtures (PacGAN / VEEGAN definitions).

- ``hq_rate``: fraction of samples within 3 standard deviations (Euclidean distance
  <= 3 std) of their nearest mode centre — "high-quality" samples.
- ``modes_covered``: number of modes that are the nearest mode of at least one high-quality
  sample.

PacGAN measures 2,500 samples (MIXTURE_SAMPLES). No classifier is involved: the mixture's
modes and std are known exactly (`gossipgan.data.mixture_modes` / `mixture_std`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gossipgan.data import MIXTURES, mixture_modes, mixture_std
from gossipgan.errors import ConfigError, check_choice

MIXTURE_METRICS = ("hq_rate", "modes_covered")
MIXTURE_SAMPLES = 2500
HQ_STDS = 3.0


def mode_coverage(points: Tensor, modes: Tensor, std: float,
                  threshold: float = HQ_STDS) -> dict[str, float | int]:
    """hq_rate and modes_covered of `points` [n, 2] for mode centres `modes` [k, 2]."""
    if points.ndim != 2 or points.shape[1] != modes.shape[1]:
        raise ConfigError(f"expected {modes.shape[1]}-D points [n, {modes.shape[1]}], got "
                          f"shape {tuple(points.shape)}")
    if len(points) == 0:
        raise ConfigError("mode coverage needs at least one sample, got 0")
    dist, nearest = torch.cdist(points.detach().cpu().double(), modes.double()).min(dim=1)
    high_quality = dist <= threshold * std
    covered = torch.unique(nearest[high_quality]).numel()
    return {"hq_rate": float(high_quality.double().mean()), "modes_covered": int(covered)}


def mixture_metrics(name: str, points: Tensor) -> dict[str, float | int]:
    """hq_rate and modes_covered of `points` for mixture `name` (ring8 or grid25)."""
    check_choice("mixture", name, MIXTURES)
    return mode_coverage(points, mixture_modes(name), mixture_std(name))
