"""The one EM loop (spkid.gmm.em): per-iteration log lines, the convergence warning, statistics sources."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from spkid.errors import ConvergenceWarning
from spkid.gmm import DiagonalGMM, FrameStatistics, MixtureParameters, SufficientStats, run_em
from spkid.gmm._estep import Frames


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=5.0, size=(4, 3))
    return (centres[rng.integers(0, 4, 2400)] + rng.normal(size=(2400, 3))).astype(np.float32)


def em_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "spkid.gmm.em"]


def fit_quietly(**params) -> list[warnings.WarningMessage]:
    """Fit on fixed data, returning the warnings raised (every one recorded)."""
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(600, 2)) + rng.integers(0, 2, (600, 1)) * 6).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DiagonalGMM(2, random_state=0, **params).fit(X)
    return [warning for warning in caught if issubclass(warning.category, ConvergenceWarning)]


# ------------------------------------------------------------------------------------------ log lines


def test_one_info_line_per_iteration_with_likelihood_and_gain(frames, caplog):
    caplog.set_level(logging.INFO, logger="spkid.gmm")
    model = DiagonalGMM(4, max_iter=5, tol=0.0, random_state=0).fit(frames)
    lines = em_records(caplog)
    assert len(lines) == 5 + 1  # five iterations, then the verdict
    history = model.history_
    for iteration, line in enumerate(lines[:5], start=1):
        assert line.startswith(
            f"DiagonalGMM EM iteration {iteration}/5: log-likelihood per frame "
            f"{history[iteration - 1]:.6f}, gain "
        )
        gain = "n/a" if iteration == 1 else f"{history[iteration - 1] - history[iteration - 2]:+.3e}"
        assert f", gain {gain}, 2400 frames, " in line and line.endswith(" s left")
    assert lines[-1].startswith("DiagonalGMM EM did not converge within max_iter=5 iterations (last gain +")
    assert all(record.levelno == logging.INFO for record in caplog.records if record.name == "spkid.gmm.em")


def test_the_verdict_says_when_em_converged(frames, caplog):
    caplog.set_level(logging.INFO, logger="spkid.gmm.em")
    model = DiagonalGMM(4, max_iter=200, tol=1e-3, random_state=0).fit(frames)
    assert model.converged_ and model.n_iter_ < 200
    lines = em_records(caplog)
    assert len(lines) == model.n_iter_ + 1
    assert lines[-1].startswith(f"DiagonalGMM EM converged after {model.n_iter_} iterations (gain ")
    assert lines[-1].endswith("< tol 0.001)")


def test_nothing_is_printed(frames, capsys):
    DiagonalGMM(4, max_iter=2, random_state=0, verbose=True).fit(frames)
    assert capsys.readouterr().out == ""  # verbose goes through logging (stderr when unconfigured)


# --------------------------------------------------------------------------------- convergence warning


@pytest.mark.parametrize(
    "params, warned",
    [
        ({"max_iter": 2}, False),  # default tol: the iteration count is the budget
        ({"max_iter": 2, "tol": 0.0}, False),  # tol=0 asks for exactly max_iter iterations
        ({"max_iter": 2, "tol": 1e-12}, True),  # a tol of the caller's own, not reached
        ({"max_iter": 300, "tol": 1e-2}, False),  # a tol of the caller's own, reached
    ],
)
def test_convergence_warning_only_when_a_requested_tol_is_not_reached(params, warned):
    caught = fit_quietly(**params)
    assert len(caught) == int(warned)
    if warned:
        assert "did not converge within max_iter=2 iterations" in str(caught[0].message)
        assert "tol 1e-12" in str(caught[0].message)


def test_convergence_matches_sklearn_given_the_same_start(frames):
    # Same stopping rule as GaussianMixture (|change of the mean log-likelihood| < tol), same start.
    rng = np.random.default_rng(0)
    weights, means = np.full(4, 0.25), frames[rng.choice(len(frames), 4, replace=False)].astype(np.float64)
    variances = np.tile(frames.var(axis=0).astype(np.float64), (4, 1))
    ours = DiagonalGMM(
        4,
        max_iter=500,
        tol=1e-6,
        variance_floor=0.0,
        min_weight=0.0,
        dtype=np.float64,
        weights_init=weights,
        means_init=means,
        variances_init=variances,
    ).fit(frames)
    reference = GaussianMixture(
        4,
        covariance_type="diag",
        reg_covar=0.0,
        tol=1e-6,
        max_iter=500,
        weights_init=weights,
        means_init=means,
        precisions_init=1 / variances,
    )
    reference.fit(frames.astype(np.float64))
    assert ours.converged_ and reference.converged_
    assert ours.n_iter_ == reference.n_iter_
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-9)


# ------------------------------------------------------------------------------------------ the loop


class CountingSource:
    """A statistics source that records what it was asked (the loop's contract)."""

    def __init__(self, frames: np.ndarray) -> None:
        self.inner, self.calls = FrameStatistics(Frames(frames, n_features=None)), []

    def statistics(self, parameters: MixtureParameters, iteration: int) -> SufficientStats:
        self.calls.append((iteration, parameters.means.copy()))
        return self.inner.statistics(parameters, iteration)


def test_the_loop_asks_its_source_once_per_iteration_with_the_current_parameters(frames):
    start = DiagonalGMM(4, max_iter=0, random_state=3).fit(frames).parameters()
    source = CountingSource(frames)
    fitted = run_em(start, source, max_iter=3, tol=0.0, variance_floor=1e-3)
    assert [iteration for iteration, _ in source.calls] == [0, 1, 2]
    np.testing.assert_array_equal(source.calls[0][1], start.means)
    assert not np.array_equal(source.calls[1][1], start.means)  # the M-step's result is the next E-step's
    same = DiagonalGMM(4, max_iter=3, tol=0.0, random_state=3).fit(frames)
    np.testing.assert_array_equal(fitted.means_, same.means_)
    assert fitted.history_ == same.history_ and fitted.n_iter_ == 3 and not fitted.converged_


def test_zero_iterations_return_the_start(frames, caplog):
    caplog.set_level(logging.INFO, logger="spkid.gmm.em")
    start = DiagonalGMM(4, max_iter=0, random_state=3).fit(frames).parameters()
    fitted = run_em(start, CountingSource(frames), max_iter=0, tol=1e-3, variance_floor=1e-3, warn=True)
    np.testing.assert_array_equal(fitted.means_, start.means_)
    assert fitted.n_iter_ == 0 and fitted.history_ == [] and np.isnan(fitted.lower_bound_)
    assert em_records(caplog) == []
