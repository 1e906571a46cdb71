"""Sample pictures (gossipgan.train.samples): enlarged tiles on a dark background, real images
beside generated ones, one drawing function for the run's samples and the README picture."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from gossipgan.train.samples import (
    GAP,
    MARGIN,
    PAD_PX,
    PAD_VALUE,
    image_grid,
    sample_figure,
    upscale_factor,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("side, scale", [(8, 6), (28, 2), (32, 2), (64, 1)])
def test_grid_is_upscaled_by_an_integer_with_dark_padding(side, scale):
    assert upscale_factor(side) == scale
    images = torch.ones(64, 1, side, side)  # white tiles: every non-white pixel is padding
    grid = image_grid(images)
    tile = side * scale
    assert grid.shape == (8 * (tile + PAD_PX) + PAD_PX, 8 * (tile + PAD_PX) + PAD_PX, 1)
    pad = grid[:PAD_PX].flatten().tolist() + grid[:, :PAD_PX].flatten().tolist()
    assert set(pad) == {PAD_VALUE} and PAD_VALUE <= 0.3
    assert bool((grid[PAD_PX:PAD_PX + tile, PAD_PX:PAD_PX + tile] == 1).all())
    between = grid[:, PAD_PX + tile:2 * PAD_PX + tile]  # the gap between columns 0 and 1
    assert bool((between == PAD_VALUE).all())


def test_upscaling_is_nearest_neighbour():
    img = torch.tensor([[[[-1.0, 1.0], [0.0, -1.0]]]])
    grid = image_grid(img, scale=3, pad=0)[..., 0]
    assert torch.equal(grid, torch.tensor([[0, 0, 0, 1, 1, 1]] * 3 + [[0.5] * 3 + [0] * 3] * 3))


def test_figure_draws_each_grid_unresampled_side_by_side():
    real, fake = torch.rand(64, 1, 8, 8) * 2 - 1, -torch.ones(64, 1, 8, 8)
    picture = sample_figure([("real", real), ("x̄", fake)], "dpoadam, iteration 3")
    side = 8 * (48 + PAD_PX) + PAD_PX
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert picture.shape[1] == 2 * MARGIN + 2 * side + GAP
    # the real grid's pixels appear 1:1 in the picture (its bottom rows sit MARGIN above)
    grid = (image_grid(real)[..., 0].numpy() * 255).round()
    drawn = picture[-MARGIN - side:-MARGIN, MARGIN:MARGIN + side, 0].astype(float)
    assert np.abs(drawn - grid).max() <= 2  # the colour map's 256 levels round


def test_readme_figure_uses_the_runs_drawing_function():
    tree = ast.parse((REPO / "scripts" / "readme_figure.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "gossipgan.train.samples" for a in n.names}
    assert "save_samples" in imported
    assert "imshow" not in (REPO / "scripts" / "readme_figure.py").read_text()
