"""DiagonalGMM: parity with scikit-learn's GaussianMixture, EM invariants, data sources, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture

from spkid.errors import ModelError
from spkid.gmm import DiagonalGMM, SufficientStats


def make_mixture(seed: int, n_frames: int, n_components: int, n_features: int, offset: float = 0.0):
    """Frames from a random diagonal mixture, with the true parameters."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(0.0, 4.0, (n_components, n_features)) + offset
    variances = rng.uniform(0.3, 2.0, (n_components, n_features))
    labels = rng.choice(n_components, size=n_frames, p=weights)
    frames = means[labels] + rng.standard_normal((n_frames, n_features)) * np.sqrt(variances[labels])
    return frames, (weights, means, variances)


def starting_point(frames: np.ndarray, n_components: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = np.full(n_components, 1.0 / n_components)
    means = frames[rng.choice(frames.shape[0], n_components, replace=False)].astype(np.float64)
    variances = np.tile(frames.var(axis=0), (n_components, 1))
    return weights, means, variances


def plain_em(n_components: int, init, **params) -> DiagonalGMM:
    """DiagonalGMM doing textbook EM (no floor, no re-seeding) from the given starting point."""
    weights, means, variances = init
    params = {"max_iter": 10, "tol": 0.0, "variance_floor": 0.0, "min_weight": 0.0, **params}
    return DiagonalGMM(
        n_components, weights_init=weights, means_init=means, variances_init=variances, **params
    )


@pytest.fixture(scope="module")
def mixture_data():
    frames, _ = make_mixture(seed=3, n_frames=3000, n_components=4, n_features=5)
    return frames


@pytest.fixture(scope="module")
def sklearn_reference(mixture_data):
    weights, means, variances = starting_point(mixture_data, 6)
    reference = GaussianMixture(
        6,
        covariance_type="diag",
        reg_covar=0.0,
        tol=0.0,
        max_iter=10,
        init_params="random_from_data",
        weights_init=weights,
        means_init=means,
        precisions_init=1.0 / variances,
        random_state=0,
    )
    with pytest.warns(Warning):  # ConvergenceWarning: tol=0 never converges, on purpose
        reference.fit(mixture_data)
    return reference


# ------------------------------------------------------------------------------ scikit-learn parity


def test_float64_em_matches_sklearn(mixture_data, sklearn_reference):
    model = plain_em(6, starting_point(mixture_data, 6), dtype=np.float64).fit(mixture_data)
    assert model.n_iter_ == sklearn_reference.n_iter_ == 10
    assert model.lower_bound_ == pytest.approx(sklearn_reference.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(model.history_, sklearn_reference.lower_bounds_, rtol=1e-9)
    np.testing.assert_allclose(model.weights_, sklearn_reference.weights_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(model.means_, sklearn_reference.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model.variances_, sklearn_reference.covariances_, rtol=1e-7)


def test_float32_em_matches_sklearn(mixture_data, sklearn_reference):
    frames = mixture_data.astype(np.float32)
    model = plain_em(6, starting_point(mixture_data, 6), dtype=np.float32).fit(frames)
    assert model.lower_bound_ == pytest.approx(sklearn_reference.lower_bound_, rel=1e-5)
    np.testing.assert_allclose(model.history_, sklearn_reference.lower_bounds_, rtol=1e-5)
    np.testing.assert_allclose(model.weights_, sklearn_reference.weights_, atol=1e-4)
    np.testing.assert_allclose(model.means_, sklearn_reference.means_, atol=1e-3)
    np.testing.assert_allclose(model.variances_, sklearn_reference.covariances_, rtol=1e-3)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_scoring_matches_sklearn(mixture_data, sklearn_reference, dtype, rtol):
    ref = sklearn_reference
    model = DiagonalGMM.from_params(ref.weights_, ref.means_, ref.covariances_, dtype=dtype)
    frames = mixture_data.astype(dtype)
    np.testing.assert_allclose(model.score_samples(frames), ref.score_samples(mixture_data), rtol=rtol)
    assert model.score(frames) == pytest.approx(ref.score(mixture_data), rel=rtol)
    np.testing.assert_allclose(model.predict_proba(frames), ref.predict_proba(mixture_data), atol=100 * rtol)
    assert np.mean(model.predict(frames) == ref.predict(mixture_data)) > 0.999
    assert model.bic(frames) == pytest.approx(ref.bic(mixture_data), rel=rtol)
    assert model.aic(frames) == pytest.approx(ref.aic(mixture_data), rel=rtol)


def test_weighted_log_prob_matches_scipy():
    frames, (weights, means, variances) = make_mixture(seed=5, n_frames=500, n_components=3, n_features=4)
    expected = np.column_stack(
        [
            np.log(weights[k]) + multivariate_normal(means[k], np.diag(variances[k])).logpdf(frames)
            for k in range(3)
        ]
    )
    model64 = DiagonalGMM.from_params(weights, means, variances, dtype=np.float64)
    np.testing.assert_allclose(model64.weighted_log_prob(frames), expected, rtol=1e-12)
    model32 = DiagonalGMM.from_params(weights, means, variances)
    result = model32.weighted_log_prob(frames.astype(np.float32))
    assert result.dtype == np.float32 and result.shape == (500, 3)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)


def test_float32_stays_accurate_for_uncentred_features():
    # Features far from zero (offset 1000): the E-step centres on the mixture mean, so float32 still agrees.
    frames, _ = make_mixture(seed=9, n_frames=4000, n_components=3, n_features=4, offset=1000.0)
    init = starting_point(frames, 3)
    model64 = plain_em(3, init, dtype=np.float64).fit(frames)
    model32 = plain_em(3, init, dtype=np.float32).fit(frames)
    assert model32.lower_bound_ == pytest.approx(model64.lower_bound_, rel=1e-5)
    np.testing.assert_allclose(model32.variances_, model64.variances_, rtol=1e-3)


# ---------------------------------------------------------------------------------- EM invariants


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_components=st.integers(1, 5),
    n_features=st.integers(1, 4),
    variance_floor=st.sampled_from([0.0, 1e-3, 0.1]),
)
def test_em_properties(seed, n_components, n_features, variance_floor):
    frames, _ = make_mixture(seed, 40 * n_components + 60, n_components, n_features)
    model = DiagonalGMM(
        n_components,
        max_iter=12,
        tol=0.0,
        variance_floor=variance_floor,
        min_weight=0.0,
        dtype=np.float64,
        random_state=seed,
    ).fit(frames)
    history = np.asarray(model.history_)
    # Plain EM (floored variances are still the constrained maximum) never lowers the likelihood.
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(model.weights_ >= 0)
    assert np.all(model.variances_ >= variance_floor * frames.var(axis=0) * (1 - 1e-9))
    again = DiagonalGMM(
        n_components,
        max_iter=12,
        tol=0.0,
        variance_floor=variance_floor,
        min_weight=0.0,
        dtype=np.float64,
        random_state=seed,
    ).fit(frames)
    np.testing.assert_array_equal(again.means_, model.means_)
    np.testing.assert_array_equal(again.variances_, model.variances_)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(1, 399), min_size=1, max_size=6),
    init=st.sampled_from(["kmeans++", "split"]),
    chunk_size=st.sampled_from([None, 37, 128]),
)
def test_sequence_of_arrays_equals_concatenation(seed, cuts, init, chunk_size):
    frames, _ = make_mixture(seed, 400, 3, 3)
    frames = frames.astype(np.float32)
    pieces = np.split(frames, sorted(set(cuts)))
    params = {"max_iter": 5, "init": init, "random_state": seed, "chunk_size": chunk_size}
    whole = DiagonalGMM(3, **params).fit(frames)
    parts = DiagonalGMM(3, **params).fit(pieces)
    np.testing.assert_allclose(parts.means_, whole.means_, rtol=1e-12)
    np.testing.assert_allclose(parts.variances_, whole.variances_, rtol=1e-12)
    assert parts.lower_bound_ == pytest.approx(whole.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("init", ["kmeans++", "split"])
def test_recovers_known_mixture(init):
    rng = np.random.default_rng(11)
    weights = np.array([0.2, 0.3, 0.5])
    means = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, -1.0]])
    variances = np.array([[1.0, 0.5], [0.3, 2.0], [1.5, 1.0]])
    labels = rng.choice(3, size=9000, p=weights)
    frames = (means[labels] + rng.standard_normal((9000, 2)) * np.sqrt(variances[labels])).astype(np.float32)
    model = DiagonalGMM(3, init=init, random_state=0, max_iter=50).fit(frames)
    assert model.converged_
    rows, cols = linear_sum_assignment(((model.means_[:, None] - means[None]) ** 2).sum(-1))
    order = cols.argsort()
    np.testing.assert_allclose(model.means_[rows][order], means, atol=0.1)
    np.testing.assert_allclose(model.weights_[rows][order], weights, atol=0.02)
    np.testing.assert_allclose(model.variances_[rows][order], variances, rtol=0.1)


