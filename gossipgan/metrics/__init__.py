"""Sample-quality metrics measured offline (DESIGN.md §6).

Image datasets: cls_fid, cls_is, cls_kid (torchmetrics FID / Inception Score / KID with the
project's own small CNN classifier as the feature network), cls_classes_hit, cls_class_kl,
cls_precision, cls_recall, cls_density, cls_coverage (k-NN manifold metrics, `compute_prdc`
on any features). They are NOT Inception FID/IS and not comparable to published numbers.
2-D mixtures: hq_rate, modes_covered (PacGAN definitions).

    model, record = load_shipped("digits")                  # weights in gossipgan/assets/
    metrics = ClassifierMetrics(model, real_images)          # reference features, once
    metrics(fake_images)  # {"cls_fid": ..., "cls_is": ..., "cls_kid": ..., ...}
    mixture_metrics("ring8", points)                         # {"hq_rate": ..., "modes_covered": 8}
    monitor = build_monitor(cfg, game)                       # what training and `eval` use
    monitor.measure(x_bar, 2000)
"""

from gossipgan.metrics.classifier import (
    SmallCNN,
    accuracy,
    load_classifier,
    load_shipped,
    save_classifier,
    shipped_path,
    shipped_records,
    train_classifier,
)
from gossipgan.metrics.mixture import (
    MIXTURE_METRICS,
    MIXTURE_SAMPLES,
    mixture_metrics,
    mode_coverage,
)
from gossipgan.metrics.monitor import QualityMonitor, build_monitor, generate_samples
from gossipgan.metrics.prdc import PRDC_METRICS, compute_prdc
from gossipgan.metrics.quality import CLS_METRICS, ClassifierMetrics, inception_metrics, min_samples

QUALITY_METRICS = CLS_METRICS + MIXTURE_METRICS

__all__ = [
    "CLS_METRICS", "MIXTURE_METRICS", "MIXTURE_SAMPLES", "PRDC_METRICS", "QUALITY_METRICS",
    "ClassifierMetrics", "QualityMonitor", "SmallCNN", "accuracy", "build_monitor",
    "compute_prdc", "generate_samples",
    "inception_metrics", "load_classifier", "load_shipped", "min_samples", "mixture_metrics",
    "mode_coverage", "save_classifier", "shipped_path", "shipped_records", "train_classifier",
]
