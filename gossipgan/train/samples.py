"""Pictures of generated samples: an image grid, or a scatter over the data for 2-D points."""

from __future__ import annotations

import math
from pathlib import Path

import torch  # noqa: E402
from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry
from torch import Tensor  # noqa: E402


def image_grid(images: Tensor, nrow: int | None = None, pad: int = 1) -> Tensor:
    """[n, C, H, W] in [-1, 1] -> one [H', W', C] image in [0, 1] (torchvision-free make_grid)."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad)
    imgs = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + col * (w + pad): pad + col * (w + pad) + w] = imgs[i]
    return grid.permute(1, 2, 0)


def save_samples(samples: Tensor, path: Path, title: str = "",
                 reference: Tensor | None = None) -> None:
    """Write a PNG: a grid for images, a scatter (over `reference` points if given) for 2-D."""
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    if samples.dim() == 4:
        # numpy, not torch: matplotlib's np.array(x, copy=...) warns on torch tensors
        grid = image_grid(samples[:64]).numpy()
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.axis("off")
    else:
        pts = samples.detach().float().cpu().numpy()
        if reference is not None:
            ref = reference.detach().float().cpu().numpy()
            ax.scatter(ref[:, 0], ref[:, 1], s=2, c="lightgray", label="data")
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:blue", label="generated")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