def test_n_jobs_gives_the_same_model(mixture_data):
    frames = mixture_data.astype(np.float32)
    init = starting_point(frames, 6)
    single = plain_em(6, init, max_iter=5, chunk_size=256, n_jobs=1).fit(frames)
    threaded = plain_em(6, init, max_iter=5, chunk_size=256, n_jobs=2).fit(frames)
    # chunk statistics are summed in chunk order, each chunk on one BLAS thread: the same model to the bit
    np.testing.assert_array_equal(threaded.means_, single.means_)
    np.testing.assert_array_equal(threaded.variances_, single.variances_)
    np.testing.assert_array_equal(threaded.weights_, single.weights_)
    assert threaded.lower_bound_ == single.lower_bound_


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_chunking_and_threads_do_not_change_results(dtype, rtol):
    # One big chunk on the calling thread against 63 small chunks spread over two joblib threads.
    frames, (weights, means, variances) = make_mixture(seed=6, n_frames=4000, n_components=16, n_features=5)
    frames = frames.astype(dtype)
    whole = DiagonalGMM.from_params(weights, means, variances, dtype=dtype)
    chunked = DiagonalGMM.from_params(weights, means, variances, dtype=dtype, chunk_size=64, n_jobs=2)
    whole_stats, chunked_stats = whole.accumulate(frames), chunked.accumulate(frames)
    np.testing.assert_allclose(whole_stats.zeroth, chunked_stats.zeroth, rtol=rtol)
    np.testing.assert_allclose(whole_stats.second, chunked_stats.second, rtol=rtol)
    assert whole_stats.log_likelihood == pytest.approx(chunked_stats.log_likelihood, rel=rtol)
    np.testing.assert_allclose(whole.score_samples(frames), chunked.score_samples(frames), rtol=rtol)
    np.testing.assert_allclose(whole.weighted_log_prob(frames), chunked.weighted_log_prob(frames), rtol=rtol)
    np.testing.assert_allclose(whole.predict_proba(frames), chunked.predict_proba(frames), atol=10 * rtol)
    assert np.mean(whole.predict(frames) == chunked.predict(frames)) > 0.999


