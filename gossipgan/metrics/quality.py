"""Sample quality of generated images in the feature space of the project's own classifier.

Metrics (torchmetrics computes the first three; the feature module is a `SmallCNN`):

- ``cls_fid``: Fréchet distance between Gaussians fitted to the classifier's 64-d penultimate
  features of the reference images and of the generated ones (lower is better).
- ``cls_is``: Inception Score formula on the classifier's class logits, 10 splits (higher is
  better; at most the number of classes).
- ``cls_kid``: Kernel (polynomial, degree 3) MMD² of the same features, averaged over random
  subsets (lower is better; unbiased, so it can dip slightly below 0).
- ``cls_classes_hit``: classes that receive at least 20% of their data share of the
  generated samples' predicted labels (mode coverage; data has all of them).
- ``cls_class_kl``: KL(p_gen || p_data) between the predicted-class histograms of the
  generated and reference images (p_data Laplace-smoothed so it is never 0).
- ``cls_precision``, ``cls_recall``: improved precision and recall (Kynkäänniemi et al. 2019)
  of the same 64-d features with k = 5 nearest-neighbour balls: the share of generated
  images inside the reference manifold (fidelity), and of reference images inside the
  generated one (diversity). In [0, 1], higher is better.
- ``cls_density``, ``cls_coverage``: density and coverage (Naeem et al. 2020), same features
  and k: how many reference balls hold a generated image on average, divided by k (about 1
  for a sample of the data distribution, and it can exceed 1), and the share of reference
  balls that hold any generated image. Higher is better. All four are computed on every
  reference and generated image, no subsampling (gossipgan.metrics.prdc), and depend on the
  numbers of images: compare values measured with the same sample counts.

These are THIS project's metrics: a different network, resolution and feature size than
Inception FID/IS, so never comparable to published FID/IS numbers, only between runs measured
with the same classifier. Every random choice (KID subsets, IS split order) is seeded, so the
same images give the same numbers every time.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from gossipgan.data import resize_images
from gossipgan.errors import ConfigError
from gossipgan.metrics.classifier import SmallCNN
from gossipgan.metrics.prdc import DEFAULT_K, PRDC, PRDC_METRICS

CLS_METRICS = ("cls_fid", "cls_is", "cls_kid", "cls_classes_hit", "cls_class_kl",
               *(f"cls_{name}" for name in PRDC_METRICS))
# Covariances of d-dim features need many more than d samples; 8 d keeps the bias of
# cls_fid small enough to rank runs (the 64-d shipped classifiers need 512).
SAMPLES_PER_FEATURE = 8
COVER_SHARE = 0.2


def min_samples(model: SmallCNN) -> int:
    """Fewest images (generated or reference) for a stable cls_fid with this classifier."""
    return SAMPLES_PER_FEATURE * model.num_features


class _Precomputed(nn.Module):
    """torchmetrics' custom feature module, fed the classifier outputs we computed once.

    FID, KID and IS would each run the classifier on every image; `ClassifierMetrics` runs
    it once per chunk (features and logits together) and hands the results to the metrics
    through this pass-through, whose `num_features` sizes their states.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


