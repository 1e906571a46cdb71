"""Your own GAN (issue 15): each trap of converting a PyTorch GAN script fails loudly, the
helpers give the right thing on both backends, and the DCGAN examples run and agree.

- simultaneous_backward: each player's .grad is its own loss's gradient only (the naive
  `errD.backward(); errG.backward()` adds G's loss into D's .grad);
- two optimizers stepping in turn over one communicator are refused;
- BatchNorm: running statistics per worker on the simulator (vmap and loop), the shared
  template never written, averaged in x_bar;
- unequal x_0 refused; initial="sync" copies worker 0's;
- x_bar / x_k as state dicts with the modules' shapes, use_iterate swaps and restores;
- under torchrun (2 gloo ranks): the same traps with DistComm and plain modules;
- examples/: the torchrun DCGAN and the simulator give the same iterates.
"""

from __future__ import annotations

import difflib
import json
import re
import sys

import dist_helpers as h
import pytest
import torch
from torch import nn

from gossipgan import topology
from gossipgan.comm import DistComm, SimComm, init_process_group
from gossipgan.errors import ConfigError
from gossipgan.optim import DPOSG, DPOAdam
from gossipgan.own import ModuleGame, iterate_state_dict, simultaneous_backward, use_iterate
from gossipgan.sim import Workers

EXAMPLES = h.REPO / "examples"
F = nn.functional


def _players(seed: int = 0, bn: bool = False) -> tuple[nn.Module, nn.Module]:
    """A tiny G and D; with `bn`, a BatchNorm1d after the first layer of each (bias-free
    before it, as in DCGAN: a bias BatchNorm removes has gradient ~0, which Adam would turn
    into steps of +-lr from rounding noise)."""
    torch.manual_seed(seed)

    def net(i: int, o: int) -> nn.Module:
        norm = [nn.BatchNorm1d(6)] if bn else []
        return nn.Sequential(nn.Linear(i, 6, bias=not bn), *norm, nn.Tanh(), nn.Linear(6, o))

    return net(3, 2), net(2, 1)


def _losses(G, D, real, z):
    fake = G(z)
    loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
    return F.softplus(-D(fake)).mean(), loss_d


def _batch(seed: int = 1, n: int = 8):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=gen), torch.randn(n, 3, generator=gen)


# --- trap 1: one backward per loss mixes the players' gradients -----------------------------

def test_simultaneous_backward_gives_each_player_its_own_gradient():
    G, D = _players()
    real, z = _batch()
    loss_g, loss_d = _losses(G, D, real, z)
    want_g = torch.autograd.grad(loss_g, list(G.parameters()), retain_graph=True)
    want_d = torch.autograd.grad(loss_d, list(D.parameters()), retain_graph=True)
    got = simultaneous_backward((G, loss_g), (D, loss_d))
    assert [float(x) for x in got] == [loss_g.item(), loss_d.item()]
    for p, w in zip([*G.parameters(), *D.parameters()], [*want_g, *want_d], strict=True):
        torch.testing.assert_close(p.grad, w, rtol=0, atol=0)
    # the silent alternative: D's .grad also holds dl_G/dD
    for p in [*G.parameters(), *D.parameters()]:
        p.grad = None
    loss_g, loss_d = _losses(G, D, real, z)
    loss_d.backward(retain_graph=True)
    loss_g.backward()
    naive = next(D.parameters()).grad
    assert not torch.allclose(naive, want_d[0])


def test_simultaneous_backward_refuses_shared_parameters_and_non_scalar_losses():
    G, D = _players()
    real, z = _batch()
    loss_g, loss_d = _losses(G, D, real, z)
    with pytest.raises(ConfigError, match="belongs to players 0 and 1"):
        simultaneous_backward((G, loss_g), (list(G.parameters())[:1], loss_d))
    with pytest.raises(ConfigError, match="must be a scalar tensor, got \\[8, 2\\]"):
        simultaneous_backward((G, G(z)))


# --- trap 2: the example's two optimizers, D then G -----------------------------------------

def test_two_optimizers_stepping_in_turn_are_refused():
    G, D = _players()
    comm = SimComm(topology.complete(1))
    opt_d = DPOAdam(D.parameters(), comm=comm, lr=1e-3)
    opt_g = DPOAdam(G.parameters(), comm=comm, lr=1e-3)
    real, z = _batch()
    loss_g, loss_d = _losses(G, D, real, z)
    simultaneous_backward((G, loss_g), (D, loss_d))
    opt_d.step()
    with pytest.raises(ConfigError, match="two optimizers step in turn over one communicator") \
            as info:
        opt_g.step()
    assert "\n" not in str(info.value) and "ONE optimizer" in str(info.value)
    # one optimizer over both players is the simultaneous step, and steps freely
    opt = DPOAdam([*G.parameters(), *D.parameters()], comm=SimComm(topology.complete(1)))
    for _ in range(3):
        opt.step(lambda: simultaneous_backward(*zip((G, D), _losses(G, D, real, z),
                                                    strict=True)))
    assert opt.iteration == 3