# ----------------------------------------------------------------------------------- data sources


def test_memory_mapped_utterances(tmp_path, mixture_data):
    frames = mixture_data.astype(np.float32)
    paths = []
    for index, piece in enumerate(np.array_split(frames, 4)):
        paths.append(tmp_path / f"utt{index}.npy")
        np.save(paths[-1], piece)
    mapped = [np.load(path, mmap_mode="r") for path in paths]
    from_disk = DiagonalGMM(4, max_iter=4, random_state=1).fit(mapped)
    in_memory = DiagonalGMM(4, max_iter=4, random_state=1).fit(frames)
    np.testing.assert_allclose(from_disk.means_, in_memory.means_, rtol=1e-12)
    fortran_order = DiagonalGMM(4, max_iter=4, random_state=1).fit(np.asfortranarray(frames))
    np.testing.assert_allclose(fortran_order.means_, in_memory.means_, rtol=1e-12)
    stats = from_disk.accumulate(mapped)
    assert stats.n_frames == frames.shape[0]


def test_one_shot_iterator_and_reiterable(mixture_data):
    pieces = np.array_split(mixture_data.astype(np.float32), 3)

    class Corpus:
        passes = 0

        def __iter__(self):
            Corpus.passes += 1
            return iter(pieces)

    reference = DiagonalGMM(4, max_iter=3, tol=0.0, random_state=2).fit(pieces)
    from_generator = DiagonalGMM(4, max_iter=3, tol=0.0, random_state=2).fit(piece for piece in pieces)
    from_corpus = DiagonalGMM(4, max_iter=3, tol=0.0, random_state=2).fit(Corpus())
    np.testing.assert_array_equal(from_generator.means_, reference.means_)
    np.testing.assert_array_equal(from_corpus.means_, reference.means_)
    assert Corpus.passes >= 3  # re-iterated for every EM pass, never materialised


