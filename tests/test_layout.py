"""The simulator's two memory-layout measures: weight-major linear layers under vmap, and
glibc malloc thresholds that keep freed memory for the next step. Both change speed only:
values are checked against the plain computation, layouts and page faults directly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from gossipgan.sim import keep_freed_memory
from gossipgan.sim.layout import WeightMajorLinear

torch.set_num_threads(1)


@pytest.mark.parametrize("call", [
    lambda x, w, b: F.linear(x, w, b),
    lambda x, w, b: F.linear(x, w),
    lambda x, w, b: F.linear(x, weight=w, bias=b),
    lambda x, w, b: F.linear(input=x, weight=w, bias=b),
    lambda x, w, b: F.linear(x.view(2, 3, 5), w, b),  # 3-D input: left to F.linear
])
def test_weight_major_linear_gives_f_linear_values(call):
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=gen) for s in ((6, 5), (4, 5), (4,)))
    with WeightMajorLinear():
        got = call(x, w, b)
    torch.testing.assert_close(got, call(x, w, b), rtol=1e-6, atol=1e-6)


def test_weight_major_linear_gives_dense_weight_gradients_under_vmap():
    gen = torch.Generator().manual_seed(0)
    n = 4
    x = torch.randn(n, 6, 5, generator=gen)
    w = torch.randn(n, 3, 5, generator=gen, requires_grad=True)
    b = torch.randn(n, 3, generator=gen, requires_grad=True)
    plain = vmap(F.linear)(x, w, b).square().sum()
    (g_plain,) = torch.autograd.grad(plain, w)
    assert not g_plain.is_contiguous()  # the transposed view this mode exists to avoid
    with WeightMajorLinear():
        out = vmap(F.linear)(x, w, b)
    (g,) = torch.autograd.grad(out.square().sum(), w)
    assert g.is_contiguous()
    torch.testing.assert_close(g, g_plain, rtol=1e-5, atol=1e-5)


def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("GOSSIPGAN_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


# Simulator steps in a fresh process; prints the page faults of 25 steps after 5 of warm-up.
_FAULTS = """
import resource, torch
torch.set_num_threads(1)
from gossipgan.data import load_dataset
from gossipgan.games import GanGame
from gossipgan.sim import Workers, keep_freed_memory
keep_freed_memory()  # an opt-in (GOSSIPGAN_KEEP_FREED_MEMORY=0 makes it a no-op)
game = GanGame(load_dataset("ring8"), 64, model="mlp", batch_size=64)
sim = Workers(game, list(range(64)), 0, 64, vectorize="vmap")
for _ in range(5):
    sim.compute_grads()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(25):
    sim.compute_grads()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_simulator_steps_fault_in_far_fewer_fresh_pages():
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt thresholds to set")

    def faults(setting: str) -> int:
        env = {**os.environ, "GOSSIPGAN_KEEP_FREED_MEMORY": setting}
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                             text=True, check=True, timeout=120)
        return int(out.stdout.split()[-1])

    tuned, default = faults("1"), faults("0")
    # measured (3 runs each): 2,000-6,200 faults in these 25 steps tuned (the heap still
    # reaches new highs now and then), 24,000-33,000 with glibc's defaults
    assert tuned * 2 < default, (tuned, default)


def test_grad_transforms_inside_the_forward_are_recognised():
    """WGAN-GP's penalty takes a gradient inside the forward: there F.linear is left plain."""
    from torch.func import grad

    from gossipgan.sim.layout import _inside_grad_transform

    seen = {}

    def critic(x, where):
        seen[where] = _inside_grad_transform(x)
        return x.square().sum()

    vmap(lambda x: grad(critic)(x, "grad"))(torch.randn(2, 3))
    vmap(lambda x: critic(x, "vmap"))(torch.randn(2, 3))
    assert seen == {"grad": True, "vmap": False}
