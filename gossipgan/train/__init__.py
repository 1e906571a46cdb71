"""Config, the run builder, the one training loop, checkpoints, run outputs and plots.

    config      the validated, frozen config sections (and config_io: YAML, --set strings)
    build       open_run / build_run: the one place a run is built from its config
    loop        steps (the only loop over optimizer.step) and train (everything around it)
    evaluate    what is measured at the average iterate x_bar
    store, checkpoint, outputs, plots, samples: a run's files
"""

from gossipgan.train.build import Run, build_run, open_run
from gossipgan.train.config import Config
from gossipgan.train.config_io import apply_overrides, load_config
from gossipgan.train.loop import steps, train

__all__ = ["Config", "Run", "apply_overrides", "build_run", "load_config", "open_run", "steps",
           "train"]
