"""The PyTorch DCGAN example's training (two Adam optimizers, D then G), one process: the
script `dcgan_torchrun.py` converts to DPOAdam (`diff dcgan.py dcgan_torchrun.py`).

    python examples/dcgan.py --niter 5 --outf runs/dcgan
"""

import argparse
import os

import torch
import torch.optim as optim
import torch.utils.data
from dcgan_models import Discriminator, Generator, criterion, load_digits, weights_init

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
print(opt)
os.makedirs(opt.outf, exist_ok=True)
torch.manual_seed(opt.manualSeed)

dataset = load_digits(opt.limit)
dataloader = torch.utils.data.DataLoader(dataset, batch_size=opt.batchSize, shuffle=True,
                                         drop_last=True)
nz = opt.nz

netG = Generator(nz, opt.ngf)
netG.apply(weights_init)
netD = Discriminator(opt.ndf)
netD.apply(weights_init)

fixed_noise = torch.randn(64, nz, 1, 1)
real_label, fake_label = 1.0, 0.0

# setup optimizer
optimizerD = optim.Adam(netD.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))

for epoch in range(opt.niter):
    for i, (real, _) in enumerate(dataloader, 0):
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        netD.zero_grad()
        batch_size = real.size(0)
        label = torch.full((batch_size,), real_label)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        noise = torch.randn(batch_size, nz, 1, 1)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        optimizerD.step()

        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()

        print(f"[{epoch}/{opt.niter}][{i}/{len(dataloader)}] "
              f"Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f}")

    # samples and checkpoints
    netG.eval()
    with torch.no_grad():
        fake = netG(fixed_noise)
    netG.train()
    torch.save(fake, f"{opt.outf}/fake_samples_epoch_{epoch:03d}.pt")
    torch.save(netG.state_dict(), f"{opt.outf}/netG_epoch_{epoch}.pth")
    torch.save(netD.state_dict(), f"{opt.outf}/netD_epoch_{epoch}.pth")
