"""Pictures of generated samples: real images beside generated ones, or a 2-D scatter.

One drawing function for every image grid the project shows, `sample_figure`: a run's
`samples/*.png`, its TensorBoard images and the README picture (scripts/readme_figure.py).
Small images are enlarged by an integer nearest-neighbour factor (an 8x8 digit becomes 48x48
pixels) and laid out on a dark background, and each grid is drawn at one screen pixel per
grid pixel, so no resampling blurs a tile.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry
from matplotlib.image import imsave
from torch import Tensor

TILE_PX = 48       # a tile is enlarged to at least this many pixels a side
PAD_PX = 2         # dark gap between tiles (in output pixels)
PAD_VALUE = 0.25   # its brightness in [0, 1]: dark, yet apart from a black background
DPI = 100
# Figure margins in pixels: around, between panels, the figure title, a panel title.
MARGIN, GAP, TITLE_PX, PANEL_TITLE_PX = 10, 24, 30, 24


def upscale_factor(side: int) -> int:
    """The integer enlargement of a `side`-pixel image: 8 -> 6, 28 -> 2, 32 -> 2, 64 -> 1."""
    return max(1, math.ceil(TILE_PX / side))


def image_grid(images: Tensor, nrow: int | None = None, pad: int = PAD_PX,
               scale: int | None = None, pad_value: float = PAD_VALUE) -> Tensor:
    """[n, C, H, W] in [-1, 1] -> one [H', W', C] image in [0, 1]: each image enlarged
    `scale` times by pixel repetition (default `upscale_factor(H)`), `pad` pixels of
    `pad_value` around and between tiles, `nrow` tiles a row (default: a square)."""
    n, c, h, w = images.shape
    scale = scale or upscale_factor(max(h, w))
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    imgs = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    imgs = imgs.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    h, w = h * scale, w * scale
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), float(pad_value))
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = imgs[i]
    return grid.permute(1, 2, 0)


def _render(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def sample_figure(panels: list[tuple[str, Tensor]], title: str = "") -> np.ndarray:
    """Image grids side by side, each under its own title (e.g. real, x_bar, x_bar EMA),
    the whole under `title`; returns the picture as an [H, W, 3] uint8 array."""
    grids = [image_grid(images[:64]).numpy() for _, images in panels]
    height = max(g.shape[0] for g in grids)
    top = (TITLE_PX if title else 0) + PANEL_TITLE_PX
    width_px = 2 * MARGIN + sum(g.shape[1] for g in grids) + GAP * (len(grids) - 1)
    height_px = top + height + MARGIN
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    x = MARGIN
    for (name, _), grid in zip(panels, grids, strict=True):
        gh, gw = grid.shape[:2]
        # One axes pixel per grid pixel: imshow then draws the tiles unresampled.
        ax = fig.add_axes((x / width_px, (MARGIN + height - gh) / height_px,
                           gw / width_px, gh / height_px))
        gray = grid.shape[-1] == 1
        ax.imshow(grid[..., 0] if gray else grid, cmap="gray" if gray else None, vmin=0,
                  vmax=1, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        ax.set_title(name, fontsize=10, pad=4)
        x += gw + GAP
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 6 / height_px, va="top")
    return _render(fig)


def scatter_figure(points: Tensor, title: str = "", reference: Tensor | None = None
                   ) -> np.ndarray:
    """2-D samples over the data points `reference` (gray); an [H, W, 3] uint8 array."""
    fig = Figure(figsize=(4, 4), dpi=110)
    ax = fig.subplots()
    if reference is not None:
        ref = reference.detach().float().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="lightgray", label="data")
    pts = points.detach().float().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:blue", label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _render(fig)


def save_samples(samples: list[tuple[str, Tensor]] | Tensor, path: Path, title: str = "",
                 reference: Tensor | None = None) -> np.ndarray:
    """Draw `samples` (image panels for `sample_figure`, or [n, 2] points for
    `scatter_figure` over `reference`), write the PNG and return the picture."""
    if isinstance(samples, Tensor):
        picture = scatter_figure(samples, title, reference)
    else:
        picture = sample_figure(samples, title)
    imsave(Path(path), picture)
    return picture


__all__ = ["image_grid", "sample_figure", "save_samples", "scatter_figure", "upscale_factor"]
