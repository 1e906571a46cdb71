"""Fully connected generator and discriminator, for 2-D point clouds or any flattened data.

Three hidden layers of `width` units: ReLU in the generator, LeakyReLU(0.2) in the
discriminator. No normalisation layers at all, so no buffers and nothing batch-dependent:
the same parameters give the same per-sample output whatever the batch, under vmap or not.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

HIDDEN_LAYERS = 3


def _stack(d_in: int, width: int, d_out: int, activation: type[nn.Module], **kw) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(HIDDEN_LAYERS):
        layers += [nn.Linear(d, width), activation(**kw)]
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z [B, latent_dim] -> samples [B, *data_shape]: images ([C, H, W], scaled to [-1, 1])
    through a tanh; points (a flat shape such as the mixtures' [2]) unbounded, since the
    mixtures' modes lie outside (-1, 1) (grid25's at ±2 and ±4), where a tanh cannot reach."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.squash = len(self.data_shape) > 1
        self.net = _stack(latent_dim, width, math.prod(self.data_shape), nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)
        return (out.tanh() if self.squash else out).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Module):
    """x [B, *data_shape] -> raw logits [B]."""

    def __init__(self, data_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.net = _stack(math.prod(data_shape), width, 1, nn.LeakyReLU, negative_slope=0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)
