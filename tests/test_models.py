"""Tests for gossipgan.models: shapes, errors, vmap over stacked workers, spectral norm."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from gossipgan.errors import ConfigError
from gossipgan.models import (
    MODELS,
    SNConv2d,
    SNLinear,
    build_models,
    count_parameters,
    largest_singular_value,
)

torch.set_num_threads(1)

LATENT = 8
# (family, data_shape, tiny width): every supported layout once
CASES = [
    ("mlp", (2,), 8),
    ("mlp", (1, 8, 8), 8),
    ("dcgan", (1, 8, 8), 4),
    ("dcgan", (1, 28, 28), 2),
    ("dcgan", (3, 32, 32), 2),
    ("resnet", (3, 32, 32), 4),
    ("resnet", (1, 32, 32), 2),
]
IDS = [f"{n}-{'x'.join(map(str, s))}" for n, s, _ in CASES]


def _build(name, shape, width, seed=0):
    torch.manual_seed(seed)
    return build_models(name, shape, latent_dim=LATENT, width=width)


@pytest.mark.parametrize("name,shape,width", CASES, ids=IDS)
def test_shapes_and_ranges(name, shape, width):
    G, D = _build(name, shape, width)
    z = torch.randn(5, LATENT)
    x = G(z)
    assert x.shape == (5, *shape)
    assert x.std() > 0  # not a constant
    if len(shape) > 1:
        assert x.abs().max() <= 1.0  # images: tanh range, as the data are scaled
    logits = D(x)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    assert logits.std() > 0


def test_the_mlp_on_points_reaches_modes_outside_the_unit_square():
    """grid25's modes lie at ±2 and ±4: a tanh output would pin every sample inside (-1, 1)."""
    G, _ = _build("mlp", (2,), 8)
    with torch.no_grad():
        G.net[-1].bias.fill_(4.0)
    assert G(torch.randn(5, LATENT)).min() > 3.0
    G, _ = _build("mlp", (1, 8, 8), 8)
    with torch.no_grad():
        G.net[-1].bias.fill_(4.0)
    assert G(torch.randn(5, LATENT)).max() <= 1.0


def test_default_widths_and_parameter_count():
    torch.manual_seed(0)
    G, D = build_models("mlp", (2,))
    # hand count: 64->128->128->128->2 and 2->128->128->128->1, weights + biases
    assert count_parameters(G) == (64 * 128 + 128) + 2 * (128 * 128 + 128) + (128 * 2 + 2)
    assert count_parameters(D) == (2 * 128 + 128) + 2 * (128 * 128 + 128) + (128 + 1)
    assert count_parameters(nn.Linear(3, 2)) == 8
    assert MODELS == ("mlp", "dcgan", "resnet")
    _, D = build_models("dcgan", (1, 8, 8))
    assert D.features[0].out_channels == 64
    _, D = build_models("resnet", (3, 32, 32), width=None)
    assert D.head.in_features == 128


BAD = [
    (("gan", (2,)), {}, "unknown model 'gan'; known: mlp, dcgan, resnet"),
    (("dcgan", (1, 16, 16)), {}, "dcgan supports 8x8, 28x28 and 32x32 images, got (1, 16, 16)"),
    (("dcgan", (1, 8, 9)), {}, "dcgan supports 8x8, 28x28 and 32x32 images, got (1, 8, 9)"),
    (("dcgan", (2,)), {}, "dcgan supports 8x8, 28x28 and 32x32 images, got (2,)"),
    (("resnet", (1, 28, 28)), {}, "resnet supports 32x32 images (C, 32, 32), got (1, 28, 28)"),
    (("resnet", (32, 32)), {}, "resnet supports 32x32 images (C, 32, 32), got (32, 32)"),
    (("mlp", (2,)), {"latent_dim": 0}, "latent_dim must be a positive integer, got 0"),
    (("mlp", (2,)), {"width": 0}, "width must be a positive integer, got 0"),
    (("mlp", (2,)), {"width": 2.5}, "width must be a positive integer, got 2.5"),
    (("mlp", ()), {}, "data_shape must be a non-empty tuple of positive integers, got ()"),
    (("mlp", (2, 0)), {}, "data_shape must be a non-empty tuple of positive integers, got (2, 0)"),
]


