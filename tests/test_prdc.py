"""gossipgan.metrics.prdc: precision, recall, density, coverage.

Hand-computed cases, the `prdc` package (Naeem et al.'s code) as a reference where it is
installed, chunking / order invariance, and the cls_* keys ClassifierMetrics adds.
"""

from __future__ import annotations

import pytest
import torch

from gossipgan.errors import ConfigError
from gossipgan.metrics.prdc import PRDC_METRICS, compute_prdc, knn_radii

torch.set_num_threads(1)


def _gauss(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_identical_sets_score_one():
    x = _gauss(200, 8, 0)
    # Each real ball holds its centre and its k - 1 nearest neighbours strictly inside (the
    # k-th is on the sphere), so density is exactly k / k = 1.
    for k in (1, 3, 5):
        assert compute_prdc(x, x.clone(), k) == dict.fromkeys(PRDC_METRICS, 1.0)


def test_disjoint_far_sets_score_zero():
    real, fake = _gauss(100, 4, 0), _gauss(120, 4, 1, shift=100.0)
    assert compute_prdc(real, fake) == dict.fromkeys(PRDC_METRICS, 0.0)


def test_six_points_on_a_line_by_hand():
    # k = 1. Real 0, 1, 3: NND_1 = 1, 1, 2. Fake 0.3, 0.8, -5: NND_1 = 0.5, 0.5, 5.3.
    # precision: 0.3 is 0.3 < 1 from real 0; 0.8 is 0.2 < 1 from real 1; -5 is 5 from
    #   real 0 (radius 1) and farther from the others -> 2/3.
    # recall: real 0 is 0.3 < 0.5 from fake 0.3; real 1 is 0.2 < 0.5 from fake 0.8; real 3
    #   is 2.7, 2.2, 8 from the fakes, radii 0.5, 0.5, 5.3 -> 2/3.
    # density: fake 0.3 lies in the balls of real 0 (0.3 < 1) and real 1 (0.7 < 1), not
    #   real 3 (2.7 > 2); fake 0.8 in real 0 (0.8 < 1) and real 1 (0.2 < 1), not real 3
    #   (2.2 > 2); fake -5 in none -> (2 + 2 + 0) / (1 * 3) = 4/3, above 1.
    # coverage: nearest fakes at 0.3 < 1, 0.2 < 1, 2.2 > 2 -> 2/3.
    real = torch.tensor([[0.0], [1.0], [3.0]])
    fake = torch.tensor([[0.3], [0.8], [-5.0]])
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 2.0]
    out = compute_prdc(real, fake, k=1)
    assert out == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "density": 4 / 3,
                                 "coverage": 2 / 3}, abs=1e-12)
    # k = 2 (needs 3 points a set). Real radii: 0 -> 3, 1 -> 2, 3 -> 3; fake radii: 0.3 ->
    #   5.3, 0.8 -> 5.8, -5 -> 5.8. Every fake is within 5 of real 0 but -5 (5 > 3): the
    #   first two fakes sit in all three real balls, -5 in none -> precision 2/3, density
    #   6 / (2 * 3) = 1; each real is within 2.7 of fake 0.3 (radius 5.3): recall 1,
    #   coverage: 0.3 < 3, 0.2 < 2, 2.2 < 3 -> 1.
    out = compute_prdc(real, fake, k=2)
    assert out == pytest.approx({"precision": 2 / 3, "recall": 1.0, "density": 1.0,
                                 "coverage": 1.0}, abs=1e-12)


def test_matches_the_prdc_package():
    prdc = pytest.importorskip("prdc")
    real, fake = _gauss(300, 16, 0), _gauss(400, 16, 1, shift=0.3) * 1.2
    # float64 inputs, so prdc's sklearn distances round like ours (far below any margin).
    expected = prdc.compute_prdc(real.double().numpy(), fake.double().numpy(), nearest_k=5)
    out = compute_prdc(real, fake, k=5)
    for name in PRDC_METRICS:
        assert out[name] == pytest.approx(float(expected[name]), abs=1e-6), name
    assert 0 < out["precision"] < 1 and 0 < out["coverage"] < 1  # a case that can differ


def test_chunked_equals_unchunked_and_order_does_not_matter():
    real, fake = _gauss(150, 6, 2), _gauss(130, 6, 3, shift=0.5)
    whole = compute_prdc(real, fake, chunk_size=10_000)
    for chunk in (1, 7, 64):
        assert compute_prdc(real, fake, chunk_size=chunk) == whole
    g = torch.Generator().manual_seed(4)
    shuffled = compute_prdc(real[torch.randperm(150, generator=g)],
                            fake[torch.randperm(130, generator=g)])
    assert shuffled == whole
    # Duplicated points (exact ties with a radius) do not depend on the chunking either.
    dup = torch.cat([real, real[:40]])
    assert compute_prdc(dup, dup, chunk_size=3) == compute_prdc(dup, dup)


@pytest.mark.parametrize("n_real, n_fake, k, where", [
    (5, 50, 10, "real set; it has 5"), (50, 4, 5, "fake set; it has 4"),
    (6, 50, 6, "real set; it has 6"),
])
def test_k_at_least_the_set_size_is_refused(n_real, n_fake, k, where):
    with pytest.raises(ConfigError, match=f"k={k} nearest neighbours need at least "
                                          f"{k + 1} points in the {where}") as err:
        compute_prdc(_gauss(n_real, 3, 0), _gauss(n_fake, 3, 1), k=k)
    assert "\n" not in str(err.value)


def test_bad_arguments_and_non_finite_fakes():
    x = _gauss(20, 3, 0)
    for k in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="integer >= 1"):
            compute_prdc(x, x, k=k)
    with pytest.raises(ConfigError, match="3 dimensions"):
        compute_prdc(_gauss(20, 4, 0), x)
    with pytest.raises(ConfigError, match="2-D tensor"):
        compute_prdc(x, x[0])
    with pytest.raises(ConfigError, match="chunk_size"):
        compute_prdc(x, x, chunk_size=0)
    bad = x.clone()
    bad[3, 1] = float("nan")  # a diverged generator: NaN, as its other metrics would be
    out = compute_prdc(x, bad)
    assert set(out) == set(PRDC_METRICS) and all(v != v for v in out.values())


def test_classifier_metrics_report_the_four_in_range():
    from gossipgan.data import load_dataset
    from gossipgan.metrics import CLS_METRICS, ClassifierMetrics, load_shipped

    digits = load_dataset("digits", split="all")
    model, _ = load_shipped("digits")
    metrics = ClassifierMetrics(model, digits.x[::2], kid_subsets=2)
    real = metrics(digits.x[1::2])
    noise = metrics(torch.rand(900, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    names = [f"cls_{n}" for n in PRDC_METRICS]
    assert set(names) <= set(real) == set(CLS_METRICS) == set(noise)
    for name in names:  # the other half of the data: a sample of the same distribution
        assert 0.6 < real[name] <= (1.5 if name == "cls_density" else 1.0), (name, real[name])
    assert noise["cls_precision"] < 0.5 * real["cls_precision"]
    assert noise["cls_coverage"] < 0.5 * real["cls_coverage"]
    assert noise["cls_density"] < 0.5 * real["cls_density"]
