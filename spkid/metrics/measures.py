"""Verification and identification metrics: EER, minDCF, actual DCF, Cllr, DET points, top-k accuracy.

Scores follow the convention "higher means more likely the same speaker"; a trial is accepted when its
score is at or above the threshold. Every function takes the target and non-target scores as 1-D arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from spkid.errors import DataError

__all__ = [
    "actual_dcf",
    "cllr",
    "det_curve",
    "eer",
    "identification_accuracy",
    "min_cllr",
    "min_dcf",
    "rocch",
    "verification_report",
]


def _check_scores(target_scores: ArrayLike, nontarget_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return both score sets as finite float64 1-D arrays, or raise :class:`DataError`."""
    checked = []
    for name, scores in (("target_scores", target_scores), ("nontarget_scores", nontarget_scores)):
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim != 1:
            raise DataError(f"{name}: expected a 1-D array of scores, got shape {array.shape}")
        if array.size == 0:
            raise DataError(f"{name}: no scores (need at least one trial of each kind)")
        if not np.all(np.isfinite(array)):
            raise DataError(f"{name}: {int(np.sum(~np.isfinite(array)))} scores are NaN or infinite")
        checked.append(array)
    return checked[0], checked[1]


def _check_prior(p_target: float) -> float:
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target={p_target}: must be strictly between 0 and 1")
    return float(p_target)


def det_curve(
    target_scores: ArrayLike, nontarget_scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold (the empirical, step-wise DET curve).

    Parameters
    ----------
    target_scores : array-like of shape (n_target,)
    nontarget_scores : array-like of shape (n_nontarget,)

    Returns
    -------
    p_miss : ndarray of shape (n_thresholds,)
        Fraction of target scores below each threshold (non-decreasing).
    p_fa : ndarray of shape (n_thresholds,)
        Fraction of non-target scores at or above each threshold (non-increasing).
    thresholds : ndarray of shape (n_thresholds,)
        The distinct scores in increasing order followed by ``+inf`` (reject everything), so the curve
        runs from (p_miss=0, p_fa=1) to (p_miss=1, p_fa=0).

    Examples
    --------
    >>> p_miss, p_fa, thresholds = det_curve([2.0, 3.0], [1.0, 2.5])
    >>> thresholds.tolist()
    [1.0, 2.0, 2.5, 3.0, inf]
    >>> p_miss.tolist(), p_fa.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [1.0, 0.5, 0.5, 0.0, 0.0])
    """
    target, nontarget = _check_scores(target_scores, nontarget_scores)
    thresholds = np.append(np.unique(np.concatenate([target, nontarget])), np.inf)
    n_missed = np.searchsorted(np.sort(target), thresholds, side="left")
    n_rejected_nontarget = np.searchsorted(np.sort(nontarget), thresholds, side="left")
    p_miss = n_missed / target.size
    p_fa = 1.0 - n_rejected_nontarget / nontarget.size
    return p_miss, p_fa, thresholds


def rocch(target_scores: ArrayLike, nontarget_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the ROC convex hull (ROCCH), as in the BOSARIS toolkit.

    The hull is found with the pool-adjacent-violators algorithm (isotonic regression of the labels on
    the scores): each PAV block is one hull segment, and tied scores always share a block.

    Returns
    -------
    p_miss, p_fa : ndarray of shape (n_blocks + 1,)
        Hull vertices from (0, 1) to (1, 0); p_miss non-decreasing, p_fa non-increasing.

    Examples
    --------
    >>> target, nontarget = [1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5]
    >>> p_miss, p_fa = rocch(target, nontarget)  # one non-target (1.5) outscores one target (1.0)
    >>> p_miss.tolist(), p_fa.tolist()
    ([0.0, 0.0, 0.2, 1.0], [1.0, 0.2, 0.0, 0.0])
    """
    target, nontarget = _check_scores(target_scores, nontarget_scores)
    scores = np.concatenate([target, nontarget])
    is_target = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    order = np.argsort(scores, kind="stable")
    from sklearn.isotonic import IsotonicRegression  # lazy: importing scikit-learn costs ~1 s per CLI call

    posterior = IsotonicRegression(increasing=True).fit(scores, is_target).predict(scores[order])
    block_ends = np.flatnonzero(np.diff(posterior) != 0) + 1
    block_ends = np.append(block_ends, scores.size)
    targets_below = np.concatenate([[0], np.cumsum(is_target[order])[block_ends - 1]])
    items_below = np.concatenate([[0], block_ends])
    p_miss = targets_below / target.size
    p_fa = 1.0 - (items_below - targets_below) / nontarget.size
    return p_miss, p_fa


