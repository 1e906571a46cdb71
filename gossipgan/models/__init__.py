"""Generator / discriminator networks; they know nothing of workers or communication.

Every model is a plain `nn.Module` whose forward is a pure function of its parameters and
input: no buffers updated in place (BatchNorm without running statistics, spectral norm
without power-iteration state), no dropout, no random numbers. That is what lets the
simulator run N workers at once with `torch.func.vmap(functional_call(...))` over stacked
parameters, and the distributed backend run the very same module for its one worker.

    G(z: [B, latent_dim]) -> [B, *data_shape]   tanh output for images (scaled to [-1, 1]);
                                                the MLP on 2-D points: unbounded output
    D(x: [B, *data_shape]) -> [B]               raw logits; losses apply their own link
"""

from __future__ import annotations

from torch import nn

from gossipgan.errors import ConfigError, check_choice
from gossipgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gossipgan.models.layers import SNConv2d, SNLinear, largest_singular_value
from gossipgan.models.mlp import MLPDiscriminator, MLPGenerator
from gossipgan.models.resnet import ResNetDiscriminator, ResNetGenerator

MODELS: tuple[str, ...] = ("mlp", "dcgan", "resnet")
DEFAULT_WIDTH: dict[str, int] = {"mlp": 128, "dcgan": 64, "resnet": 128}

__all__ = [
    "DEFAULT_WIDTH",
    "MODELS",
    "SNConv2d",
    "SNLinear",
    "build_models",
    "count_parameters",
    "largest_singular_value",
]


def _check_positive_int(what: str, value: object) -> int:
    # bool is an int subclass; True as a width is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def build_models(
    name: str, data_shape: tuple[int, ...], latent_dim: int = 64, width: int | None = None
) -> tuple[nn.Module, nn.Module]:
    """Return freshly initialised (generator, discriminator) of family `name`.

    Initialisation draws from torch's global RNG: seed it (or fork it) around this call.
    `width` is the hidden size (mlp) or the base number of filters (dcgan, resnet);
    None picks DEFAULT_WIDTH[name].
    """
    check_choice("model", name, MODELS)
    shape = tuple(data_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ConfigError(f"data_shape must be a non-empty tuple of positive integers, got {shape}")
    _check_positive_int("latent_dim", latent_dim)
    width = DEFAULT_WIDTH[name] if width is None else _check_positive_int("width", width)
    if name == "mlp":
        return MLPGenerator(shape, latent_dim, width), MLPDiscriminator(shape, width)
    if name == "dcgan":
        return DCGANGenerator(shape, latent_dim, width), DCGANDiscriminator(shape, width)
    return ResNetGenerator(shape, latent_dim, width), ResNetDiscriminator(shape, width)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) in `module`."""
    return sum(p.numel() for p in module.parameters())
