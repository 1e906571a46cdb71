"""Config, the one training loop, checkpoints, run outputs and plots."""

from gossipgan.train.config import Config, apply_overrides, load_config
from gossipgan.train.loop import build_run, train

__all__ = ["Config", "apply_overrides", "build_run", "load_config", "train"]
