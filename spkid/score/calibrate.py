"""Score calibration: raw scores -> calibrated log-likelihood ratios, Bayes thresholds, open-set decisions.

A :class:`Calibrator` is an affine map ``llr = scale * score + offset`` fitted by prior-weighted logistic
regression (scikit-learn) on a development trial set (Brümmer's linear calibration, as in BOSARIS/FoCal),
with Platt's targets: a target trial counts as ``(N+ + 1) / (N+ + 2)`` of a target, a non-target as
``1 / (N- + 2)`` of one (Platt 1999), so a small development set that happens to separate targets from
non-targets gives a finite, count-aware slope instead of an arbitrarily steep one.
Because its output is an LLR, the threshold for any target prior follows from Bayes' rule,
``-logit(p_target)``, with no threshold tuning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from spkid.errors import DataError, ModelError

__all__ = ["Calibrator", "bayes_threshold", "checked_p_effective", "fit_llr"]

# Inverse L2 strength of the logistic regression: negligible for real score sets (Platt's targets already
# keep the slope finite on separable ones); it only keeps the solver well-posed.
_INVERSE_REGULARISATION = 1e4


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum-expected-cost threshold on calibrated LLRs: ``log(c_fa (1 - p) / (c_miss p))``.

    With unit costs this is ``-logit(p_target)``: accept when the LLR is at or above it.

    Examples
    --------
    >>> bayes_threshold(0.5), round(bayes_threshold(0.01), 2)  # 1 target in 100 trials: LLR >= 4.6
    (0.0, 4.6)
    """
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target={p_target}: must be strictly between 0 and 1")
    return float(np.log(c_fa / c_miss) - _log_odds(p_target))


def _log_odds(probability: float) -> float:
    """``logit(p) = log(p / (1 - p))`` of a probability strictly between 0 and 1 (no scipy.special import)."""
    return math.log(probability) - math.log1p(-probability)


def checked_p_effective(p_effective: float) -> float:
    """``p_effective`` as a float, when strictly between 0 and 1 (else a DataError).

    Examples
    --------
    >>> checked_p_effective(0.5)
    0.5
    """
    if not 0.0 < p_effective < 1.0:
        raise DataError(f"p_effective={p_effective}: must be strictly between 0 and 1")
    return float(p_effective)


def fit_llr(
    columns: np.ndarray, labels: ArrayLike, p_effective: float, *, what: str = "calibration"
) -> tuple[np.ndarray, float]:
    """Weights and offset of ``llr = columns @ weights + offset`` by prior-weighted logistic regression.

    Brümmer's linear calibration and fusion (BOSARIS/FoCal): the classes weigh ``p_effective`` and
    ``1 - p_effective`` in total, whatever their counts, with Platt's targets (see the module docstring), and
    the prior log-odds ``logit(p_effective)`` is removed so the output is an LLR. One column calibrates a
    system; several fuse systems.

    Parameters
    ----------
    columns : ndarray of shape (n_trials, n_systems)
        Finite scores, one column per system.
    labels : array-like of shape (n_trials,)
        True (or 1) for target trials, False (or 0) for the others.
    p_effective : float
        Target prior the objective is weighted at, strictly between 0 and 1.
    what : str, default "calibration"
        What the caller fits, for error messages.

    Returns
    -------
    weights : ndarray of shape (n_systems,)
    offset : float

    Raises
    ------
    DataError
        Labels of another length than the scores, labels other than 0/1, or no target or no non-target
        trial (messages start with ``what``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([True, False], 500)
    >>> scores = np.where(labels, 2.0, 0.0) + rng.normal(0.0, 1.0, 1000)  # true LLR: 2 x - 2
    >>> weights, offset = fit_llr(scores[:, None], labels, 0.5)
    >>> round(float(weights[0]), 1), round(offset, 1)
    (2.1, -2.0)
    """
    labels = np.asarray(labels)
    if labels.shape != (columns.shape[0],):
        raise DataError(f"{what}: {columns.shape[0]} trials of scores but labels of shape {labels.shape}")
    if not np.all(np.isin(labels, [0, 1])):
        raise DataError(f"{what}: labels must be 0/1 or False/True (1 = target trial)")
    is_target = labels.astype(bool)
    n_target, n_nontarget = int(is_target.sum()), int((~is_target).sum())
    if n_target == 0 or n_nontarget == 0:
        raise DataError(f"{what} needs target and non-target trials, got {n_target} and {n_nontarget}")
    n_trials = is_target.size
    # Weights sum to n_trials, split p_effective : 1 - p_effective between the two classes.
    weights = np.where(is_target, p_effective / n_target, (1.0 - p_effective) / n_nontarget) * n_trials
    # Platt's targets: each trial enters twice, as a target with weight ``weight * t`` and as a non-target
    # with ``weight * (1 - t)``.
    soft_target = np.where(is_target, (n_target + 1.0) / (n_target + 2.0), 1.0 / (n_nontarget + 2.0))
    # Standardise each column so the solver sees a well-conditioned problem whatever the score ranges.
    centre = columns.mean(axis=0)
    spread = np.maximum(columns.std(axis=0), 1e-12)
    # Imported here: scikit-learn costs ~2 s of start-up that identify/verify never need.
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=_INVERSE_REGULARISATION, solver="lbfgs", max_iter=1000)
    standardised = (columns - centre) / spread
    model.fit(
        np.concatenate([standardised, standardised]),
        np.repeat([True, False], n_trials),
        sample_weight=np.concatenate([weights * soft_target, weights * (1.0 - soft_target)]),
    )
    slopes, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    coefficients = slopes / spread
    return coefficients, float(intercept - np.dot(coefficients, centre) - _log_odds(p_effective))


