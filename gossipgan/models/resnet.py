"""SNGAN-style residual generator and discriminator for 32x32 images (Miyato et al. 2018).

Generator: z -> linear -> width x 4x4 -> three up-blocks (4 -> 8 -> 16 -> 32) -> BN, ReLU,
3x3 conv -> tanh. Up-block: BN, ReLU, nearest 2x upsample, conv3x3, BN, ReLU, conv3x3, plus
a shortcut (upsample, conv1x1).

Discriminator: optimized down-block (32 -> 16), down-block (16 -> 8), two plain blocks at
8x8, ReLU, sum over space, linear logit. Every conv and the linear layer are spectrally
normalised with the exact, stateless normalisation of `layers.SNConv2d` / `SNLinear`
(why not torch.nn.utils.spectral_norm: see gossipgan/models/layers.py).

Normalisation, and why: the generator's BatchNorm keeps no running statistics
(`track_running_stats=False`): running statistics are an in-place buffer update during
forward, which vmap over stacked workers cannot batch; each worker normalises over its own
batch. The discriminator has no batch norm, only spectral norm, so a sample's logit does
not depend on the rest of its batch. No activation is in-place, no forward draws random
numbers.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gossipgan.errors import ConfigError
from gossipgan.models.layers import SNConv2d, SNLinear, batch_norm_2d, xavier_init

IMAGE_SIDE = 32
START = 4  # generator's first feature map is START x START; three up-blocks reach 32


def check_resnet_shape(data_shape: tuple[int, ...]) -> int:
    """Return the channel count of a (C, 32, 32) shape, else raise ConfigError."""
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ConfigError(f"resnet supports 32x32 images (C, 32, 32), got {shape}")
    return shape[0]


def _upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = batch_norm_2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = batch_norm_2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(_upsample(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(_upsample(x))


class DBlock(nn.Module):
    """Residual block with spectrally normalised convs, optionally halving the resolution.

    `first=True` is SNGAN's "optimized" first block: no activation before the first conv
    (the input is the image) and pooling before the shortcut conv.
    """

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = SNConv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = SNConv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = SNConv2d(c_in, c_out, 1) if (down or c_in != c_out) else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.shortcut(F.avg_pool2d(x, 2))
        elif self.shortcut is not None:
            s = self.shortcut(s)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetGenerator(nn.Module):
    """z [B, latent_dim] -> images [B, C, 32, 32] in (-1, 1)."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int) -> None:
        super().__init__()
        channels = check_resnet_shape(data_shape)
        self.width = width
        self.project = nn.Linear(latent_dim, width * START * START)
        self.blocks = nn.Sequential(*(GBlock(width, width) for _ in range(3)))
        self.bn = batch_norm_2d(width)
        self.to_image = nn.Conv2d(width, channels, 3, 1, 1)
        xavier_init(self)
        for block in self.blocks:  # identity-like shortcuts keep their unit gain
            nn.init.xavier_uniform_(block.shortcut.weight, 1.0)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(z.shape[0], self.width, START, START)
        h = F.relu(self.bn(self.blocks(h)))
        return self.to_image(h).tanh()


class ResNetDiscriminator(nn.Module):
    """images [B, C, 32, 32] -> raw logits [B]; spectral norm on every conv and linear."""

    def __init__(self, data_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        channels = check_resnet_shape(data_shape)
        self.blocks = nn.Sequential(
            DBlock(channels, width, down=True, first=True),
            DBlock(width, width, down=True),
            DBlock(width, width, down=False),
            DBlock(width, width, down=False),
        )
        self.head = SNLinear(width, 1)
        # spectral norm divides out the scale, so only the init's direction matters here
        xavier_init(self)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(h).squeeze(1)
