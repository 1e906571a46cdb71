"""The small CNN classifiers whose feature space the cls_* quality metrics live in.

One classifier per image dataset, trained with a fixed seed by `train_classifier` (the script
scripts/train_classifiers.py for the shipped ones, `gossipgan eval --train-classifier` for a
user's dataset), saved as a plain dict that `torch.load(weights_only=True)` reads:

    {"format", "dataset", "in_shape", "num_classes", "width", "feat_dim", "classes",
     "test_accuracy", "test_samples", "epochs", "seed", "state_dict"}

The shipped weights sit in gossipgan/assets/<dataset>.pt, with their recorded test accuracy
and SHA-256 in gossipgan/assets/classifiers.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gossipgan.data import Dataset
from gossipgan.errors import ConfigError

log = logging.getLogger("gossipgan")

FORMAT = "gossipgan-classifier-1"
FEATURE_DIM = 64
# Epochs that reach the accuracy aims on 2 CPU cores in seconds to minutes.
DEFAULT_EPOCHS = {"digits": 30, "mnist5k": 20, "fashion-mnist": 2}
_FALLBACK_EPOCHS = 10
AUGMENT_BELOW = 20_000


class SmallCNN(nn.Module):
    """conv-pool-conv-pool-conv (each conv with BatchNorm), a 64-d feature layer, then logits.

    Works for any [C, H, W]: the first pooling is skipped for images under 16 pixels (8x8
    digits) and an adaptive pool fixes the size before the feature layer. `features(x)` gives
    the penultimate activations (what cls_fid / cls_kid compare), `forward(x)` the logits
    (what cls_is and class coverage use). Inputs are images in [-1, 1], like the datasets.
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int = 32,
                 feat_dim: int = FEATURE_DIM):
        super().__init__()
        c, h, _ = in_shape
        self.in_shape = tuple(int(v) for v in in_shape)
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.num_features = int(feat_dim)  # the attribute torchmetrics reads for its state size
        first_pool: nn.Module = nn.MaxPool2d(2) if h >= 16 else nn.Identity()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            # BatchNorm: Fashion-MNIST reaches ~90% in 2 epochs with it, ~86% without
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU()]

        self.body = nn.Sequential(
            *conv(c, width), first_pool,
            *conv(width, 2 * width), nn.MaxPool2d(2),
            *conv(2 * width, 2 * width), nn.AdaptiveAvgPool2d(3),
            nn.Flatten(), nn.Linear(2 * width * 9, feat_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feat_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.body(x)))


def _check_labelled(ds: Dataset) -> int:
    if ds.kind != "image":
        raise ConfigError(f"dataset {ds.name!r} holds 2-D points, not images: it needs no "
                          "classifier (its quality metrics are hq_rate / modes_covered)")
    if ds.y is None:
        raise ConfigError(f"dataset {ds.name!r} has no labels; a classifier needs class labels "
                          "(for .npz give an array 'y')")
    k = ds.num_classes or 0
    if k < 2:
        raise ConfigError(f"dataset {ds.name!r} has {k} class(es); a classifier needs at least 2")
    return k


@torch.no_grad()
def accuracy(model: SmallCNN, ds: Dataset, batch_size: int = 1000) -> float:
    """Fraction of `ds` that `model` labels correctly."""
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum())
                  for x, y in zip(ds.x.split(batch_size), ds.y.split(batch_size), strict=True))
    return correct / max(len(ds), 1)