class Calibrator:
    """Linear (affine) calibration of scores into LLRs by prior-weighted logistic regression.

    Parameters
    ----------
    p_effective : float
        Target prior at which the logistic objective is weighted (0.5 = targets and non-targets weigh
        the same in total, whatever their counts). The prior log-odds ``logit(p_effective)`` is removed
        from the fitted log-odds, so the output is an LLR independent of the dev set's class balance.

    Attributes
    ----------
    scale_ : float
    offset_ : float
        ``llr = scale_ * score + offset_``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = np.concatenate([rng.normal(2.0, 1.0, 500), rng.normal(0.0, 1.0, 500)])  # targets first
    >>> labels = np.repeat([True, False], 500)
    >>> calibrator = Calibrator().fit(scores, labels)
    >>> round(calibrator.scale_, 1), round(calibrator.offset_, 1)  # the true LLR of these scores is 2 x - 2
    (2.1, -2.0)
    >>> calibrator.decide([0.5, 1.5], p_target=0.5).tolist(), round(calibrator.raw_threshold(p_target=0.5), 1)
    ([False, True], 0.9)
    """

    def __init__(self, p_effective: float = 0.5) -> None:
        self.p_effective = checked_p_effective(p_effective)

    def fit(self, scores: ArrayLike, labels: ArrayLike) -> Calibrator:
        """Fit on a development trial set.

        Parameters
        ----------
        scores : array-like of shape (n_trials,)
        labels : array-like of shape (n_trials,)
            True (or 1) for target trials, False (or 0) for non-target trials.
        """
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels)
        if scores.ndim != 1 or labels.shape != scores.shape:
            raise DataError(f"calibration: scores {scores.shape} and labels {labels.shape} must be equal 1-D")
        if not np.all(np.isfinite(scores)):
            raise DataError("calibration: scores contain NaN or infinite values")
        (slope,), self.offset_ = fit_llr(scores[:, None], labels, self.p_effective, what="calibration")
        self.scale_ = float(slope)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "scale_"):
            raise ModelError("Calibrator is not fitted: call fit(scores, labels) or from_dict() first")

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Calibrated LLRs (natural log), same shape as ``scores``."""
        self._check_fitted()
        return self.scale_ * np.asarray(scores, dtype=np.float64) + self.offset_

    def threshold(self, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
        """Decision threshold on the calibrated LLR for a target prior: ``-logit(p_target)`` at unit costs."""
        return bayes_threshold(p_target, c_miss, c_fa)

    def raw_threshold(self, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
        """The same threshold expressed on the raw (uncalibrated) score scale."""
        self._check_fitted()
        if self.scale_ <= 0:
            raise ModelError(f"Calibrator scale_={self.scale_}: scores are not positively related to targets")
        return (self.threshold(p_target, c_miss, c_fa) - self.offset_) / self.scale_

    def decide(self, scores: ArrayLike, p_target: float = 0.01) -> np.ndarray:
        """Accept (True) / reject (False) each raw score at the Bayes threshold for ``p_target``."""
        return self.transform(scores) >= self.threshold(p_target)

    def to_dict(self) -> dict[str, float]:
        """Plain dict of floats, for the model store or a YAML/JSON file."""
        self._check_fitted()
        return {"scale": self.scale_, "offset": self.offset_, "p_effective": self.p_effective}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output (raises :class:`ModelError` if invalid)."""
        expected = {"scale", "offset", "p_effective"}
        if set(values) != expected:
            raise ModelError(f"calibration: expected keys {sorted(expected)}, got {sorted(values)}")
        try:
            numbers = {key: float(values[key]) for key in expected}
        except (TypeError, ValueError) as error:
            raise ModelError(f"calibration: values must be numbers ({error})") from None
        if not all(np.isfinite(v) for v in numbers.values()):
            raise ModelError(f"calibration: non-finite value in {numbers}")
        if not 0.0 < numbers["p_effective"] < 1.0:
            raise ModelError(f"calibration: p_effective={numbers['p_effective']} must be in (0, 1)")
        calibrator = cls(numbers["p_effective"])
        calibrator.scale_ = numbers["scale"]
        calibrator.offset_ = numbers["offset"]
        return calibrator