@pytest.mark.parametrize("args,kwargs,message", BAD, ids=[m[:30] for _, _, m in BAD])
def test_bad_inputs_raise_config_error(args, kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        build_models(*args, **kwargs)


def _autograd_grads(module, inp, weights):
    """Reference gradient with plain autograd on an ordinary module (no torch.func)."""
    module.zero_grad()
    out = module(inp)
    (out * weights).sum().backward()
    return out.detach(), {k: p.grad.clone() for k, p in module.named_parameters()}


@pytest.mark.parametrize("name,shape,width", CASES, ids=IDS)
def test_vmap_over_stacked_workers_matches_loop(name, shape, width):
    # float64: batched and looped kernels sum in different orders, and in float32 a gradient
    # summed over 10^4 terms differs by ~1e-4 relative; in float64 a real bug still shows.
    n_workers, batch, dt = 3, 4, torch.float64
    pairs = [[m.to(dt) for m in _build(name, shape, width, seed=s)] for s in range(n_workers)]
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(n_workers, batch, LATENT, generator=gen, dtype=dt)
    x = torch.rand(n_workers, batch, *shape, generator=gen, dtype=dt) * 2 - 1
    for role, inputs in ((0, z), (1, x)):
        copies = [p[role] for p in pairs]
        params, buffers = stack_module_state(copies)
        assert not buffers
        out_shape = (batch, *shape) if role == 0 else (batch,)
        weights = torch.randn(n_workers, *out_shape, generator=gen, dtype=dt)  # non-trivial loss

        def forward(p, inp, base=copies[0]):
            return functional_call(base, p, (inp,))

        def loss(p, inp, w, base=copies[0]):
            return (functional_call(base, p, (inp,)) * w).sum()

        outs = vmap(forward, randomness="error")(params, inputs)
        grads = vmap(grad(loss), randomness="error")(params, inputs, weights)
        for i, module in enumerate(copies):
            ref_out, ref_grads = _autograd_grads(module, inputs[i], weights[i])
            torch.testing.assert_close(outs[i], ref_out, atol=1e-5, rtol=1e-4)
            for k, g in ref_grads.items():
                torch.testing.assert_close(
                    grads[k][i], g, atol=1e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}"
                )
        # independently initialised workers really do differ (stacking kept them apart)
        assert not torch.allclose(outs[0], outs[1])


@pytest.mark.parametrize("name,shape,width", CASES, ids=IDS)
def test_forward_is_stateless_and_deterministic(name, shape, width):
    G, D = _build(name, shape, width)
    for m in (*G.modules(), *D.modules()):
        assert not isinstance(m, nn.modules.batchnorm._BatchNorm) or not m.track_running_stats
    bufs_before = {k: b.clone() for k, b in [*G.named_buffers(), *D.named_buffers()]}
    z = torch.randn(4, LATENT)
    first = D(G(z))
    second = D(G(z))
    bufs_after = dict([*G.named_buffers(), *D.named_buffers()])
    assert bufs_before.keys() == bufs_after.keys()
    for k, b in bufs_before.items():
        assert torch.equal(b, bufs_after[k]), k
    assert torch.equal(first, second)


@pytest.mark.parametrize("name,shape,width", CASES, ids=IDS)
def test_discriminator_scores_each_sample_independently(name, shape, width):
    _, D = _build(name, shape, width)
    x = torch.rand(6, *shape) * 2 - 1
    torch.testing.assert_close(D(x)[:2], D(x[:2]), atol=1e-6, rtol=1e-5)


def test_resnet_discriminator_normalises_every_conv_and_linear():
    _, D = _build("resnet", (3, 32, 32), 4)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) >= 9
    assert all(isinstance(m, (SNConv2d, SNLinear)) for m in layers)


@pytest.mark.parametrize(
    "layer",
    [SNLinear(7, 4), SNLinear(3, 9), SNConv2d(3, 5, 3), SNConv2d(16, 4, 3), SNConv2d(6, 40, 1)],
    ids=["linear-wide", "linear-tall", "conv-3to5", "conv-16to4", "conv1x1-tall"],
)
def test_spectral_norm_layer_has_unit_top_singular_value(layer):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.weight.mul_(7.0)  # far from 1 before normalisation
    w = layer.weight.detach().double().flatten(1)
    exact = torch.linalg.matrix_norm(w, ord=2)
    torch.testing.assert_close(
        largest_singular_value(layer.weight).double(), exact, rtol=1e-5, atol=0
    )
    top = torch.linalg.svdvals(layer.normalized_weight().detach().double().flatten(1))[0]
    assert abs(top.item() - 1.0) < 1e-4
    # forward really applies the normalised weight, so rescaling the parameter changes nothing
    linear = isinstance(layer, SNLinear)
    x = torch.randn(2, *((layer.in_features,) if linear else (layer.in_channels, 6, 6)))
    y = layer(x)
    with torch.no_grad():
        layer.weight.mul_(0.01)
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-4)


def test_spectral_norm_gradient_is_top_singular_pair():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 2, 2, dtype=torch.float64)
    g = grad(largest_singular_value)(w)
    u, _, vh = torch.linalg.svd(w.flatten(1))
    expected = torch.outer(u[:, 0], vh[0]).view_as(w)  # d sigma_1 / dW = u1 v1^T
    torch.testing.assert_close(g, expected, atol=1e-8, rtol=1e-6)
    # under vmap, each stacked weight gets its own sigma and gradient
    ws = torch.randn(3, 5, 8, dtype=torch.float64)
    gs = vmap(grad(largest_singular_value), randomness="error")(ws)
    for i in range(3):
        torch.testing.assert_close(gs[i], grad(largest_singular_value)(ws[i]))
    torch.testing.assert_close(
        vmap(largest_singular_value)(ws), torch.linalg.matrix_norm(ws, ord=2)
    )


def test_generator_batchnorm_uses_the_batch_it_is_given():
    # no stored statistics: the same z row maps differently inside a different batch
    G, _ = _build("dcgan", (1, 8, 8), 4)
    z = torch.randn(4, LATENT)
    other = torch.cat([z[:1], 10 * torch.randn(3, LATENT)])
    assert not torch.allclose(G(z)[0], G(other)[0])
