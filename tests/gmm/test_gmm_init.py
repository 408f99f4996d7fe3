"""GMM initialisation: k-means++ + Lloyd, binary splitting, component splitting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from spkid.errors import ModelError
from spkid.gmm import init as gmm_init


def blobs(seed: int = 0, n_per_blob: int = 500):
    rng = np.random.default_rng(seed)
    centres = np.array([[-8.0, 0.0, 1.0], [0.0, 8.0, -1.0], [8.0, 0.0, 0.0], [0.0, -8.0, 2.0]])
    frames = np.concatenate([c + rng.standard_normal((n_per_blob, 3)) * 0.5 for c in centres])
    return frames.astype(np.float32), centres


def mixture_moments(weights, means, variances):
    mean = weights @ means
    return mean, weights @ (variances + means**2) - mean**2


def test_split_component_preserves_mixture_moments():
    rng = np.random.default_rng(1)
    weights = np.array([0.6, 0.4, 0.0])
    means = rng.normal(size=(3, 4))
    variances = rng.uniform(0.5, 2.0, size=(3, 4))
    before = mixture_moments(weights[:2], means[:2], variances[:2])
    axis = int(np.argmax(variances[0]))
    gmm_init.split_component(weights, means, variances, source=0, target=2)
    after = mixture_moments(weights, means, variances)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-12)
    np.testing.assert_allclose(after[1], before[1], rtol=1e-12)
    assert weights[0] == weights[2] == pytest.approx(0.3)
    moved = np.flatnonzero(means[0] != means[2])
    assert list(moved) == [axis]  # perturbed along the largest-variance axis only


def test_kmeans_init_finds_separated_clusters():
    frames, centres = blobs()
    weights, means, variances = gmm_init.kmeans_init(
        frames, 4, random_state=np.random.RandomState(0), variance_floor=1e-3
    )
    rows, cols = linear_sum_assignment(((means[:, None] - centres[None]) ** 2).sum(-1))
    np.testing.assert_allclose(means[rows], centres[cols], atol=0.1)
    np.testing.assert_allclose(weights, 0.25, atol=0.01)
    np.testing.assert_allclose(variances, 0.25, rtol=0.2)


def test_kmeans_init_respects_floor_and_is_deterministic():
    frames, _ = blobs(seed=2)
    floor = 0.5 * frames.var(axis=0)
    first = gmm_init.kmeans_init(frames, 8, random_state=np.random.RandomState(3), variance_floor=0.5)
    second = gmm_init.kmeans_init(frames, 8, random_state=np.random.RandomState(3), variance_floor=0.5)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    weights, means, variances = first
    assert weights.shape == (8,) and means.shape == variances.shape == (8, 3)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(variances >= floor * (1 - 1e-6))
    with pytest.raises(ModelError, match="cannot seed"):
        gmm_init.kmeans_init(frames[:5], 8, random_state=np.random.RandomState(0), variance_floor=0.0)


def test_binary_split_init_grows_to_any_size():
    frames, _ = blobs(seed=4)
    calls = []

    def em_step(frames, weights, means, variances):
        calls.append(weights.shape[0])
        assert frames.shape[1] == 3
        return weights, means, variances

    weights, means, variances = gmm_init.binary_split_init(
        frames, 6, em_step, variance_floor=1e-3, n_iter_per_level=2
    )
    assert calls == [2, 2, 4, 4]  # 1 -> 2 -> 4 -> 6, no EM after the last split
    assert weights.shape == (6,) and means.shape == variances.shape == (6, 3)
    assert weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights @ means, frames.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert len({tuple(row) for row in means}) == 6


def test_init_frame_budget():
    assert gmm_init.n_init_frames(1000, 8) == 1000
    assert gmm_init.n_init_frames(10**6, 8) == gmm_init.MIN_INIT_FRAMES
    assert gmm_init.n_init_frames(10**7, 1024) == gmm_init.INIT_FRAMES_PER_COMPONENT * 1024