class ClassifierMetrics:
    """cls_* metrics of generated images against a fixed reference set of real images.

    The reference features are computed once; `__call__(images)` measures a new set of
    generated images. `seed` fixes KID's subsets and IS's split order; `prdc_k` is the
    nearest-neighbour count of cls_precision / recall / density / coverage.
    """

    def __init__(self, model: SmallCNN, reference: Tensor, *, batch_size: int = 1000,
                 kid_subsets: int = 10, kid_subset_size: int = 1000, is_splits: int = 10,
                 seed: int = 0, prdc_k: int = DEFAULT_K):
        self.model = model.eval()
        self.batch_size = batch_size
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        self.min_samples = min_samples(model)
        reference = self._prepare(reference, "reference")
        if len(reference) < self.min_samples:
            raise ConfigError(f"the reference set has {len(reference)} images; cls_fid needs at "
                              f"least {self.min_samples} ({SAMPLES_PER_FEATURE} x the "
                              f"classifier's {model.num_features} features)")
        # No cross-process sync: under torch.distributed only rank 0 measures.
        common = {"reset_real_features": False, "normalize": False, "sync_on_compute": False}
        feats = _Precomputed(model.num_features)
        with warnings.catch_warnings():  # "will save all extracted features": intended
            warnings.simplefilter("ignore", UserWarning)
            self.fid = FrechetInceptionDistance(feature=feats, **common)
            self.kid = KernelInceptionDistance(feature=feats, subsets=kid_subsets,
                                               subset_size=kid_subset_size, **common)
            self.inception = InceptionScore(feature=_Precomputed(model.num_classes),
                                            splits=is_splits, normalize=False,
                                            sync_on_compute=False)
        counts = torch.zeros(model.num_classes, dtype=torch.float64)
        kept = []
        for features, logits in self._outputs(reference):
            self.fid.update(features, real=True)
            self.kid.update(features, real=True)
            kept.append(features)
            counts += torch.bincount(logits.argmax(1), minlength=len(counts)).double()
        self.prdc = PRDC(torch.cat(kept), prdc_k)  # reference radii, once
        self.n_reference = len(reference)
        self.data_hist = (counts + 1) / (counts.sum() + len(counts))  # Laplace: never 0

    def _prepare(self, images: Tensor, what: str) -> Tensor:
        images = images.detach().to("cpu", torch.float32)
        c, h, w = self.model.in_shape
        if images.ndim != 4 or images.shape[1] != c:
            raise ConfigError(f"the classifier takes {c}-channel images [N, {c}, H, W]; the "
                              f"{what} images have shape {tuple(images.shape)}")
        if tuple(images.shape[2:]) != (h, w):
            if h != w:
                raise ConfigError(f"cannot resize {what} images to the classifier's {h}x{w}")
            images = resize_images(images, h)
        return images

    @torch.no_grad()
    def _outputs(self, images: Tensor):
        """(features, logits) of `images`, chunk by chunk, in eval mode (no dropout)."""
        self.model.eval()
        for chunk in images.split(self.batch_size):
            features = self.model.features(chunk)
            yield features, self.model.head(features)

    def __call__(self, images: Tensor) -> dict[str, float]:
        """The cls_* metrics of `images` ([N, C, H, W] in [-1, 1]; resized if needed)."""
        images = self._prepare(images, "generated")
        if len(images) < self.min_samples:
            raise ConfigError(f"{len(images)} generated samples are too few for a stable cls_fid: "
                              f"use at least {self.min_samples}")
        for metric in (self.fid, self.kid, self.inception):
            metric.reset()
        counts = torch.zeros(self.model.num_classes, dtype=torch.float64)
        kept = []
        for features, logits in self._outputs(images):
            self.fid.update(features, real=False)
            self.kid.update(features, real=False)
            self.inception.update(logits)
            kept.append(features)
            counts += torch.bincount(logits.argmax(1), minlength=len(counts)).double()
        self.kid.subset_size = min(self.kid_subset_size, len(images), self.n_reference)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # both draw subsets / orders from the global RNG
            kid_mean, _ = self.kid.compute()
            is_mean, _ = self.inception.compute()
        gen_hist = counts / counts.sum()
        hit = int((gen_hist >= COVER_SHARE * self.data_hist).sum())
        kl = torch.special.xlogy(gen_hist, gen_hist) - torch.special.xlogy(gen_hist, self.data_hist)
        out = {"cls_fid": float(self.fid.compute()), "cls_is": float(is_mean),
               "cls_kid": float(kid_mean), "cls_classes_hit": hit,
               "cls_class_kl": float(kl.sum())}
        out.update({f"cls_{name}": v for name, v in self.prdc(torch.cat(kept)).items()})
        return out


def inception_metrics(real: Tensor, fake: Tensor, weights_path: str) -> dict[str, float]:
    """OPTIONAL Inception FID / IS (published-comparable) for users who have torch-fidelity
    and the pt_inception-2015-12-05 weights file; never used by training or `eval` by default.

    Images in [-1, 1] with 1 or 3 channels; gray images are repeated to RGB.
    """
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
    except ImportError as err:  # pragma: no cover - depends on the torchmetrics build
        raise ConfigError(f"Inception metrics unavailable: {err}") from None
    if not _TORCH_FIDELITY_AVAILABLE:
        raise ConfigError("Inception FID/IS need torch-fidelity: pip install torch-fidelity")
    from pathlib import Path

    if not Path(weights_path).is_file():
        raise ConfigError(f"Inception weights file not found: {weights_path}")

    def to_uint8(x: Tensor) -> Tensor:
        x = x.detach().cpu().float()
        x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights_path)
    logits = NoTrainInceptionV3(name="inception-v3-compat", features_list=["logits_unbiased"],
                                feature_extractor_weights_path=weights_path)
    score = InceptionScore(feature=logits)
    for chunk in real.split(200):
        fid.update(to_uint8(chunk), real=True)
    for chunk in fake.split(200):
        fid.update(to_uint8(chunk), real=False)
        score.update(to_uint8(chunk))
    return {"inception_fid": float(fid.compute()), "inception_is": float(score.compute()[0])}
