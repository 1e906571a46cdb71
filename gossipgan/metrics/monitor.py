"""Sample quality of a run's generator: the one code path training and `gossipgan eval` share.

`QualityMonitor.measure(params, n)` draws `n` samples from the generator at `params` (the
average model x_bar) with a generator seeded from the run's seed, in fixed chunks, and
measures them: cls_* metrics for image datasets, hq_rate / modes_covered for 2-D mixtures.
Same parameters and `n` give the same numbers, so `eval` on a checkpoint reproduces what
training logged at that iteration.

The classifier for an image dataset, first found of: the `classifier` arguments (in order;
a run passes `--classifier`, then run.classifier), the one shipped for the dataset,
`<run_dir>/classifier.pt` (written by `gossipgan eval --train-classifier`). The reference
images: the game's own dataset (the train split), a fixed subset of at most REFERENCE_CAP.
Everything here takes plain arguments; `gossipgan.train.build` wires it to a run's config.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import Tensor

from gossipgan.data import MIXTURES, Dataset
from gossipgan.errors import ConfigError
from gossipgan.games.base import Game
from gossipgan.metrics.classifier import (
    load_classifier,
    load_shipped,
    no_classifier_message,
    shipped_path,
)
from gossipgan.metrics.mixture import MIXTURE_SAMPLES, mixture_metrics
from gossipgan.metrics.quality import ClassifierMetrics, min_samples

log = logging.getLogger("gossipgan")

QUALITY_SEED_OFFSET = 7_777_777
GEN_CHUNK = 1000  # the generator's BatchNorm uses batch statistics: keep chunks fixed
REFERENCE_CAP = 10_000
TRAIN_IMAGE_SAMPLES = 2000
EVAL_IMAGE_SAMPLES = 10_000
RUN_CLASSIFIER = "classifier.pt"


@torch.no_grad()
def generate_samples(game, params: dict, n: int, seed: int) -> Tensor:
    """`n` samples of `game`'s generator at `params`, drawn in GEN_CHUNK chunks from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    chunks, left = [], n
    while left > 0:
        size = min(GEN_CHUNK, left)
        chunks.append(game.generate(params, size, gen).detach().float().cpu())
        left -= size
    return torch.cat(chunks)


def find_classifier(dataset: str, candidates: tuple = (), run_dir: Path | None = None
                    ) -> Path | None:
    """The classifier file a run's quality metrics use (order in the module docstring)."""
    for candidate in candidates:
        if candidate:
            if not Path(candidate).is_file():
                raise ConfigError(f"classifier file not found: {candidate}")
            return Path(candidate)
    shipped = shipped_path(dataset)
    if shipped is not None:
        return shipped
    if run_dir is not None and (Path(run_dir) / RUN_CLASSIFIER).is_file():
        return Path(run_dir) / RUN_CLASSIFIER
    return None


def reference_images(dataset: Dataset, cap: int = REFERENCE_CAP) -> Tensor:
    """The real images quality is measured against: `dataset`'s, a fixed subset of <= cap."""
    if len(dataset) > cap:
        keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:cap]
        return dataset.x[keep]
    return dataset.x


class QualityMonitor:
    """Measures a run's generator; build with `build_monitor`."""

    def __init__(self, game: Game, seed: int, classifier_path: Path | None = None):
        self.game = game
        self.dataset = game.dataset.name
        self.seed = seed + QUALITY_SEED_OFFSET
        self.info: dict = {"dataset": self.dataset}
        if game.dataset.kind == "points":
            if self.dataset not in MIXTURES:
                raise ConfigError(f"no quality metric for 2-D dataset {self.dataset!r}: only "
                                  f"the mixtures {', '.join(MIXTURES)} have known modes")
            self.kind, self.metrics, self.min_samples = "points", None, 1
            self.info["note"] = "hq_rate / modes_covered (PacGAN definitions)"
            return
        self.kind = "image"
        if classifier_path is None:
            raise ConfigError(no_classifier_message(self.dataset))
        if classifier_path == shipped_path(self.dataset):
            model, record = load_shipped(self.dataset)
        else:
            model, record = load_classifier(classifier_path)
        self.min_samples = min_samples(model)
        self.metrics = ClassifierMetrics(model, reference_images(game.dataset), seed=self.seed)
        self.info.update({
            "note": "cls_* = this project's classifier-feature metrics, NOT Inception FID/IS",
            "classifier": str(classifier_path),
            "classifier_sha256": hashlib.sha256(Path(classifier_path).read_bytes()).hexdigest(),
            "classifier_dataset": record.get("dataset"),
            "classifier_test_accuracy": record.get("test_accuracy"),
            "reference_images": self.metrics.n_reference,
        })

    def default_samples(self, training: bool) -> int:
        if self.kind == "points":
            return MIXTURE_SAMPLES
        return TRAIN_IMAGE_SAMPLES if training else EVAL_IMAGE_SAMPLES

    def check_samples(self, n: int, what: str = "samples") -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < self.min_samples:
            why = " for a stable cls_fid" if self.kind == "image" else ""
            raise ConfigError(f"{what}={n!r} is too few{why}: use at least {self.min_samples}")

    def measure(self, params: dict, n: int) -> dict[str, float | int]:
        """The quality metrics of `n` samples of the generator at `params`."""
        self.check_samples(n)
        samples = generate_samples(self.game, params, n, self.seed)
        if self.kind == "points":
            return mixture_metrics(self.dataset, samples)
        return self.metrics(samples)


def build_monitor(game: Game, seed: int, *, run_dir: Path | None = None,
                  classifiers: tuple = (), required: bool = True) -> QualityMonitor | None:
    """A QualityMonitor for `game`'s generator, or None (logged) when no metric applies and
    `required` is False; with `required`, a ConfigError says what is missing."""
    try:
        path = None
        if game.dataset.kind == "image":
            path = find_classifier(game.dataset.name, classifiers, run_dir)
        return QualityMonitor(game, seed, path)
    except ConfigError as err:
        if required:
            raise
        log.warning("quality metrics off: %s", err)
        return None
