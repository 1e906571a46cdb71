"""Run under torchrun (2 gloo ranks) by tests/test_own_gan.py: the own-GAN traps with DistComm
and plain per-process modules. Every rank writes OUT/rank{r}.json with what it saw."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from gossipgan import topology
from gossipgan.comm import DistComm, init_process_group
from gossipgan.comm.dist import leave
from gossipgan.errors import ConfigError
from gossipgan.optim import DPOAdam
from gossipgan.own import iterate_state_dict, simultaneous_backward, use_iterate


def models(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return (nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)),
            nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)))


def step(opt, G, D, gen) -> None:
    z, real = torch.randn(8, 3, generator=gen), torch.randn(8, 2, generator=gen)
    fake = G(z)
    loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
    loss_g = F.softplus(-D(fake)).mean()
    simultaneous_backward((G, loss_g), (D, loss_d))
    opt.step()


def error(fn) -> str | None:
    try:
        fn()
    except ConfigError as e:
        return str(e)
    return None


def main(out: str) -> int:
    torch.set_num_threads(1)
    init_process_group("gloo")
    rank = dist.get_rank()
    comm = DistComm(topology.ring(dist.get_world_size()))
    gen = torch.Generator().manual_seed(10 + rank)
    seen: dict = {}

    G, D = models(seed=rank)  # the trap: seeded by rank before building
    opt = DPOAdam([*G.parameters(), *D.parameters()], comm=DistComm(comm.topology), lr=1e-2)
    seen["unequal"] = error(lambda: step(opt, G, D, gen))

    G, D = models(seed=rank)
    opt = DPOAdam([*G.parameters(), *D.parameters()], comm=DistComm(comm.topology), lr=1e-2,
                  initial="sync")
    first = G[0].weight.detach().clone()
    step(opt, G, D, gen)
    x0 = [None, None]
    dist.all_gather_object(x0, opt.state[G[0].weight]["x"].tolist())
    seen["synced"] = x0[0] == x0[1]
    seen["sync_moved_rank1"] = not torch.equal(first, torch.tensor(x0[0]))

    G, D = models(seed=0)
    c = DistComm(comm.topology)
    opt_d = DPOAdam(D.parameters(), comm=c, lr=1e-2)
    opt_g = DPOAdam(G.parameters(), comm=c, lr=1e-2)

    def alternate():
        step(opt_d, G, D, gen)
        step(opt_g, G, D, gen)
    seen["alternating"] = error(alternate)

    G, D = models(seed=0)
    opt = DPOAdam([*G.parameters(), *D.parameters()], comm=DistComm(comm.topology), lr=1e-2)
    for _ in range(3):
        step(opt, G, D, gen)
    seen["average_plain"] = error(lambda: comm.average(opt.iterates()))
    own = iterate_state_dict(opt, G, average=False)
    avg = iterate_state_dict(opt, G)
    seen["shapes"] = {k: list(v.shape) for k, v in avg.items()}
    seen["module_shapes"] = {k: list(v.shape) for k, v in G.state_dict().items()}
    both = [None, None]
    dist.all_gather_object(both, {k: v.tolist() for k, v in own.items()})
    mean = {k: ((torch.tensor(both[0][k]) + torch.tensor(both[1][k])) / 2) for k in own
            if own[k].is_floating_point()}
    seen["average_ok"] = all(torch.allclose(avg[k], mean[k], atol=1e-6) for k in mean)
    seen["iterate_is_not_z"] = not torch.equal(own["0.weight"], G[0].weight.detach())
    z = G[0].weight.detach().clone()
    with use_iterate(opt, G, D, average=False):
        seen["swapped_in"] = torch.equal(G[0].weight.detach(), own["0.weight"])
    seen["restored"] = torch.equal(G[0].weight.detach(), z)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(seen, f)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    leave(main(sys.argv[1]))  # as the gossipgan command: no teardown abort after the results
