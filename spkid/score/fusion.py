"""Score fusion: several systems' scores of the same trials -> one calibrated log-likelihood ratio.

A :class:`Fusion` is ``llr = scores @ weights + offset``, fitted by the prior-weighted logistic regression of
:func:`spkid.score.calibrate.fit_llr` on development trials (Brümmer's linear fusion, as in BOSARIS/FoCal),
or given fixed weights. Two GMM-UBM systems whose front-ends see different things (one that removes each
recording's level, one that keeps it) make fewer errors together than either alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from spkid.errors import DataError, ModelError
from spkid.score.calibrate import checked_p_effective, fit_llr

__all__ = ["Fusion"]


def _score_columns(scores: ArrayLike, what: str) -> np.ndarray:
    columns = np.asarray(scores, dtype=np.float64)
    if columns.ndim != 2 or columns.shape[1] == 0:
        raise DataError(f"{what}: scores must be a (n_trials, n_systems) array, got shape {columns.shape}")
    if not np.all(np.isfinite(columns)):
        raise DataError(f"{what}: scores contain NaN or infinite values")
    return columns


class Fusion:
    """Linear fusion of ``n_systems`` score columns into one LLR.

    Parameters
    ----------
    p_effective : float, default 0.5
        Target prior the logistic objective is weighted at (as :class:`~spkid.score.Calibrator`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_systems,)
    offset_ : float
        ``llr = scores @ weights_ + offset_``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([True, False], 2000)
    >>> truth = np.where(labels, 1.0, -1.0)
    >>> scores = np.stack([truth + rng.normal(0, 1, 4000), truth + rng.normal(0, 2, 4000)], axis=1)
    >>> fusion = Fusion().fit(scores, labels)  # the true LLR is 2 x1 + 0.5 x2: the noisier system weighs less
    >>> np.round(fusion.weights_, 1).tolist(), abs(fusion.offset_) < 0.1
    ([1.9, 0.5], True)
    >>> Fusion.with_weights([0.6, 0.4]).transform([[1.0, 2.0]]).tolist()
    [1.4]
    """

    def __init__(self, p_effective: float = 0.5) -> None:
        self.p_effective = checked_p_effective(p_effective)

    def fit(self, scores: ArrayLike, labels: ArrayLike) -> Fusion:
        """Fit on development trials.

        Parameters
        ----------
        scores : array-like of shape (n_trials, n_systems)
        labels : array-like of shape (n_trials,)
            True (or 1) for target trials.

        Raises
        ------
        DataError
            Shapes that disagree, non-finite scores, labels other than 0/1, or a single class.
        """
        columns = _score_columns(scores, "fusion")
        self.weights_, self.offset_ = fit_llr(columns, labels, self.p_effective, what="fusion")
        return self

    @classmethod
    def with_weights(cls, weights: ArrayLike, offset: float = 0.0) -> Fusion:
        """A fusion with fixed ``weights`` and ``offset`` (no fitting).

        Raises
        ------
        DataError
            No weight, or a non-finite weight or offset.
        """
        values = np.asarray(weights, dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)) or not np.isfinite(offset):
            raise DataError(f"fusion: weights {values.tolist()} and offset {offset} must be finite numbers")
        fusion = cls()
        fusion.weights_, fusion.offset_ = values, float(offset)
        return fusion

    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Fused scores, shape ``(n_trials,)``.

        Raises
        ------
        DataError
            A number of columns other than the number of weights, or non-finite scores.
        """
        if not hasattr(self, "weights_"):
            raise ModelError("Fusion is not fitted: call fit(scores, labels) or with_weights() first")
        columns = _score_columns(scores, "fusion")
        if columns.shape[1] != self.weights_.size:
            raise DataError(f"fusion: {self.weights_.size} weights for {columns.shape[1]} score columns")
        return columns @ self.weights_ + self.offset_
