"""Tests of spkid.score: exact LLRs against scikit-learn, top-C against a float64 brute force."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from spkid.errors import ConfigError, ModelError
from spkid.gmm import DiagonalGMM
from spkid.score import ScoreConfig, Scorer
from spkid.score import scorer as score_module

N_COMPONENTS, N_FEATURES = 16, 4


def random_ubm(seed: int = 0, n_components: int = N_COMPONENTS, n_features: int = N_FEATURES) -> DiagonalGMM:
    rng = np.random.default_rng(seed)
    return DiagonalGMM.from_params(
        rng.dirichlet(np.full(n_components, 2.0)),
        rng.normal(0, 2, (n_components, n_features)),
        rng.uniform(0.3, 2.0, (n_components, n_features)),
    )


def mean_adapted(ubm: DiagonalGMM, seed: int) -> DiagonalGMM:
    """A speaker sharing the UBM weights and variances, with some components' means moved."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, 0.5, ubm.means_.shape) * (rng.random(ubm.n_components) < 0.6)[:, None]
    return DiagonalGMM.from_params(ubm.weights_, ubm.means_ + shift, ubm.variances_)


def fully_adapted(ubm: DiagonalGMM, seed: int) -> DiagonalGMM:
    """A speaker whose weights, means and variances all differ from the UBM's."""
    rng = np.random.default_rng(seed)
    weights = ubm.weights_ * rng.uniform(0.5, 1.5, ubm.n_components)
    return DiagonalGMM.from_params(
        weights / weights.sum(),
        ubm.means_ + rng.normal(0, 0.4, ubm.means_.shape),
        ubm.variances_ * rng.uniform(0.7, 1.4, ubm.variances_.shape),
    )


def sklearn_model(model: DiagonalGMM) -> GaussianMixture:
    """A fitted sklearn GaussianMixture with exactly the parameters of ``model``."""
    mixture = GaussianMixture(model.n_components, covariance_type="diag")
    mixture.weights_ = np.array(model.weights_)
    mixture.means_ = np.array(model.means_)
    mixture.covariances_ = np.array(model.variances_)
    mixture.precisions_cholesky_ = 1.0 / np.sqrt(model.variances_)
    return mixture


