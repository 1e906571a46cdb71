"""dcgan.py on DPOAdam, one process per worker on a ring (`diff dcgan.py dcgan_torchrun.py`):

    torchrun --nproc_per_node=4 examples/dcgan_torchrun.py --niter 5 --outf runs/dcgan-dist
"""

import argparse
import os

import torch
import torch.utils.data
from dcgan_models import Discriminator, Generator, criterion, load_digits, weights_init
from torch.utils.data.distributed import DistributedSampler

from gossipgan import topology
from gossipgan.comm import DistComm, init_process_group
from gossipgan.optim import DPOAdam
from gossipgan.own import iterate_state_dict, simultaneous_backward, use_iterate

parser = argparse.ArgumentParser()
parser.add_argument("--batchSize", type=int, default=64, help="input batch size")
parser.add_argument("--nz", type=int, default=16, help="size of the latent z vector")
parser.add_argument("--ngf", type=int, default=16)
parser.add_argument("--ndf", type=int, default=16)
parser.add_argument("--niter", type=int, default=25, help="number of epochs to train for")
parser.add_argument("--lr", type=float, default=0.0002, help="learning rate, default=0.0002")
parser.add_argument("--beta1", type=float, default=0.5, help="beta1 for adam. default=0.5")
parser.add_argument("--outf", default=".", help="folder to output images and model checkpoints")
parser.add_argument("--manualSeed", type=int, default=0, help="manual seed")
parser.add_argument("--limit", type=int, default=0, help="use only the first LIMIT images")
opt = parser.parse_args()
torch.set_num_threads(1)  # several workers share the machine's cores
init_process_group("gloo")  # under torchrun: RANK, WORLD_SIZE, MASTER_ADDR in the environment
rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
print(opt) if rank == 0 else None
os.makedirs(opt.outf, exist_ok=True)
torch.manual_seed(opt.manualSeed)  # the same on every rank: one x_0 for all workers

dataset = load_digits(opt.limit)
sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=opt.manualSeed)
dataloader = torch.utils.data.DataLoader(dataset, batch_size=opt.batchSize, sampler=sampler,
                                         drop_last=True)
nz = opt.nz

netG = Generator(nz, opt.ngf)
netG.apply(weights_init)
netD = Discriminator(opt.ndf)
netD.apply(weights_init)

fixed_noise = torch.randn(64, nz, 1, 1)
real_label, fake_label = 1.0, 0.0
noise_gen = torch.Generator().manual_seed(opt.manualSeed + 1 + rank)  # each worker's own noise

# setup optimizer: ONE over both players, one gossip round with the ring neighbours per step
comm = DistComm(topology.ring(world))
optimizer = DPOAdam([{"params": netG.parameters()}, {"params": netD.parameters()}], comm=comm,
                    lr=opt.lr, betas=(opt.beta1, 0.999))

for epoch in range(opt.niter):
    sampler.set_epoch(epoch)
    for i, (real, _) in enumerate(dataloader, 0):
        ############################
        # D's loss log(D(x)) + log(1 - D(G(z))) and G's log(D(G(z))) at the SAME point
        ###########################
        batch_size = real.size(0)
        label = torch.full((batch_size,), real_label)
        output = netD(real)
        errD_real = criterion(output, label)
        noise = torch.randn(batch_size, nz, 1, 1, generator=noise_gen)
        fake = netG(noise)
        label = torch.full((batch_size,), fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD = errD_real + errD_fake

        label = torch.full((batch_size,), real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        simultaneous_backward((netG, errG), (netD, errD))  # each player's own gradient
        optimizer.step()  # both players at once, one gossip round

        print(f"[{epoch}/{opt.niter}][{i}/{len(dataloader)}] rank {rank} "
              f"Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f}")

    # samples and checkpoints of the average model x_bar (every rank takes part)
    with use_iterate(optimizer, netG, netD):
        netG.eval()
        with torch.no_grad():
            fake = netG(fixed_noise)
        netG.train()
        if rank == 0:
            torch.save(fake, f"{opt.outf}/fake_samples_epoch_{epoch:03d}.pt")
            torch.save(netG.state_dict(), f"{opt.outf}/netG_epoch_{epoch}.pth")
            torch.save(netD.state_dict(), f"{opt.outf}/netD_epoch_{epoch}.pth")

# each worker's own iterate x_k (parameters and BatchNorm statistics), for comparisons
mine = {f"{p}.{k}": v for p, m in (("G", netG), ("D", netD))
        for k, v in iterate_state_dict(optimizer, m, average=False).items()}
torch.save(mine, f"{opt.outf}/worker{rank}.pt")
torch.distributed.destroy_process_group()
