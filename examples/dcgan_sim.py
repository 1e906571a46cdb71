"""dcgan_torchrun.py's models, losses, data order and optimizer on N simulated workers in one
process: the same iterates as `torchrun --nproc_per_node=N examples/dcgan_torchrun.py`.

    python examples/dcgan_sim.py --workers 4 --niter 5 --outf runs/dcgan-sim

Each worker's batches come from its own DistributedSampler (rank i of N) and its noise from its
own generator, as each torchrun rank's do; `ModuleGame` stacks the modules' parameters and
BatchNorm statistics on the worker axis and runs the modules per worker (vmap or a loop).
"""

import argparse
import os

import torch
import torch.utils.data
from dcgan_models import Discriminator, Generator, gan_losses, load_digits, weights_init
from torch.utils.data.distributed import DistributedSampler

from gossipgan import topology
from gossipgan.comm import SimComm
from gossipgan.optim import DPOAdam
from gossipgan.own import ModuleGame, iterate_state_dict, use_iterate
from gossipgan.sim import Workers

parser = argparse.ArgumentParser()
parser.add_argument("--workers", type=int, default=4, help="simulated workers on a ring")
parser.add_argument("--batchSize", type=int, default=64, help="input batch size per worker")
parser.add_argument("--nz", type=int, default=16, help="size of the latent z vector")
parser.add_argument("--ngf", type=int, default=16)
parser.add_argument("--ndf", type=int, default=16)
parser.add_argument("--niter", type=int, default=25, help="number of epochs to train for")
parser.add_argument("--lr", type=float, default=0.0002, help="learning rate, default=0.0002")
parser.add_argument("--beta1", type=float, default=0.5, help="beta1 for adam. default=0.5")
parser.add_argument("--outf", default=".", help="folder to output images and model checkpoints")
parser.add_argument("--manualSeed", type=int, default=0, help="manual seed")
parser.add_argument("--limit", type=int, default=0, help="use only the first LIMIT images")
parser.add_argument("--vectorize", default="auto", choices=["auto", "vmap", "loop"])
opt = parser.parse_args()
print(opt)
torch.set_num_threads(1)
os.makedirs(opt.outf, exist_ok=True)
torch.manual_seed(opt.manualSeed)
n, nz = opt.workers, opt.nz

dataset = load_digits(opt.limit)
samplers = [DistributedSampler(dataset, num_replicas=n, rank=i, seed=opt.manualSeed)
            for i in range(n)]
loaders = [torch.utils.data.DataLoader(dataset, batch_size=opt.batchSize, sampler=s,
                                       drop_last=True) for s in samplers]

netG = Generator(nz, opt.ngf)
netG.apply(weights_init)
netD = Discriminator(opt.ndf)
netD.apply(weights_init)
fixed_noise = torch.randn(64, nz, 1, 1)
noise_gens = [torch.Generator().manual_seed(opt.manualSeed + 1 + i) for i in range(n)]

game = ModuleGame(netG, netD, dataset.tensors[0], n, latent_shape=(nz, 1, 1), losses=gan_losses,
                  batch_size=opt.batchSize)
comm = SimComm(topology.ring(n))
workers = Workers(game, comm.workers, seed=opt.manualSeed, batch_size=opt.batchSize,
                  vectorize=opt.vectorize)
players = [[p for k, p in workers.params.items() if game.player(k) == who]
           for who in ("min", "max")]
optimizer = DPOAdam([{"params": players[0]}, {"params": players[1]}], comm=comm, lr=opt.lr,
                    betas=(opt.beta1, 0.999))

for epoch in range(opt.niter):
    for s in samplers:
        s.set_epoch(epoch)
    for reals in zip(*loaders, strict=True):  # equal lengths: DistributedSampler pads
        batch = {"x": torch.stack([real for real, _ in reals]),
                 "z": torch.stack([torch.randn(opt.batchSize, nz, 1, 1, generator=g)
                                   for g in noise_gens])}
        optimizer.step(lambda batch=batch: workers.compute_grads(batch))
    x_bar = iterate_state_dict(optimizer, workers)
    losses = game.losses(x_bar, {"x": batch["x"][0], "z": batch["z"][0]})
    print(f"[{epoch}/{opt.niter}] x_bar on worker 0's last batch: "
          f"Loss_D: {losses['loss_d']:.4f} Loss_G: {losses['loss_g']:.4f}")
    with use_iterate(optimizer, workers):  # x_bar into netG / netD
        netG.eval()
        with torch.no_grad():
            fake = netG(fixed_noise)
        netG.train()
        torch.save(fake, f"{opt.outf}/fake_samples_epoch_{epoch:03d}.pt")
        torch.save(netG.state_dict(), f"{opt.outf}/netG_epoch_{epoch}.pth")
        torch.save(netD.state_dict(), f"{opt.outf}/netD_epoch_{epoch}.pth")

for i in range(n):  # each worker's own iterate x_k, as dcgan_torchrun.py saves them
    torch.save(iterate_state_dict(optimizer, workers, average=False, worker=i),
               f"{opt.outf}/worker{i}.pt")