def train_classifier(train: Dataset, test: Dataset | None = None, *, epochs: int | None = None,
                     seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
                     holdout: float = 0.1, augment: bool | None = None
                     ) -> tuple[SmallCNN, dict]:
    """Train a SmallCNN on `train` with a fixed seed; returns the model and its record.

    Without `test`, a seeded `holdout` fraction of `train` is held out to measure accuracy.
    Adam with a one-cycle schedule. `augment` (default: for fewer than AUGMENT_BELOW training
    images) adds random shifts of up to 1 pixel (images of 16+ pixels) or 2 pixels (24+), so
    small data sets (mnist5k's 4,000) still generalise; large ones need no help and train
    faster without.
    """
    k = _check_labelled(train)
    if test is None:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        cut = max(1, int(round(holdout * len(train))))
        test = Dataset(train.name, train.x[order[:cut]], train.y[order[:cut]], "image",
                       train.classes)
        train = Dataset(train.name, train.x[order[cut:]], train.y[order[cut:]], "image",
                        train.classes)
    if test.shape != train.shape:
        raise ConfigError(f"test images {test.shape} differ from train images {train.shape}")
    epochs = epochs or DEFAULT_EPOCHS.get(train.name, _FALLBACK_EPOCHS)
    if epochs < 1:
        raise ConfigError(f"classifier epochs must be >= 1, got {epochs}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initialisation and dropout masks
        model = SmallCNN(train.shape, k)
        steps = epochs * math.ceil(len(train) / batch_size)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        side = min(train.shape[-2:])
        shift = 2 if side >= 24 else 1 if side >= 16 else 0
        if not (len(train) < AUGMENT_BELOW if augment is None else augment):
            shift = 0
        for epoch in range(epochs):
            model.train()
            total = 0.0
            for idx in torch.randperm(len(train), generator=gen).split(batch_size):
                x = train.x[idx]
                if shift:
                    x = _random_shift(x, shift, gen)
                loss = F.cross_entropy(model(x), train.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            log.info("classifier %s epoch %d/%d: train loss %.4f", train.name, epoch + 1, epochs,
                     total / len(train))
    acc = accuracy(model, test)
    record = {"format": FORMAT, "dataset": train.name, "in_shape": list(train.shape),
              "num_classes": k, "width": model.width, "feat_dim": model.num_features,
              "classes": list(train.classes) if train.classes else None,
              "test_accuracy": acc, "test_samples": len(test), "epochs": epochs, "seed": seed}
    return model.eval(), record


def _random_shift(x: Tensor, s: int, gen: torch.Generator) -> Tensor:
    """Translate each image by -s..s pixels each way (pad with the background value -1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s), value=-1.0)
    dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * s)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


def save_classifier(model: SmallCNN, record: dict, path: str | Path) -> str:
    """Write the classifier file; returns its SHA-256."""
    data = dict(record, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})
    buf = io.BytesIO()
    torch.save(data, buf)
    payload = buf.getvalue()
    Path(path).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def load_classifier(path: str | Path, expected_sha256: str | None = None
                    ) -> tuple[SmallCNN, dict]:
    """Read a classifier file (ConfigError naming it if missing or damaged)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no classifier file at {path}")
    payload = path.read_bytes()
    if expected_sha256 and hashlib.sha256(payload).hexdigest() != expected_sha256:
        raise ConfigError(f"classifier {path} does not match the SHA-256 recorded in "
                          "classifiers.json: the file is damaged; reinstall the package")
    try:
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        model = SmallCNN(tuple(data["in_shape"]), data["num_classes"], data["width"],
                         data["feat_dim"])
        model.load_state_dict(data.pop("state_dict"))
    except Exception as err:  # any unpickling / shape problem means a bad file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ConfigError(f"{path} is not a usable gossipgan classifier ({first}); give a file "
                          "written by `gossipgan eval --train-classifier`") from None
    return model.eval(), data


def shipped_records() -> dict:
    """classifiers.json: dataset -> {file, test_accuracy, sha256, ...} of the shipped ones."""
    text = resources.files("gossipgan").joinpath("assets/classifiers.json").read_text()
    return json.loads(text)


def shipped_path(dataset: str) -> Path | None:
    """Path of the shipped classifier for `dataset`, or None if the project ships none."""
    record = shipped_records().get(dataset)
    if record is None:
        return None
    return Path(str(resources.files("gossipgan").joinpath(f"assets/{record['file']}")))


def load_shipped(dataset: str) -> tuple[SmallCNN, dict]:
    """The shipped classifier of `dataset`, checked against its recorded SHA-256."""
    path = shipped_path(dataset)
    if path is None:
        raise ConfigError(no_classifier_message(dataset))
    return load_classifier(path, shipped_records()[dataset]["sha256"])


def no_classifier_message(dataset: str) -> str:
    known = ", ".join(sorted(shipped_records()))
    return (f"no shipped classifier for dataset {dataset!r} (shipped: {known}); train one with "
            f"`gossipgan eval RUN_DIR --train-classifier` or pass --classifier FILE")