def eer(target_scores: ArrayLike, nontarget_scores: ArrayLike) -> float:
    """Equal error rate, computed on the ROC convex hull (ROCCH-EER, as in BOSARIS and NIST SRE tools).

    The EER is where the convex hull of the empirical ROC crosses p_miss = p_fa. Unlike linear
    interpolation between the steps of the raw curve, the hull is well defined with ties and few trials,
    and it is invariant to any strictly increasing transform of the scores. It is never larger than the
    step-interpolated EER; the two agree closely once both score sets have more than a few dozen trials.

    Parameters
    ----------
    target_scores : array-like of shape (n_target,)
    nontarget_scores : array-like of shape (n_nontarget,)

    Returns
    -------
    float
        EER as a fraction in [0, 0.5] (0 for perfectly separated scores).

    Examples
    --------
    >>> round(eer([3.0, 4.0], [1.0, 2.0]), 3), round(eer([1.0, 2.0], [1.0, 2.0]), 3)
    (0.0, 0.5)

    One non-target above one target in five: the hull runs from (p_miss 0, p_fa 0.2) to (0.2, 0), crossing
    p_miss = p_fa at 0.1:

    >>> round(eer([1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5]), 3)
    0.1
    """
    p_miss, p_fa = rocch(target_scores, nontarget_scores)
    gap = p_miss - p_fa  # runs from -1 to +1 along the hull, non-decreasing
    crossing = int(np.argmax(gap >= 0))
    if gap[crossing] == 0 or crossing == 0:
        return float(p_fa[crossing])
    before = crossing - 1
    fraction = -gap[before] / (gap[crossing] - gap[before])
    return float(p_fa[before] + fraction * (p_fa[crossing] - p_fa[before]))


def _normaliser(p_target: float, c_miss: float, c_fa: float) -> float:
    """Cost of the best trivial system (accept all or reject all), so that DCF 1.0 means "useless"."""
    return min(c_miss * p_target, c_fa * (1.0 - p_target))