# --- trap 4: a different x_0 per worker ------------------------------------------------------

def test_unequal_start_is_refused_and_sync_copies_worker_0():
    p = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).requires_grad_()
    opt = DPOSG([p], comm=SimComm(topology.ring(4)), lr=0.1)
    p.grad = torch.zeros_like(p)
    with pytest.raises(ConfigError, match="workers start from different parameters "
                                          "\\(worker 1 differs from worker 0, 3 of 4"):
        opt.step()
    assert opt.iteration == 0
    row0 = p[0].detach().clone()
    seen = []
    sync = DPOSG([p], comm=SimComm(topology.ring(4)), lr=0.1, initial="sync")
    sync.step(lambda: seen.append(p.detach().clone()) or setattr(p, "grad", torch.zeros_like(p)))
    assert torch.equal(seen[0], row0.expand(4, 3))  # the gradient is taken at the common x_0
    with pytest.raises(ConfigError, match="unknown initial"):
        DPOSG([p], comm=SimComm(topology.ring(4)), initial="maybe")


# --- trap 3: BatchNorm on the simulator ------------------------------------------------------

def _bn_run(vectorize: str, steps: int = 3):
    G, D = _players(bn=True)
    template = {k: v.clone() for k, v in [*G.state_dict().items(), *D.state_dict().items()]}
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    game = ModuleGame(G, D, data, 3, latent_shape=3, losses=_losses, batch_size=8)
    comm = SimComm(topology.ring(3))
    workers = Workers(game, comm.workers, seed=0, batch_size=8, vectorize=vectorize)
    # SGD: Adam's first steps are +-lr on any coordinate, whatever its size, so vmap's and the
    # loop's last-bit differences in a near-zero gradient would become lr-sized
    opt = DPOSG(list(workers.params.values()), comm=comm, lr=0.1)
    for _ in range(steps):
        opt.step(workers.compute_grads)
    after = {k: v for k, v in [*G.state_dict().items(), *D.state_dict().items()]}
    assert all(torch.equal(template[k], after[k]) for k in template)  # template never written
    return game, workers, opt


def test_batchnorm_statistics_are_per_worker_and_averaged_in_x_bar():
    game, loop, opt = _bn_run("loop")
    _, vmapped, _ = _bn_run("vmap")
    stats = loop.buffers["G.1.running_mean"]
    assert stats.shape == (3, 6)
    assert not torch.allclose(stats[0], stats[1])  # each worker's own batches
    assert torch.equal(loop.buffers["G.1.num_batches_tracked"], torch.tensor([3, 3, 3]))
    for k, v in loop.buffers.items():
        torch.testing.assert_close(vmapped.buffers[k], v, rtol=1e-5, atol=1e-6)
    x_bar = iterate_state_dict(opt, loop)
    torch.testing.assert_close(x_bar["G.1.running_mean"], stats.mean(0))
    assert x_bar["G.1.num_batches_tracked"].shape == ()
    worker2 = iterate_state_dict(opt, loop, average=False, worker=2)
    torch.testing.assert_close(worker2["G.1.running_var"], loop.buffers["G.1.running_var"][2])


# --- trap 5: the output model ---------------------------------------------------------------

def test_outputs_have_the_modules_shapes_and_use_iterate_restores_z():
    game, workers, opt = _bn_run("loop")
    shapes = {**{f"G.{k}": v.shape for k, v in game.G.state_dict().items()},
              **{f"D.{k}": v.shape for k, v in game.D.state_dict().items()}}
    for average in (True, False):
        state = iterate_state_dict(opt, workers, average=average)
        assert {k: v.shape for k, v in state.items()} == shapes
    x_bar = iterate_state_dict(opt, workers)
    before = game.G[0].weight.detach().clone()
    with use_iterate(opt, workers):
        assert torch.equal(game.G[0].weight, x_bar["G.0.weight"])
        assert torch.equal(game.G[1].running_mean, x_bar["G.1.running_mean"])
    assert torch.equal(game.G[0].weight, before)
    with pytest.raises(ConfigError, match="on the simulator pass the Workers"):
        iterate_state_dict(opt, game.G)


def test_plain_modules_outputs_iterate_not_z():
    """One worker per process (here SimComm of 1; DistComm below): no worker axis."""
    G, D = _players(bn=True)
    opt = DPOAdam([*G.parameters(), *D.parameters()], comm=SimComm(topology.complete(1)),
                  lr=1e-2)
    real, z = _batch()
    for _ in range(3):
        opt.step(lambda: simultaneous_backward(*zip((G, D), _losses(G, D, real, z),
                                                    strict=True)))
    x = iterate_state_dict(opt, G, average=False)
    assert {k: v.shape for k, v in x.items()} == {k: v.shape for k, v in G.state_dict().items()}
    assert torch.equal(x["0.weight"], opt.state[G[0].weight]["x"])
    assert not torch.equal(x["0.weight"], G[0].weight)  # the parameters hold z
    z_before = G[0].weight.detach().clone()
    with use_iterate(opt, G, D):
        assert torch.equal(G[0].weight, x["0.weight"])  # one worker: x_bar = x_k
    assert torch.equal(G[0].weight, z_before)


