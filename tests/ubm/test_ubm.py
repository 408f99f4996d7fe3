"""Tests of spkid.ubm: configs, UBM training, and MAP adaptation against scikit-learn responsibilities."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from spkid.errors import ConfigError, ModelError
from spkid.gmm import DiagonalGMM
from spkid.ubm import EnrollConfig, UBMConfig, enroll, map_adapt, train_ubm

N_COMPONENTS, N_FEATURES = 8, 3


def sklearn_model(model: DiagonalGMM) -> GaussianMixture:
    mixture = GaussianMixture(model.n_components, covariance_type="diag")
    mixture.weights_, mixture.means_ = np.array(model.weights_), np.array(model.means_)
    mixture.covariances_ = np.array(model.variances_)
    mixture.precisions_cholesky_ = 1.0 / np.sqrt(model.variances_)
    return mixture


@pytest.fixture(scope="module")
def ubm() -> DiagonalGMM:
    rng = np.random.default_rng(0)
    return DiagonalGMM.from_params(
        rng.dirichlet(np.full(N_COMPONENTS, 3.0)),
        rng.normal(0, 3, (N_COMPONENTS, N_FEATURES)),
        rng.uniform(0.5, 1.5, (N_COMPONENTS, N_FEATURES)),
    )


@pytest.fixture(scope="module")
def speaker_frames(ubm) -> list[np.ndarray]:
    """Two utterances of a 'speaker' whose frames sit near a shifted subset of the UBM components."""
    rng = np.random.default_rng(1)
    utterances = []
    for n_frames in (150, 90):
        components = rng.choice([0, 1, 2, 5], size=n_frames)
        frames = ubm.means_[components] + 0.7 + rng.normal(size=(n_frames, N_FEATURES)) * 0.8
        utterances.append(frames.astype(np.float32))
    return utterances


def expected_statistics(ubm: DiagonalGMM, frames: np.ndarray):
    """Soft counts and first/second moments from scikit-learn's responsibilities under the UBM."""
    responsibilities = sklearn_model(ubm).predict_proba(frames.astype(np.float64))
    counts = responsibilities.sum(axis=0)
    first = responsibilities.T @ frames
    second = responsibilities.T @ frames.astype(np.float64) ** 2
    return counts, first, second


