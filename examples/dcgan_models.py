"""What the DCGAN examples share: the models (PyTorch's DCGAN layout, BatchNorm included,
scaled down to 8x8 digits), their init, the data and the two players' losses.

The data are scikit-learn's 8x8 digits (they ship with the package: nothing is downloaded),
scaled to [-1, 1] like the DCGAN example's Normalize((0.5,), (0.5,)).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

nc = 1  # image channels


def load_digits(limit: int = 0) -> TensorDataset:
    """sklearn's digits as a TensorDataset of (image [1, 8, 8] in [-1, 1], label)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(d.target, dtype=torch.int64)
    if limit:
        x, y = x[:limit], y[:limit]
    return TensorDataset(x, y)


def weights_init(m: nn.Module) -> None:
    """DCGAN's init: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 2, 1, 0, bias=False),    # 2x2
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),   # 4x4
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),        # 8x8
            nn.Tanh(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ndf: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),                 # 4x4
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),            # 2x2
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 2, 1, 0, bias=False),              # 1x1
            nn.Sigmoid(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input).view(-1)


criterion = nn.BCELoss()


def gan_losses(netG, netD, real: torch.Tensor, noise: torch.Tensor):
    """(errG, errD) at ONE point: DCGAN's losses, both players' at the same parameters, in
    dcgan_torchrun.py's order. netG and netD are modules or the simulator's functions."""
    ones = torch.ones(real.shape[0])
    zeros = torch.zeros(real.shape[0])
    errD_real = criterion(netD(real), ones)
    fake = netG(noise)
    errD = errD_real + criterion(netD(fake.detach()), zeros)
    errG = criterion(netD(fake), ones)  # fake labels are real for the generator's cost
    return errG, errD