def test_sufficient_stats_are_additive(mixture_data):
    model = DiagonalGMM(4, max_iter=2, dtype=np.float64, random_state=0).fit(mixture_data)
    first, second = model.accumulate(mixture_data[:1000]), model.accumulate(mixture_data[1000:])
    whole = model.accumulate(mixture_data)
    for total in (first + second, sum([first, second]), SufficientStats.zeros(4, 5) + first + second):
        np.testing.assert_allclose(total.zeroth, whole.zeroth, rtol=1e-10)
        np.testing.assert_allclose(total.first, whole.first, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(total.second, whole.second, rtol=1e-10)
        assert total.log_likelihood == pytest.approx(whole.log_likelihood, rel=1e-12)
        assert total.n_frames == 3000
    assert whole.zeroth.sum() == pytest.approx(3000, rel=1e-12)
    with pytest.raises(ModelError, match="cannot add"):
        first + SufficientStats.zeros(3, 5)


def test_dead_component_is_reseeded_not_nan(mixture_data):
    model = DiagonalGMM(3, dtype=np.float64, random_state=0, max_iter=2).fit(mixture_data)
    stats = model.accumulate(mixture_data)
    stats.zeroth[1], stats.first[1], stats.second[1] = 0.0, 0.0, 0.0
    heaviest = int(np.argmax(np.where(np.arange(3) == 1, -1, stats.zeroth)))
    model.apply_stats(stats)
    assert np.all(np.isfinite(model.means_)) and np.all(model.variances_ > 0)
    assert model.weights_.sum() == pytest.approx(1.0)
    assert model.weights_[1] == pytest.approx(model.weights_[heaviest])
    assert not np.allclose(model.means_[1], model.means_[heaviest])


def test_variance_floor_applies_to_collapsed_component(mixture_data):
    model = DiagonalGMM(3, variance_floor=0.01, dtype=np.float64, random_state=0, max_iter=1)
    model.fit(mixture_data)
    stats = model.accumulate(mixture_data)
    means = stats.first[0] / stats.zeroth[0]
    stats.second[0] = stats.zeroth[0] * means**2  # zero variance
    total = stats.zeroth.sum()
    global_variance = stats.second.sum(0) / total - (stats.first.sum(0) / total) ** 2
    model.apply_stats(stats)
    np.testing.assert_allclose(model.variances_[0], 0.01 * global_variance, rtol=1e-9)


def test_dict_round_trip_through_npz(tmp_path, mixture_data):
    model = DiagonalGMM(4, max_iter=3, random_state=0).fit(mixture_data)
    np.savez(tmp_path / "model.npz", **model.to_dict())
    with np.load(tmp_path / "model.npz", allow_pickle=False) as stored:
        restored = DiagonalGMM.from_dict(dict(stored))
    np.testing.assert_array_equal(restored.means_, model.means_)
    assert restored.n_iter_ == model.n_iter_ and restored.history_ == model.history_
    assert restored.score(mixture_data) == model.score(mixture_data)


def test_sklearn_clone_and_params(mixture_data):
    model = DiagonalGMM(3, max_iter=2, variance_floor=0.01, random_state=4).fit(mixture_data)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "_parameters")
    assert copy.set_params(max_iter=5).max_iter == 5
    with pytest.raises(ValueError, match="Invalid parameter 'n_mixtures'"):
        copy.set_params(n_mixtures=3)


def test_parameters_are_read_only_and_reassignable(mixture_data):
    model = DiagonalGMM(2, max_iter=2, random_state=0).fit(mixture_data)
    with pytest.raises(ValueError):
        model.means_[0, 0] = 1.0
    before = model.score(mixture_data)
    model.means_ = model.means_ + 1.0  # setter drops the cached E-step matrices
    assert model.score(mixture_data) != before