class TestMapAdapt:
    def test_infinite_relevance_returns_ubm(self, ubm, speaker_frames):
        for relevance in (np.inf, 1e12):
            model = map_adapt(
                ubm, speaker_frames, relevance_factor=relevance, adapt="means,weights,variances"
            )
            np.testing.assert_allclose(model.means_, ubm.means_, atol=1e-6)
            np.testing.assert_allclose(model.weights_, ubm.weights_, atol=1e-9)
            np.testing.assert_allclose(model.variances_, ubm.variances_, atol=1e-6)

    def test_zero_relevance_gives_ml_estimates(self, ubm, speaker_frames):
        frames = np.concatenate(speaker_frames)
        counts, first, second = expected_statistics(ubm, frames)
        all_parts = ("means", "weights", "variances")
        model = map_adapt(ubm, speaker_frames, relevance_factor=1e-10, adapt=all_parts)
        seen = counts > 1e-3  # components that explain some of the speaker's frames
        assert seen.sum() >= 3
        ml_means = first[seen] / counts[seen, None]
        np.testing.assert_allclose(model.means_[seen], ml_means, rtol=1e-4, atol=1e-4)
        ml_variances = second[seen] / counts[seen, None] - ml_means**2
        np.testing.assert_allclose(model.variances_[seen], ml_variances, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(model.weights_, counts / counts.sum(), atol=1e-6)
        unseen = counts < 1e-12
        np.testing.assert_allclose(model.means_[unseen], ubm.means_[unseen], atol=1e-6)

    def test_relevance_interpolates_as_reynolds(self, ubm, speaker_frames):
        frames = np.concatenate(speaker_frames)
        counts, first, _ = expected_statistics(ubm, frames)
        model = map_adapt(ubm, speaker_frames, relevance_factor=16.0)
        alpha = (counts / (counts + 16.0))[:, None]
        data_means = first / np.maximum(counts, 1e-300)[:, None]
        expected = alpha * data_means + (1 - alpha) * ubm.means_
        np.testing.assert_allclose(model.means_, expected, rtol=1e-4, atol=1e-4)
        # Mean-only adaptation keeps the UBM weights and variances exactly (fast scoring relies on it).
        np.testing.assert_array_equal(model.weights_, ubm.weights_)
        np.testing.assert_array_equal(model.variances_, ubm.variances_)

    def test_ubm_untouched_and_list_equals_concatenation(self, ubm, speaker_frames):
        before = [np.array(a) for a in (ubm.weights_, ubm.means_, ubm.variances_)]
        from_list = map_adapt(ubm, speaker_frames, adapt="means,variances")
        from_array = map_adapt(ubm, np.concatenate(speaker_frames), adapt=["variances", "means"])
        assert from_list is not ubm
        for original, now in zip(before, (ubm.weights_, ubm.means_, ubm.variances_), strict=True):
            np.testing.assert_array_equal(original, now)
        np.testing.assert_allclose(from_list.means_, from_array.means_, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(from_list.variances_, from_array.variances_, rtol=1e-4)

    def test_variances_stay_above_floor(self, ubm):
        # A single repeated frame has zero variance: adaptation must not produce zero variances.
        frames = np.repeat(ubm.means_[:1], 200, axis=0).astype(np.float32)
        model = map_adapt(ubm, frames, relevance_factor=0.0, adapt="variances")
        assert np.all(model.variances_ > 0)

    def test_enroll_uses_config(self, ubm, speaker_frames):
        config = EnrollConfig(relevance_factor=4.0, adapt="means,weights")
        expected = map_adapt(ubm, speaker_frames, relevance_factor=4.0, adapt=("means", "weights"))
        model = enroll(ubm, speaker_frames, config)
        np.testing.assert_allclose(model.means_, expected.means_)
        np.testing.assert_allclose(model.weights_, expected.weights_)

    def test_errors(self, ubm):
        with pytest.raises(ModelError, match="3"):
            map_adapt(ubm, np.zeros((10, 5), np.float32))
        with pytest.raises(ModelError, match="no feature frames"):
            map_adapt(ubm, [np.zeros((0, 3), np.float32)])
        with pytest.raises(ConfigError, match="enroll.adapt"):
            map_adapt(ubm, np.zeros((10, 3), np.float32), adapt="mean")
        with pytest.raises(ModelError, match="relevance_factor"):
            map_adapt(ubm, np.zeros((10, 3), np.float32), relevance_factor=-1.0)


def clustered_frames(n_frames: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[-6.0, 0, 0], [6.0, 0, 0], [0, 6.0, 0], [0, -6.0, 3]])
    labels = rng.integers(0, len(centres), n_frames)
    frames = (centres[labels] + rng.normal(size=(n_frames, 3))).astype(np.float32)
    return np.array_split(frames, 10), centres


class TestTrainUbm:
    def test_matches_sklearn_fit(self):
        utterances, centres = clustered_frames(4000, seed=2)
        frames = np.concatenate(utterances)
        config = UBMConfig(n_components=4, max_iter=30, min_frames_per_component=20)
        model = train_ubm(utterances, config)
        assert model.n_components == 4 and model.n_iter_ >= 1
        reference = GaussianMixture(4, covariance_type="diag", random_state=0, n_init=3).fit(frames)
        assert model.score(frames) == pytest.approx(reference.score(frames), abs=0.02)
        found = model.means_[np.argsort(model.means_[:, 0] * 10 + model.means_[:, 1])]
        np.testing.assert_allclose(found, centres[np.argsort(centres[:, 0] * 10 + centres[:, 1])], atol=0.2)

    def test_subsampling_per_iteration(self):
        utterances, _ = clustered_frames(6000, seed=3)
        frames = np.concatenate(utterances)
        full = train_ubm(utterances, UBMConfig(n_components=4, max_iter=15))
        sampled = train_ubm(utterances, UBMConfig(n_components=4, max_iter=15, max_frames=1500))
        assert sampled.score(frames) == pytest.approx(full.score(frames), abs=0.02)
        split = train_ubm(utterances, UBMConfig(n_components=4, init="split", max_iter=3))
        assert split.n_components == 4 and split.n_iter_ >= 1 and np.isfinite(split.score(frames))

    def test_reduces_components_on_small_pools(self, caplog):
        utterances, _ = clustered_frames(1000, seed=4)
        with caplog.at_level(logging.WARNING, logger="spkid.ubm"):
            model = train_ubm(utterances, UBMConfig(max_iter=2))
        assert model.n_components == 32  # 1000 frames / 20 per component = 50 -> 32
        assert "training 32 components" in caplog.text

    def test_too_few_frames(self):
        with pytest.raises(ModelError, match="min_frames_per_component=20"):
            train_ubm([np.zeros((30, 3), np.float32)], UBMConfig(n_components=8))
        with pytest.raises(ModelError, match="no feature frames"):
            train_ubm([], UBMConfig())


class TestConfigs:
    def test_ubm_defaults(self):
        config = UBMConfig()
        assert config.to_dict() == {
            "n_components": 512,
            "wideband_components": 128,
            "max_iter": 10,
            "tol": 1e-4,
            "init": "kmeans++",
            "variance_floor": 1e-3,
            "min_frames_per_component": 20,
            "max_frames": None,
            "random_state": 0,
            "backend": "local",
            "scheduler": None,
            "n_jobs": -1,
            "max_unusable_fraction": 0.2,
        }
        assert UBMConfig.from_dict(config.to_dict()) == config

    def test_unknown_keys_suggest(self):
        with pytest.raises(ConfigError, match="ubm: unknown setting 'n_component' \\(did you mean 'n_comp"):
            UBMConfig.from_dict({"n_component": 64})
        with pytest.raises(ConfigError, match="enroll: unknown setting 'relevance'"):
            EnrollConfig.from_dict({"relevance": 8})

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"n_components": -4}, "ubm.n_components=-4: must be a positive integer"),
            ({"max_iter": 0}, "ubm.max_iter"),
            ({"tol": -1.0}, "ubm.tol"),
            ({"init": "kmeans"}, "did you mean 'kmeans\\+\\+'"),
            ({"variance_floor": 0.0}, "ubm.variance_floor"),
            ({"max_frames": 0}, "ubm.max_frames"),
            ({"backend": "spark"}, "ubm.backend"),
            ({"n_jobs": 0}, "ubm.n_jobs"),
            ({"random_state": -1}, "ubm.random_state"),
        ],
    )
    def test_ubm_validation(self, settings, message):
        with pytest.raises(ConfigError, match=message):
            UBMConfig(**settings)

    def test_enroll_config(self):
        assert EnrollConfig().adapt == ("means",) and EnrollConfig().relevance_factor == 4.0
        assert EnrollConfig(adapt="weights, means").adapt == ("means", "weights")
        config = EnrollConfig(relevance_factor=8, adapt=["variances", "means"])
        assert config.to_dict() == {
            "relevance_factor": 8.0,
            "adapt": ["means", "variances"],
            "cross_band_relevance_factor": None,
        }
        assert EnrollConfig(cross_band_relevance_factor=16).across_bands().relevance_factor == 16.0
        assert config.across_bands() == config  # None: the same factor across bands
        assert EnrollConfig.from_dict(config.to_dict()) == config
        with pytest.raises(ConfigError, match="enroll.adapt"):
            EnrollConfig(adapt="means,covariances")
        with pytest.raises(ConfigError, match="enroll.adapt"):
            EnrollConfig(adapt=())
        with pytest.raises(ConfigError, match="enroll.relevance_factor"):
            EnrollConfig(relevance_factor=-1.0)