def test_comm_exports_distcomm_and_its_errors_do_not_assume_the_cli(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="outside torchrun") as info:
        init_process_group("gloo")
    assert "your_script.py" in str(info.value)
    with pytest.raises(ConfigError, match="call gossipgan.comm.init_process_group\\(\\) first"):
        DistComm(topology.ring(2))


# --- under torchrun --------------------------------------------------------------------------

@pytest.mark.slow
def test_traps_under_torchrun_with_plain_modules(tmp_path):
    proc = h.run(h.torchrun(2, str(h.REPO / "tests" / "own_dist_check.py"), str(tmp_path)),
                 timeout=150, env=h.child_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for seen in ranks:
        assert "workers start from different parameters (worker 1" in seen["unequal"]
        assert seen["synced"]
        assert "two optimizers step in turn" in seen["alternating"]
        assert "got shape [5, 3]" in seen["average_plain"]
        assert seen["shapes"] == seen["module_shapes"]
        assert seen["average_ok"] and seen["iterate_is_not_z"]
        assert seen["swapped_in"] and seen["restored"]
    assert ranks[1]["sync_moved_rank1"]  # rank 1 was built from another seed, then synced


TINY = ["--batchSize", "8", "--limit", "64", "--niter", "2", "--nz", "8", "--ngf", "8",
        "--ndf", "8"]


@pytest.mark.slow
def test_dcgan_example_under_torchrun_equals_the_simulator(tmp_path):
    """2 gloo processes and 2 simulated workers, 8 steps: the same iterates (each worker's
    parameters and BatchNorm statistics) and the same x_bar model and samples."""
    dist = h.run(h.torchrun(2, str(EXAMPLES / "dcgan_torchrun.py"), *TINY,
                            "--outf", str(tmp_path / "dist")), timeout=150, env=h.child_env())
    assert dist.returncode == 0, dist.stderr[-3000:]
    for vectorize, atol in (("loop", 1e-6), ("vmap", 1e-5)):
        out = tmp_path / vectorize
        sim = h.run([sys.executable, str(EXAMPLES / "dcgan_sim.py"), "--workers", "2", *TINY,
                     "--vectorize", vectorize, "--outf", str(out)], timeout=150,
                    env=h.child_env())
        assert sim.returncode == 0, sim.stderr[-3000:]
        mine = [torch.load(out / f"worker{w}.pt") for w in range(2)]
        for w in range(2):
            theirs = torch.load(tmp_path / "dist" / f"worker{w}.pt")
            assert set(theirs) == set(mine[w])
            for k, v in theirs.items():
                torch.testing.assert_close(mine[w][k], v, rtol=0, atol=atol, msg=k)
        spread = max((mine[0][k].double() - mine[1][k].double()).abs().max().item()
                     for k in mine[0])
        assert spread > 100 * atol  # the workers differ: the comparison means something
        assert mine[0]["G.main.1.num_batches_tracked"] == 8 * 3 // 3  # G ran once per step
        for name in ("netG_epoch_1.pth", "netD_epoch_1.pth", "fake_samples_epoch_001.pt"):
            a, b = torch.load(out / name), torch.load(tmp_path / "dist" / name)
            pairs = a.items() if isinstance(a, dict) else [("samples", a)]
            for k, v in pairs:
                ref = b[k] if isinstance(b, dict) else b
                torch.testing.assert_close(v, ref, rtol=0, atol=10 * atol, msg=f"{name} {k}")


@pytest.mark.slow
def test_the_plain_pytorch_dcgan_runs(tmp_path):
    proc = h.run([sys.executable, str(EXAMPLES / "dcgan.py"), *TINY, "--outf", str(tmp_path)],
                 timeout=120, env=h.child_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "netG_epoch_1.pth").exists()


def test_the_conversion_is_small_and_the_readme_quotes_the_examples():
    old = (EXAMPLES / "dcgan.py").read_text().splitlines()
    new = (EXAMPLES / "dcgan_torchrun.py").read_text().splitlines()
    diff = list(difflib.unified_diff(old, new, lineterm="", n=0))
    added = [d for d in diff if d.startswith("+") and not d.startswith("+++")]
    removed = [d for d in diff if d.startswith("-") and not d.startswith("---")]
    assert len(added) <= 50 and len(removed) <= 40, (len(added), len(removed))
    readme = (h.REPO / "README.md").read_text()
    section = readme[readme.index("## Your own GAN"):]
    section = section[:section.index("\n## ", 4)]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert code, "the README's 'Your own GAN' section has Python blocks"
    sources = "\n".join(p.read_text() for p in EXAMPLES.glob("*.py"))
    for block in code:
        for line in block.splitlines():
            text = line.split("#")[0].strip()
            if text and text != "..." and not text.startswith("..."):
                assert text in sources, f"README line not in examples/: {text!r}"
