"""TensorBoard logging of a run (run.tensorboard=true): RUN_DIR/tb/, written by rank 0.

Every scalar of a metrics.csv row (losses, consensus, ||T(x_bar)||^2, traffic, time, sample
quality and its _ema twin) at its iteration, grouped by kind, and the sample pictures of
samples/ as images. Optional: tensorboard is an extra (`pip install 'gossipgan[tensorboard]'`),
written through torch's own `torch.utils.tensorboard.SummaryWriter`. A resumed run purges the
events logged after its checkpoint, as metrics.csv drops those rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gossipgan.errors import ConfigError

TB_DIR = "tb"

_GROUPS = (("loss/", ("loss_",)), ("quality/", ("cls_", "hq_", "modes_")),
           ("traffic/", ("bytes_sent", "messages", "comm_s")), ("time/", ("wall_s", "epoch")))


def tag_of(key: str) -> str:
    """The TensorBoard tag of a metrics.csv column, e.g. loss/loss_g, quality/cls_fid_ema."""
    for group, prefixes in _GROUPS:
        if key.startswith(prefixes):
            return group + key
    return "optim/" + key  # consensus, grad_op_norm_sq, dist_to_solution


def require_tensorboard() -> None:
    """ConfigError (one line) when torch's TensorBoard writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"run.tensorboard=true needs the tensorboard package ({err}): pip "
                          "install 'gossipgan[tensorboard]', or set run.tensorboard=false"
                          ) from None


class TensorBoardLog:
    """A SummaryWriter on RUN_DIR/tb, or nothing at all (`out` None: off, or not rank 0)."""

    def __init__(self, out: Path | None, resume_step: int | None = None):
        self.writer = None
        if out is None:
            return
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(Path(out) / TB_DIR), purge_step=purge)

    def scalars(self, row: dict | None) -> None:
        """One metrics.csv row, at its iteration; None and non-numbers are skipped."""
        if self.writer is None or not row:
            return
        step = int(row["iter"])
        for key, value in row.items():
            if key != "iter" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag_of(key), value, step)

    def images(self, step: int, pictures: dict[str, np.ndarray] | None) -> None:
        """Sample pictures ([H, W, 3] uint8) under samples/<tag>."""
        if self.writer is None or not pictures:
            return
        for tag, picture in pictures.items():
            self.writer.add_image(f"samples/{tag}", picture, step, dataformats="HWC")
        self.writer.flush()  # pictures are rare and what a user opens TensorBoard to see

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TB_DIR", "TensorBoardLog", "require_tensorboard", "tag_of"]
