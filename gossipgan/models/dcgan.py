"""DCGAN generator (transposed convolutions) and discriminator (strided convolutions).

One recipe for the three supported image sizes: the generator projects z to a
`start x start` map with `width * 2^(ups-1)` channels and doubles the resolution `ups` times
with ConvTranspose2d(k=4, s=2, p=1), halving channels, the last one emitting the image
channels; the discriminator mirrors it with strided Conv2d and ends in one linear logit.

    8x8   : 2x2  -> 4  -> 8             (light: for sklearn digits)
    28x28 : 7x7  -> 14 -> 28            (MNIST-like)
    32x32 : 4x4  -> 8  -> 16 -> 32      (the classic DCGAN-32 / CIFAR layout)

Normalisation, and why: the generator uses BatchNorm with `track_running_stats=False`
(batch statistics always, no buffers) because running statistics are an in-place buffer
update during forward, which torch.func.vmap over stacked workers cannot batch and which
would make the operator stateful; under vmap each worker normalises over its own batch.
The discriminator has no normalisation (plain LeakyReLU(0.2)), so its logit for a sample
does not depend on the rest of the batch, as gradient penalties and per-sample metrics
assume.
"""

from __future__ import annotations

from torch import Tensor, nn

from gossipgan.errors import ConfigError
from gossipgan.models.layers import batch_norm_2d, dcgan_init

# image side -> (side of the first feature map, number of 2x up/down-sampling steps)
LAYOUTS: dict[int, tuple[int, int]] = {8: (2, 2), 28: (7, 2), 32: (4, 3)}


def check_dcgan_shape(data_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return (C, start, ups) for a supported image shape, else raise ConfigError."""
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in LAYOUTS:
        raise ConfigError(f"dcgan supports 8x8, 28x28 and 32x32 images, got {shape}")
    start, ups = LAYOUTS[shape[1]]
    return shape[0], start, ups


class DCGANGenerator(nn.Module):
    """z [B, latent_dim] -> images [B, C, H, W] in (-1, 1)."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int) -> None:
        super().__init__()
        channels, start, ups = check_dcgan_shape(data_shape)
        c = width * 2 ** (ups - 1)
        self.start_shape = (c, start, start)
        self.project = nn.Linear(latent_dim, c * start * start, bias=False)
        layers: list[nn.Module] = [batch_norm_2d(c), nn.ReLU()]
        for i in range(ups):
            last = i == ups - 1
            c_out = channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))
            if not last:
                # bias is redundant before BatchNorm, which removes the mean anyway
                layers += [batch_norm_2d(c_out), nn.ReLU()]
            c = c_out
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(z.shape[0], *self.start_shape)
        return self.net(h).tanh()


class DCGANDiscriminator(nn.Module):
    """images [B, C, H, W] -> raw logits [B]."""

    def __init__(self, data_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        channels, start, downs = check_dcgan_shape(data_shape)
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(downs):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * start * start, 1)
        dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)
