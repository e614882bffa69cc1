"""Plausibility (MACO): similarity to the facet's real images in the oracle's features, and KID."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import synthetic_fashion_images

from facetviz.core.errors import FacetvizError
from facetviz.measure.oracle import OracleNet, classify
from facetviz.measure.plausibility import facet_range, facet_similarity, kid, oracle_features

D = 16  # feature size of the constructed clusters


@pytest.fixture
def clusters():
    """Two Gaussian clusters of features around different directions: samples of each on demand."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, D))

    def sample(cluster: int, n: int) -> np.ndarray:
        return centres[cluster] + 0.5 * rng.normal(size=(n, D))

    return sample


def images_of(label: int, n: int, seed: int) -> torch.Tensor:
    """Synthetic Fashion-MNIST images [n, 1, 28, 28] of one class, pixels in [0, 1]."""
    pixels = synthetic_fashion_images(np.full(n, label), seed)
    return torch.tensor(pixels, dtype=torch.float32)[:, None] / 255


@pytest.fixture(scope="module")
def oracle() -> OracleNet:
    """A randomly initialized oracle (training one costs ~1 min): its features still separate
    the synthetic classes, which differ in content (class 1 has a second, vertical bar)."""
    torch.manual_seed(0)
    return OracleNet(1, 10).eval()


def brute_force_kid(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with the cubic kernel, written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    def within(s):
        pairs = list(itertools.permutations(range(len(s)), 2))
        return sum(k(s[i], s[j]) for i, j in pairs) / len(pairs)

    across = np.mean([k(a, b) for a in x for b in y])
    return within(x) + within(y) - 2 * across


def test_a_real_image_scores_its_facets_range_another_class_lower(clusters):
    real = clusters(0, 60)
    spread = facet_range(real)
    held_out = facet_similarity(clusters(0, 20), [real] * 20)
    other = facet_similarity(clusters(1, 20), [real] * 20)
    assert spread.low <= np.median(held_out) <= spread.high
    assert np.mean((held_out >= spread.low) & (held_out <= spread.high)) >= 0.75
    assert not spread.below(held_out).any()
    assert (other < spread.low).all() and spread.below(other).all()


def test_facet_similarity_takes_each_images_own_facet_and_its_nearest(clusters):
    facets = [clusters(0, 30), clusters(1, 30)]
    images = np.vstack([clusters(1, 1), clusters(0, 1)])
    own = facet_similarity(images, facets[::-1], nearest=5)
    swapped = facet_similarity(images, facets, nearest=5)
    assert (own > swapped).all()
    # the nearest few are more similar than all of them
    assert (own > facet_similarity(images, facets[::-1], nearest=30)).all()
    with pytest.raises(ValueError, match="2 images but real features for 1"):
        facet_similarity(images, facets[:1])


def test_kid_is_the_unbiased_cubic_kernel_mmd(clusters):
    x, y = clusters(0, 2), clusters(1, 3)  # the smallest sets it takes
    assert kid(x, y) == pytest.approx(brute_force_kid(x, y), rel=1e-10)
    assert kid(x, y) == pytest.approx(kid(y, x), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)
    with pytest.raises(ValueError, match="feature sizes"):
        kid(x, y[:, :4])


def test_kid_is_zero_on_average_for_one_distribution_and_can_be_negative(clusters):
    same = np.array([kid(clusters(0, 4), clusters(0, 4)) for _ in range(300)])
    standard_error = same.std() / np.sqrt(len(same))
    assert abs(same.mean()) < 3 * standard_error
    assert (same < 0).any()
    # the test has power: the biased estimator (self-pairs kept) sits far above 0
    biased = [
        kid(np.vstack([x, x]), np.vstack([y, y]))
        for x, y in ((clusters(0, 4), clusters(0, 4)) for _ in range(100))
    ]
    assert np.mean(biased) > 10 * standard_error


def test_kid_near_zero_for_the_same_distribution_large_for_another(clusters):
    same = kid(clusters(0, 50), clusters(0, 50))
    other = kid(clusters(0, 50), clusters(1, 50))
    assert abs(same) < 0.01 * other


def test_kid_over_subsets(clusters):
    x, y = clusters(0, 40), clusters(1, 30)
    full = kid(x, y)
    # subsets as large as the sets are the sets themselves, in another order
    assert kid(x, y, subsets=3, subset_size=100) == pytest.approx(full)
    averaged = kid(x, y, subsets=20, subset_size=10, seed=1)
    assert averaged == kid(x, y, subsets=20, subset_size=10, seed=1)
    assert averaged != kid(x, y, subsets=20, subset_size=10, seed=2)
    assert averaged == pytest.approx(full, rel=0.2)
    with pytest.raises(ValueError, match="subset_size"):
        kid(x, y, subset_size=1)


def test_oracle_features_are_what_classify_reads(oracle):
    images = images_of(3, 6, 0)
    features = oracle_features(oracle, images, batch_size=4)
    assert features.shape == (6, oracle.head[-1].in_features)
    probabilities = oracle.head[-1](features).softmax(1)
    assert torch.allclose(probabilities, classify(oracle, images), atol=1e-6)


def test_oracle_features_resize_and_keep_the_modules_mode(oracle):
    oracle.input_size = (28, 28)
    try:
        large = torch.rand(3, 1, 32, 32)
        resized = F.interpolate(large, size=(28, 28), mode="bilinear", align_corners=False)
        oracle.train()  # batch statistics would change the features: it must run in eval mode
        assert torch.allclose(oracle_features(oracle, large), oracle_features(oracle, resized))
        assert oracle.training
    finally:
        oracle.input_size = None
        oracle.eval()
    with pytest.raises(FacetvizError, match="channels"):
        oracle_features(oracle, torch.rand(2, 3, 28, 28))


def test_network_features_real_images_in_range_other_class_lower_and_farther(oracle):
    real = oracle_features(oracle, images_of(0, 60, 0))
    held_out = oracle_features(oracle, images_of(0, 20, 1))
    other = oracle_features(oracle, images_of(1, 20, 2))
    spread = facet_range(real)
    held_out_scores = facet_similarity(held_out, [real] * 20)
    other_scores = facet_similarity(other, [real] * 20)
    assert spread.low <= np.median(held_out_scores) <= spread.high
    assert not spread.below(held_out_scores).any()
    assert (other_scores < spread.low).all()
    assert abs(kid(held_out, real)) < 0.01 * kid(other, real)
