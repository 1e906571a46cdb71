"""TensorBoard logging (run.tensorboard=true): RUN_DIR/tb/ holds every metrics.csv scalar and
the sample pictures; without the tensorboard package, one line says what to install."""

from __future__ import annotations

import csv
import sys

import pytest
import torch
from test_train import tiny

from gossipgan.errors import ConfigError
from gossipgan.train import loop
from gossipgan.train.tblog import tag_of

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

torch.set_num_threads(1)


def test_event_file_holds_the_logged_scalars_and_the_sample_pictures(tmp_path):
    cfg = tiny("run.iters=4", "run.eval_every=2", "run.log_every=1", "run.sample_every=2",
               "run.ema=0.9", "run.tensorboard=true")
    loop.train(cfg, tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    for key in ("loss_g", "consensus", "grad_op_norm_sq", "bytes_sent", "messages", "comm_s",
                "hq_rate", "hq_rate_ema", "modes_covered"):
        assert tag_of(key) in tags["scalars"], key
        logged = {e.step: e.value for e in events.Scalars(tag_of(key))}
        want = {int(r["iter"]): float(r[key]) for r in rows if r[key]}
        assert logged.keys() == want.keys(), key
        assert all(logged[k] == pytest.approx(v, rel=1e-5, abs=1e-9) for k, v in want.items())
    assert {"samples/xbar", "samples/xbar_ema", "samples/worker0"} <= set(tags["images"])
    image = events.Images("samples/xbar")[-1]
    assert image.step == 4 and image.width > 100 and image.encoded_image_string[:4] == b"\x89PNG"


def test_without_tensorboard_one_line_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ConfigError, match="tensorboard") as err:
        loop.train(tiny("run.iters=2", "run.tensorboard=true"), tmp_path, progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "metrics.csv").exists()  # refused before anything was written
