"""Tests of spkid.score.normalize against loop-based references and the defining properties of each method."""

from __future__ import annotations

import numpy as np
import pytest

from spkid.errors import DataError
from spkid.score.normalize import asnorm, normalize, snorm, tnorm, znorm, ztnorm

N_TESTS, N_MODELS, N_COHORT_UTTS, N_COHORT_MODELS = 7, 5, 40, 30


@pytest.fixture
def matrices():
    rng = np.random.default_rng(42)
    # Each model and each test gets its own offset and spread, which normalisation should remove.
    model_bias = rng.normal(0, 3, N_MODELS)
    test_bias = rng.normal(0, 3, N_TESTS)
    scores = rng.normal(size=(N_TESTS, N_MODELS)) + model_bias + test_bias[:, None]
    model_cohort = rng.normal(size=(N_COHORT_UTTS, N_MODELS)) * rng.uniform(0.5, 2, N_MODELS) + model_bias
    test_cohort = rng.normal(size=(N_TESTS, N_COHORT_MODELS)) * rng.uniform(0.5, 2, (N_TESTS, 1))
    test_cohort += test_bias[:, None]
    cohort_cohort = rng.normal(size=(N_COHORT_UTTS, N_COHORT_MODELS)) + rng.normal(0, 2, N_COHORT_MODELS)
    return scores, model_cohort, test_cohort, cohort_cohort


def test_znorm_of_cohort_itself_is_standard(matrices):
    _, model_cohort, _, _ = matrices
    normalised = znorm(model_cohort, model_cohort)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(normalised.std(axis=0), 1.0, atol=1e-12)


def test_tnorm_of_cohort_itself_is_standard(matrices):
    _, _, test_cohort, _ = matrices
    normalised = tnorm(test_cohort, test_cohort)
    np.testing.assert_allclose(normalised.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(normalised.std(axis=1), 1.0, atol=1e-12)


def test_znorm_and_tnorm_match_loops(matrices):
    scores, model_cohort, test_cohort, _ = matrices
    z_expected = np.empty_like(scores)
    t_expected = np.empty_like(scores)
    for i in range(N_TESTS):
        for m in range(N_MODELS):
            z_expected[i, m] = (scores[i, m] - np.mean(model_cohort[:, m])) / np.std(model_cohort[:, m])
            t_expected[i, m] = (scores[i, m] - np.mean(test_cohort[i])) / np.std(test_cohort[i])
    np.testing.assert_allclose(znorm(scores, model_cohort), z_expected)
    np.testing.assert_allclose(tnorm(scores, test_cohort), t_expected)
    # T-norm is Z-norm with the roles of tests and models swapped.
    np.testing.assert_allclose(tnorm(scores, test_cohort), znorm(scores.T, test_cohort.T).T)


def test_ztnorm_matches_loops(matrices):
    scores, model_cohort, test_cohort, cohort_cohort = matrices
    expected = np.empty_like(scores)
    for i in range(N_TESTS):
        z_test_cohort = [
            (test_cohort[i, c] - cohort_cohort[:, c].mean()) / cohort_cohort[:, c].std()
            for c in range(N_COHORT_MODELS)
        ]
        for m in range(N_MODELS):
            z_score = (scores[i, m] - model_cohort[:, m].mean()) / model_cohort[:, m].std()
            expected[i, m] = (z_score - np.mean(z_test_cohort)) / np.std(z_test_cohort)
    np.testing.assert_allclose(ztnorm(scores, model_cohort, test_cohort, cohort_cohort), expected)


def test_snorm_is_average_and_symmetric(matrices):
    scores, model_cohort, test_cohort, _ = matrices
    expected = 0.5 * (znorm(scores, model_cohort) + tnorm(scores, test_cohort))
    np.testing.assert_allclose(snorm(scores, model_cohort, test_cohort), expected)
    # Swapping the roles of enrollment and test gives the transposed result.
    np.testing.assert_allclose(
        snorm(scores.T, test_cohort.T, model_cohort.T), snorm(scores, model_cohort, test_cohort).T
    )


def test_asnorm_top_k_matches_sorted_reference(matrices):
    scores, model_cohort, test_cohort, _ = matrices
    top_k = 6
    expected = np.empty_like(scores)
    for i in range(N_TESTS):
        best_models = np.sort(test_cohort[i])[-top_k:]
        for m in range(N_MODELS):
            best_utts = np.sort(model_cohort[:, m])[-top_k:]
            z_part = (scores[i, m] - best_utts.mean()) / best_utts.std()
            t_part = (scores[i, m] - best_models.mean()) / best_models.std()
            expected[i, m] = 0.5 * (z_part + t_part)
    np.testing.assert_allclose(asnorm(scores, model_cohort, test_cohort, top_k=top_k), expected)


def test_asnorm_with_whole_cohort_is_snorm(matrices):
    scores, model_cohort, test_cohort, _ = matrices
    np.testing.assert_allclose(
        asnorm(scores, model_cohort, test_cohort, top_k=1000), snorm(scores, model_cohort, test_cohort)
    )


def test_invariant_to_affine_rescaling(matrices):
    scores, model_cohort, test_cohort, cohort_cohort = matrices
    for method in ("znorm", "tnorm", "ztnorm", "snorm", "asnorm"):
        kwargs = dict(
            model_cohort_scores=model_cohort,
            test_cohort_scores=test_cohort,
            cohort_cohort_scores=cohort_cohort,
            top_k=10,
        )
        scaled = {key: 2.5 * value - 4.0 if key != "top_k" else value for key, value in kwargs.items()}
        np.testing.assert_allclose(
            normalize(method, 2.5 * scores - 4.0, **scaled), normalize(method, scores, **kwargs), atol=1e-10
        )


def test_constant_cohort_does_not_divide_by_zero():
    normalised = znorm(np.ones((2, 3)), np.full((4, 3), 1.0))
    assert np.all(np.isfinite(normalised))


def test_normalize_dispatch_errors(matrices):
    scores, model_cohort, _, _ = matrices
    np.testing.assert_array_equal(normalize("none", scores), scores)
    with pytest.raises(DataError, match="needs test_cohort_scores"):
        normalize("snorm", scores, model_cohort_scores=model_cohort)
    with pytest.raises(DataError, match="expected one of"):
        normalize("xnorm", scores)


def test_shape_errors(matrices):
    scores, model_cohort, test_cohort, _ = matrices
    with pytest.raises(DataError, match="model_cohort_scores: expected 5 columns"):
        znorm(scores, model_cohort[:, :3])
    with pytest.raises(DataError, match="test_cohort_scores: expected 7 rows"):
        tnorm(scores, test_cohort[:2])
    with pytest.raises(DataError, match="2-D"):
        znorm(scores[0], model_cohort)