# ------------------------------------------------------------------------------------------ errors


def test_error_too_few_frames():
    with pytest.raises(ModelError, match="too few.*need at least 80"):
        DiagonalGMM(8).fit(np.zeros((50, 2)))


def test_error_non_finite_frames(mixture_data):
    bad = mixture_data.copy()
    bad[17, 2] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        DiagonalGMM(2, random_state=0).fit(bad)
    model = DiagonalGMM(2, max_iter=1, random_state=0).fit(mixture_data)
    bad[17, 2] = np.inf
    with pytest.raises(ModelError, match="array 1: 1 frame"):
        model.accumulate([mixture_data, bad])
    with pytest.raises(ModelError, match="too large for float32"):
        model.score(np.full((3, 5), 1e20))


def test_error_wrong_dimensionality(mixture_data):
    model = DiagonalGMM(2, max_iter=1, random_state=0).fit(mixture_data)
    with pytest.raises(ModelError, match=r"expected shape \(n_frames, 5\), got \(10, 4\)"):
        model.accumulate(np.zeros((10, 4)))
    with pytest.raises(ModelError, match=r"got \(10,\)"):
        model.score_samples(np.zeros(10))
    with pytest.raises(ModelError, match=r"array 1: expected shape \(n_frames, 5\)"):
        DiagonalGMM(2).fit([mixture_data, np.zeros((100, 3))])
    with pytest.raises(ModelError, match="expected an array or an iterable"):
        DiagonalGMM(2).fit(5)


def test_error_not_fitted_and_bad_settings(mixture_data):
    with pytest.raises(NotFittedError, match="not fitted"):  # scikit-learn's, as check_estimator expects
        DiagonalGMM(2).score(mixture_data)
    for params, message in [
        ({"dtype": np.int32}, "dtype"),
        ({"init": "random"}, "init"),
        ({"min_weight": 0.6}, "min_weight"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"random_state": "seven"}, "random_state"),
        ({"means_init": np.zeros((3, 5))}, r"means_init: expected shape \(2, 5\)"),
    ]:
        with pytest.raises(ModelError, match=message):
            DiagonalGMM(2, **params).fit(mixture_data)
    model = DiagonalGMM(2, max_iter=1, random_state=0).fit(mixture_data)
    with pytest.raises(ModelError, match="3 components"):
        model.apply_stats(SufficientStats.zeros(3, 5))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weights": np.array([0.7, 0.7])}, "sum to 1"),
        ({"weights": np.array([1.5, -0.5])}, ">= 0"),
        ({"means": np.zeros((2, 3))}, "variances: expected shape"),
        ({"weights": np.ones(3) / 3}, r"weights: expected shape \(2,\)"),
        ({"variances": -np.ones((2, 4))}, "> 0"),
        ({"means": np.full((2, 4), np.nan)}, "means: contains NaN"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_from_dict_validates(change, message):
    data = {"weights": np.array([0.5, 0.5]), "means": np.zeros((2, 4)), "variances": np.ones((2, 4))}
    data.update(change)
    with pytest.raises(ModelError, match=message):
        DiagonalGMM.from_dict(data)
    with pytest.raises(ModelError, match="missing key 'means'"):
        DiagonalGMM.from_dict({"weights": np.ones(1), "variances": np.ones((1, 1))})


def test_means_init_alone_uses_uniform_weights_and_data_variance(mixture_data, caplog):
    means = mixture_data[:3].astype(np.float64)
    model = DiagonalGMM(3, max_iter=0, means_init=means, dtype=np.float64).fit(mixture_data)
    np.testing.assert_allclose(model.weights_, 1 / 3)
    np.testing.assert_array_equal(model.means_, means)
    np.testing.assert_allclose(model.variances_, np.tile(mixture_data.var(axis=0), (3, 1)), rtol=1e-10)
    DiagonalGMM(3, max_iter=2, means_init=means, weights_init=[0.2, 0.3, 0.5], verbose=True).fit(mixture_data)
    # verbose=True lowers the spkid.gmm loggers to INFO for the fit: its records reach the handlers.
    assert "DiagonalGMM EM iteration 2/2: log-likelihood per frame" in caplog.text