def min_dcf(
    target_scores: ArrayLike,
    nontarget_scores: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Minimum normalised detection cost over all thresholds (NIST SRE definition).

    ``DCF(t) = c_miss * p_target * p_miss(t) + c_fa * (1 - p_target) * p_fa(t)``, divided by
    ``min(c_miss * p_target, c_fa * (1 - p_target))``; the minimum is taken over every threshold of the
    empirical curve (including accept-all and reject-all, so the result is at most 1).

    Parameters
    ----------
    target_scores : array-like of shape (n_target,)
    nontarget_scores : array-like of shape (n_nontarget,)
    p_target : float
        Prior probability of a target trial (0.01 and 0.001 are the usual operating points).
    c_miss, c_fa : float
        Costs of a miss and of a false alarm.

    Examples
    --------
    >>> target, nontarget = [1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5]
    >>> round(min_dcf(target, nontarget, p_target=0.5), 3)  # here DCF = p_miss + p_fa: 1 miss in 5
    0.2
    >>> round(min_dcf([3.0, 4.0], [1.0, 2.0]), 3)
    0.0
    """
    p_target = _check_prior(p_target)
    p_miss, p_fa, _ = det_curve(target_scores, nontarget_scores)
    costs = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return float(np.min(costs) / _normaliser(p_target, c_miss, c_fa))


def actual_dcf(
    target_scores: ArrayLike,
    nontarget_scores: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    *,
    threshold: float | None = None,
) -> float:
    """Normalised detection cost of hard decisions at one threshold.

    With ``threshold=None`` the scores are taken to be calibrated log-likelihood ratios and the Bayes
    threshold ``log(c_fa (1 - p_target) / (c_miss p_target))`` is used, which measures calibration: the gap
    to :func:`min_dcf` is the cost of miscalibration.

    Examples
    --------
    >>> target, nontarget = [1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5]
    >>> round(actual_dcf(target, nontarget, p_target=0.5, threshold=1.25), 3)  # 1 miss + 1 false alarm in 5
    0.4
    >>> round(actual_dcf(target, nontarget, p_target=0.5, threshold=1.75), 3)  # the best threshold: min_dcf
    0.2
    """
    p_target = _check_prior(p_target)
    target, nontarget = _check_scores(target_scores, nontarget_scores)
    if threshold is None:
        threshold = float(np.log(c_fa * (1.0 - p_target) / (c_miss * p_target)))
    p_miss = np.mean(target < threshold)
    p_fa = np.mean(nontarget >= threshold)
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return float(cost / _normaliser(p_target, c_miss, c_fa))


def cllr(target_llrs: ArrayLike, nontarget_llrs: ArrayLike) -> float:
    """Log-likelihood-ratio cost in bits (Brümmer & du Preez 2006); scores must be natural-log LLRs.

    0 is perfect, 1 is what the uninformative system (LLR = 0 everywhere) costs.

    Examples
    --------
    >>> round(cllr([0.0], [0.0]), 3)  # LLR 0 says nothing
    1.0
    >>> round(cllr([4.0, 5.0], [-4.0, -5.0]), 3), round(cllr([-4.0, -5.0], [4.0, 5.0]), 3)  # right, wrong
    (0.018, 6.51)
    """
    target, nontarget = _check_scores(target_llrs, nontarget_llrs)
    cost_target = np.mean(np.logaddexp(0.0, -target))
    cost_nontarget = np.mean(np.logaddexp(0.0, nontarget))
    return float(0.5 * (cost_target + cost_nontarget) / np.log(2.0))


def min_cllr(target_scores: ArrayLike, nontarget_scores: ArrayLike) -> float:
    """Cllr after the best monotone recalibration of the scores (PAV): the discrimination part of Cllr.

    Examples
    --------
    >>> target, nontarget = [1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5]
    >>> round(cllr(target, nontarget), 3), round(min_cllr(target, nontarget), 3)
    (0.49, 0.2)
    >>> round(min_cllr([-4.0, -5.0], [4.0, 5.0]), 3)  # targets lowest: no monotone map helps
    1.0
    """
    target, nontarget = _check_scores(target_scores, nontarget_scores)
    scores = np.concatenate([target, nontarget])
    is_target = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    from scipy.special import logit
    from sklearn.isotonic import IsotonicRegression  # lazy, as above

    posterior = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0).fit_transform(scores, is_target)
    # Remove the prior log-odds of the pooled trial set to turn posteriors into LLRs.
    llrs = logit(posterior) - np.log(target.size / nontarget.size)
    target_llrs, nontarget_llrs = llrs[: target.size], llrs[target.size :]
    # A target never lands in a posterior-0 block nor a non-target in a posterior-1 block, so the +-inf
    # LLRs PAV produces for perfectly separated regions cost exactly zero.
    cost_target = np.mean(np.logaddexp(0.0, -target_llrs))
    cost_nontarget = np.mean(np.logaddexp(0.0, nontarget_llrs))
    return float(0.5 * (cost_target + cost_nontarget) / np.log(2.0))


def verification_report(target_scores: ArrayLike, nontarget_scores: ArrayLike) -> dict[str, float]:
    """The usual summary of a verification run: EER and minDCF at p_target 0.01 and 0.001, Cllr, minCllr.

    ``cllr`` is only meaningful when the scores are calibrated LLRs; ``min_cllr`` always is.

    Examples
    --------
    >>> report = verification_report([1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5])
    >>> {name: round(value, 3) for name, value in report.items()}
    {'n_target': 5.0, 'n_nontarget': 5.0, 'eer': 0.1, 'min_dcf_0.01': 0.2, 'min_dcf_0.001': 0.2,
     'cllr': 0.49, 'min_cllr': 0.2}
    """
    return {
        "n_target": float(np.size(target_scores)),
        "n_nontarget": float(np.size(nontarget_scores)),
        "eer": eer(target_scores, nontarget_scores),
        "min_dcf_0.01": min_dcf(target_scores, nontarget_scores, p_target=0.01),
        "min_dcf_0.001": min_dcf(target_scores, nontarget_scores, p_target=0.001),
        "cllr": cllr(target_scores, nontarget_scores),
        "min_cllr": min_cllr(target_scores, nontarget_scores),
    }


def identification_accuracy(
    true_labels: Sequence[str], ranked: Sequence[Sequence[str | tuple[str, float]]], top_k: int = 1
) -> float:
    """Fraction of tests whose true speaker is among the first ``top_k`` candidates.

    Parameters
    ----------
    true_labels : sequence of str, length n_tests
    ranked : sequence of length n_tests
        For each test, candidates best first: names, or ``(name, score)`` pairs as returned by
        ``Scorer.identify`` (any non-string entry is read as a pair whose first item is the name).
    top_k : int
        1 gives closed-set top-1 accuracy.

    Examples
    --------
    >>> ranked = [[("alice", 1.2), ("bob", 0.3)], [("alice", 0.8), ("bob", 0.5)]]
    >>> truth = ["alice", "bob"]  # bob is ranked second
    >>> identification_accuracy(truth, ranked), identification_accuracy(truth, ranked, top_k=2)
    (0.5, 1.0)
    """
    if top_k < 1:
        raise DataError(f"top_k={top_k}: must be at least 1")
    if len(true_labels) != len(ranked):
        raise DataError(f"identification_accuracy: {len(true_labels)} true labels but {len(ranked)} rankings")
    if len(true_labels) == 0:
        raise DataError("identification_accuracy: no tests")
    hits = 0
    for truth, candidates in zip(true_labels, ranked, strict=True):
        names = [c if isinstance(c, str) else c[0] for c in list(candidates)[:top_k]]
        hits += truth in names
    return hits / len(true_labels)