def frames_from(model: DiagonalGMM, n_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    components = rng.choice(model.n_components, size=n_frames, p=model.weights_)
    noise = rng.normal(size=(n_frames, model.means_.shape[1])) * np.sqrt(model.variances_[components])
    return (model.means_[components] + noise).astype(np.float32)


def brute_force_top_c(ubm: DiagonalGMM, speaker: DiagonalGMM, X: np.ndarray, top_c: int) -> float:
    """Top-C LLR by its definition, in float64: both mixtures summed over the UBM's C best components."""
    ubm_terms = sklearn_model(ubm)._estimate_weighted_log_prob(X.astype(np.float64))
    speaker_terms = sklearn_model(speaker)._estimate_weighted_log_prob(X.astype(np.float64))
    best = np.argsort(-ubm_terms, axis=1)[:, :top_c]
    numerator = logsumexp(np.take_along_axis(speaker_terms, best, axis=1), axis=1)
    denominator = logsumexp(np.take_along_axis(ubm_terms, best, axis=1), axis=1)
    return float(np.mean(numerator - denominator))


@pytest.fixture(scope="module")
def ubm() -> DiagonalGMM:
    return random_ubm()


@pytest.fixture(scope="module")
def speakers(ubm) -> dict[str, DiagonalGMM]:
    return {f"spk{i}": mean_adapted(ubm, seed=i) for i in range(6)}


@pytest.mark.parametrize("adapt", [mean_adapted, fully_adapted])
def test_exact_llr_equals_sklearn_score_difference(ubm, adapt):
    speakers = {f"s{i}": adapt(ubm, seed=10 + i) for i in range(5)}
    X = frames_from(speakers["s2"], 300, seed=1)
    scores = Scorer(ubm, speakers, top_c=None).llr(X)
    reference_ubm = sklearn_model(ubm).score(X)
    expected = [sklearn_model(model).score(X) - reference_ubm for model in speakers.values()]
    np.testing.assert_allclose(scores, expected, atol=2e-4)
    assert np.argmax(scores) == 2


@pytest.mark.parametrize("top_c", [1, 3, 5])
@pytest.mark.parametrize("adapt", [mean_adapted, fully_adapted])
def test_top_c_matches_definition(ubm, adapt, top_c):
    speakers = {f"s{i}": adapt(ubm, seed=20 + i) for i in range(4)}
    X = frames_from(ubm, 250, seed=2)
    scores = Scorer(ubm, speakers, top_c=top_c).llr(X)
    expected = [brute_force_top_c(ubm, model, X, top_c) for model in speakers.values()]
    np.testing.assert_allclose(scores, expected, atol=2e-4)


def test_top_c_of_all_components_is_exact(ubm, speakers):
    X = frames_from(ubm, 100, seed=3)
    np.testing.assert_allclose(
        Scorer(ubm, speakers, top_c=N_COMPONENTS).llr(X), Scorer(ubm, speakers, top_c=None).llr(X), atol=1e-5
    )


def test_ubm_as_speaker_scores_zero(ubm):
    X = frames_from(ubm, 50, seed=4)
    for top_c in (None, 3):
        np.testing.assert_allclose(Scorer(ubm, {"ubm": ubm}, top_c=top_c).llr(X), [0.0], atol=1e-5)


def test_llr_many_and_chunking_match_single_utterances(ubm, speakers, monkeypatch):
    utterances = [frames_from(ubm, n, seed=n) for n in (1, 7, 130, 64, 300)]
    for top_c in (None, 4):
        one_by_one = np.array([Scorer(ubm, speakers, top_c=top_c).llr(X) for X in utterances])
        # Tiny chunks split utterances across chunks and put several utterances in one chunk; blocks of
        # four split the six speakers' quantised bank into a full block and a padded one.
        monkeypatch.setattr(score_module, "_CHUNK_ELEMENTS", 50 * N_COMPONENTS * len(speakers))
        monkeypatch.setattr(score_module, "_TOP_C_FRAMES", 50)
        monkeypatch.setattr(score_module, "_BLOCK_SPEAKERS", 4)
        batched = Scorer(ubm, speakers, top_c=top_c).llr_many(utterances)
        monkeypatch.undo()
        assert batched.shape == (len(utterances), len(speakers))
        np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_identify_and_verify(ubm, speakers):
    scorer = Scorer(ubm, speakers, top_c=5)
    X = frames_from(speakers["spk3"], 400, seed=5)
    scores = scorer.llr(X)
    ranked = scorer.identify(X, top_k=3)
    assert [name for name, _ in ranked] == [scorer.names[i] for i in np.argsort(-scores)[:3]]
    assert ranked[0][0] == "spk3"
    assert ranked[0][1] == pytest.approx(scores.max())
    for name in ("spk0", "spk3"):
        assert scorer.verify(name, X) == pytest.approx(scores[scorer.names.index(name)], abs=1e-5)
    assert scorer.names == list(speakers)


def test_threaded_paths_match_serial(ubm, speakers, monkeypatch):
    utterances = [frames_from(ubm, 200, seed=7), frames_from(ubm, 90, seed=8)]
    for top_c in (None, 3):
        scorer = Scorer(ubm, speakers, top_c=top_c)
        serial = scorer.llr_many(utterances)
        monkeypatch.setattr(score_module, "_PARALLEL_ELEMENTS", 0)  # threads even for tiny work
        np.testing.assert_allclose(scorer.llr_many(utterances), serial, atol=1e-6)
        monkeypatch.undo()


def test_worker_thread_uses_serial_kernels(ubm, speakers):
    scorer = Scorer(ubm, speakers, top_c=2)
    X = frames_from(ubm, 80, seed=6)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("llr", scorer.llr(X)))
    worker.start()
    worker.join()
    np.testing.assert_allclose(result["llr"], scorer.llr(X), atol=1e-6)


def test_errors(ubm, speakers):
    scorer = Scorer(ubm, speakers)
    with pytest.raises(ModelError, match="expect \\(n_frames, 4\\)"):
        scorer.llr(np.zeros((10, 3), np.float32))
    with pytest.raises(ModelError, match="NaN"):
        scorer.llr(np.full((5, 4), np.nan, np.float32))
    with pytest.raises(ModelError, match="no frames"):
        scorer.llr(np.zeros((0, 4), np.float32))
    with pytest.raises(ModelError, match="not enrolled"):
        scorer.verify("nobody", np.zeros((10, 4), np.float32))
    with pytest.raises(ModelError, match="no speaker models"):
        Scorer(ubm, {})
    other = random_ubm(seed=1, n_components=8)
    with pytest.raises(ModelError, match="speaker model 0: weights_ has shape"):
        Scorer(ubm, {"x": other})


class TestScoreConfig:
    def test_defaults_and_roundtrip(self):
        config = ScoreConfig()
        assert (config.top_c, config.normalization, config.cohort_size, config.asnorm_top_k) == (
            10,
            "none",
            100,
            50,
        )
        assert ScoreConfig.from_dict(config.to_dict()) == config
        assert ScoreConfig.from_dict({"top_c": None}).top_c is None

    def test_unknown_key_suggests(self):
        with pytest.raises(ConfigError, match="'normalisation' \\(did you mean 'normalization'"):
            ScoreConfig.from_dict({"normalisation": "znorm"})

    @pytest.mark.parametrize(
        ("settings", "field"),
        [
            ({"top_c": 0}, "top_c"),
            ({"normalization": "tznorm"}, "normalization"),
            ({"cohort_size": -1}, "cohort_size"),
            ({"asnorm_top_k": 0}, "asnorm_top_k"),
        ],
    )
    def test_validation_names_field(self, settings, field):
        with pytest.raises(ConfigError, match=f"score.{field}="):
            ScoreConfig(**settings)
