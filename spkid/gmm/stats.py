"""Mergeable sufficient statistics of a GMM's E-step, and the M-step that turns their sum into parameters.

EM workers (threads, processes, dask) send back :class:`SufficientStats`; the driver adds them and calls
:func:`maximise` (through ``DiagonalGMM.apply_stats``). Re-exported by :mod:`spkid.gmm`. The variance floor
(:func:`floor_variances`) and the component split that re-seeds a dead component (:func:`split_component`)
live here too: initialisation (:mod:`spkid.gmm.init`) and MAP adaptation use the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spkid.errors import ModelError

__all__ = ["SPLIT_OFFSET_STD", "SufficientStats", "floor_variances", "maximise", "split_component"]

# A split moves the two halves +-0.5 standard deviations apart along the largest-variance axis.
SPLIT_OFFSET_STD = 0.5


@dataclass
class SufficientStats:
    """Zeroth, first and second order statistics of frames under a GMM's responsibilities (float64).

    Attributes
    ----------
    zeroth : ndarray of shape (n_components,)
        N_k = sum_t gamma_tk.
    first : ndarray of shape (n_components, n_features)
        F_k = sum_t gamma_tk x_t.
    second : ndarray of shape (n_components, n_features)
        S_k = sum_t gamma_tk x_t^2.
    log_likelihood : float
        sum_t log p(x_t) under the model that produced the responsibilities.
    n_frames : int
        Number of frames accumulated.

    Statistics of disjoint frame sets add up (``a + b``, ``sum([...])``), whatever process computed them.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> params = MixtureParameters([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    >>> X = np.random.default_rng(0).normal(size=(100, 1))
    >>> total = params.accumulate(X[:60]) + params.accumulate(X[60:])  # e.g. from two workers
    >>> total.n_frames, round(float(total.zeroth.sum()), 2)
    (100, 100.0)
    >>> bool(np.allclose(total.first, params.accumulate(X).first))  # the same as all frames at once
    True
    """

    zeroth: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float = 0.0
    n_frames: int = 0

    @classmethod
    def zeros(cls, n_components: int, n_features: int) -> SufficientStats:
        """Empty statistics, the neutral element of ``+``."""
        return cls(
            np.zeros(n_components), np.zeros((n_components, n_features)), np.zeros((n_components, n_features))
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if self.first.shape != other.first.shape:
            raise ModelError(f"cannot add statistics of shape {self.first.shape} and {other.first.shape}")
        return SufficientStats(
            self.zeroth + other.zeroth,
            self.first + other.first,
            self.second + other.second,
            self.log_likelihood + other.log_likelihood,
            self.n_frames + other.n_frames,
        )

    def __radd__(self, other: object) -> SufficientStats:
        return self if isinstance(other, int) and other == 0 else NotImplemented  # lets sum() start at 0


def maximise(
    stats: SufficientStats, variance_floor: float, min_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """M-step: ``(weights (K,), means (K, D), variances (K, D), n_reseeded)`` from (summed) statistics.

    The variance floor is ``variance_floor`` times the variance, per dimension, of all the frames in
    ``stats``. A component whose weight is below ``min_weight`` (or zero) is replaced by half of the
    heaviest one (:func:`split_component`); ``n_reseeded`` counts them. Weights sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> params = MixtureParameters([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    >>> X = np.random.default_rng(0).normal(size=(100, 1))
    >>> weights, means, variances, n_reseeded = maximise(params.accumulate(X), 1e-3, 1e-5)
    >>> round(float(weights.sum()), 6), means.shape, variances.shape, n_reseeded
    (1.0, (2, 1), (2, 1), 0)
    """
    total = float(stats.zeroth.sum())
    if not total > 0 or not np.isfinite(total):
        raise ModelError(f"statistics hold no frames (total responsibility {total})")
    global_mean = stats.first.sum(axis=0) / total
    global_variance = np.maximum(stats.second.sum(axis=0) / total - global_mean**2, 0.0)
    floor = floor_variances(global_variance, variance_floor)
    weights = stats.zeroth / total
    dead = (weights < min_weight) | (stats.zeroth <= 0)
    safe_counts = np.where(dead, 1.0, stats.zeroth)[:, None]
    means = np.where(dead[:, None], 0.0, stats.first / safe_counts)
    variances = np.maximum(np.where(dead[:, None], 1.0, stats.second / safe_counts - means**2), floor)
    weights[dead] = 0.0
    for target in np.flatnonzero(dead):
        split_component(weights, means, variances, int(np.argmax(weights)), int(target))
    if dead.any():
        np.maximum(variances, floor, out=variances)
    return weights / weights.sum(), means, variances, int(dead.sum())


def floor_variances(global_variance: np.ndarray, variance_floor: float) -> np.ndarray:
    """The lowest allowed variances: ``variance_floor`` times ``global_variance`` (per dimension, shape
    (n_features,)), and at least 1e-10 times its largest value.

    Examples
    --------
    >>> import numpy as np
    >>> floor_variances(np.array([4.0, 0.0]), 1e-3).tolist()  # a constant dimension still gets a floor
    [0.004, 4e-10]
    """
    # The tiny absolute term keeps variances positive when variance_floor == 0 or a dimension is constant.
    return np.maximum(variance_floor * global_variance, 1e-10 * max(float(np.max(global_variance)), 1e-30))


def split_component(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, source: int, target: int
) -> None:
    """Split component ``source`` in two, writing the second half into slot ``target`` (in place).

    The halves share the weight equally and sit ``SPLIT_OFFSET_STD`` standard deviations either side of the
    old mean along its largest-variance axis, whose variance shrinks so the pair keeps the old mean and
    variance exactly (mixture moments are preserved).
    """
    axis = int(np.argmax(variances[source]))
    offset = SPLIT_OFFSET_STD * np.sqrt(variances[source, axis])
    weights[source] *= 0.5
    weights[target] = weights[source]
    means[target] = means[source]
    variances[source, axis] *= 1.0 - SPLIT_OFFSET_STD**2
    variances[target] = variances[source]
    means[source, axis] -= offset
    means[target, axis] += offset
