"""MAP adaptation of speaker models from the UBM, and enrollment.

:func:`map_adapt` derives a speaker model from the UBM by maximum-a-posteriori adaptation (Reynolds,
Quatieri & Dunn 2000): each component moves towards the speaker's data in proportion to
``alpha_k = n_k / (n_k + relevance_factor)``, where ``n_k`` is the soft count of the speaker's frames it
explains. The UBM itself is never modified. :func:`enroll` is the same with an :class:`EnrollConfig`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from spkid.config_checks import check_field
from spkid.errors import ModelError
from spkid.gmm import MixtureParameters, SufficientStats, floor_variances
from spkid.ubm.config import EnrollConfig, parse_adapt

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = ["enroll", "map_adapt", "map_from_stats"]


def _as_frame_list(features: np.ndarray | Iterable[np.ndarray], what: str) -> list[np.ndarray]:
    """One array -> [array]; an iterable of arrays -> list, each checked to be 2-D, finite, same width."""
    arrays = [features] if isinstance(features, np.ndarray) else list(features)
    checked = []
    for index, X in enumerate(arrays):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ModelError(
                f"{what}: utterance {index} has shape {X.shape}, expected (n_frames, n_features)"
            )
        if checked and X.shape[1] != checked[0].shape[1]:
            raise ModelError(
                f"{what}: utterance {index} has {X.shape[1]} features, the first has {checked[0].shape[1]}"
            )
        if not np.all(np.isfinite(X)):
            raise ModelError(f"{what}: utterance {index} contains NaN or infinite features")
        if len(X):
            checked.append(X)
    if not checked:
        raise ModelError(f"{what}: no feature frames given")
    return checked


def map_adapt(
    ubm: MixtureParameters | DiagonalGMM,
    X: np.ndarray | Sequence[np.ndarray],
    *,
    relevance_factor: float = 4.0,
    adapt: str | Sequence[str] = "means",
) -> MixtureParameters:
    """MAP-adapt the UBM to one speaker's frames (Reynolds et al. 2000); the UBM is not modified.

    With soft counts ``n_k`` and data moments ``E_k[x]``, ``E_k[x^2]`` of the speaker's frames under the
    UBM, ``alpha_k = n_k / (n_k + relevance_factor)`` and

    - means: ``alpha_k E_k[x] + (1 - alpha_k) mu_k``;
    - weights: ``alpha_k n_k / T + (1 - alpha_k) w_k``, renormalised;
    - variances: ``alpha_k E_k[x^2] + (1 - alpha_k)(var_k + mu_k^2) - new_mu_k^2``, floored like the UBM.

    ``relevance_factor`` -> infinity returns the UBM; -> 0 the maximum-likelihood estimates of one EM step
    from the UBM (for components that see data; the others keep the UBM's parameters).

    Parameters
    ----------
    ubm : MixtureParameters or DiagonalGMM
        A loaded UBM, or the fitted estimator (its ``n_jobs`` and ``chunk_size`` run the E-step).
    X : ndarray of shape (n_frames, n_features), or a sequence of such arrays (one speaker's utterances)
    relevance_factor : float
        The default is :class:`EnrollConfig`'s (4); Reynolds et al. (2000) used 16.
    adapt : str or sequence of str
        Any of "means", "weights", "variances" (a string may list several: "means,weights").

    Returns
    -------
    MixtureParameters
        The speaker model, with the UBM's ``dtype`` and ``variance_floor`` (what :class:`spkid.score.Scorer`
        and the model store take; ``DiagonalGMM.from_params`` makes an estimator of it).

    Examples
    --------
    >>> import numpy as np
    >>> ubm = MixtureParameters([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    >>> speaker = np.full((8, 1), 3.0)  # 8 frames, all explained by the second component
    >>> model = map_adapt(ubm, speaker, relevance_factor=4.0)  # alpha = 8 / (8 + 4) for that component
    >>> model.means.ravel().round(2).tolist(), bool(np.array_equal(model.variances, ubm.variances))
    ([-2.0, 2.67], True)
    """
    parts = parse_adapt(adapt)
    # EnrollConfig's rule (one place), raised as the ModelError this function has always raised.
    relevance_factor = check_field(EnrollConfig, "relevance_factor", relevance_factor, error=ModelError)
    arrays = _as_frame_list(X, "MAP adaptation")
    means = ubm.means_
    if arrays[0].shape[1] != means.shape[1]:
        raise ModelError(
            f"MAP adaptation: features have {arrays[0].shape[1]} dimensions, the UBM {means.shape[1]}"
        )
    stats: SufficientStats = ubm.accumulate(arrays)
    return map_from_stats(ubm, stats, relevance_factor=relevance_factor, adapt=parts)


def map_from_stats(
    ubm: MixtureParameters | DiagonalGMM,
    stats: SufficientStats,
    *,
    relevance_factor: float = 4.0,
    adapt: str | Sequence[str] = "means",
) -> MixtureParameters:
    """The MAP-adapted model of a speaker whose frames have sufficient statistics ``stats`` under the UBM.

    :func:`map_adapt` is this after ``ubm.accumulate(X)``. Statistics of disjoint recordings add up, so a
    speaker stored as its statistics grows by adding those of new recordings (``spkid enroll --add``).

    Parameters
    ----------
    ubm : MixtureParameters or DiagonalGMM
    stats : SufficientStats
        ``zeroth`` (K,), ``first`` (K, D) and, when variances are adapted, ``second`` (K, D).
    relevance_factor : float
    adapt : str or sequence of str
        As for :func:`map_adapt`.

    Returns
    -------
    MixtureParameters

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> ubm = MixtureParameters(np.full(2, 0.5), np.array([[-1.0], [1.0]]), np.ones((2, 1)))
    >>> frames = np.array([[0.9], [1.1], [1.3]], np.float32)
    >>> one_shot = map_adapt(ubm, frames)
    >>> grown = map_from_stats(ubm, ubm.accumulate(frames[:1]) + ubm.accumulate(frames[1:]))
    >>> bool(np.allclose(one_shot.means_, grown.means_))
    True
    """
    parts = parse_adapt(adapt)
    relevance_factor = check_field(EnrollConfig, "relevance_factor", relevance_factor, error=ModelError)
    weights, means, variances = ubm.weights_, ubm.means_, ubm.variances_
    counts = np.asarray(stats.zeroth, np.float64)
    first = np.asarray(stats.first, np.float64)
    if counts.shape != weights.shape or first.shape != means.shape:
        raise ModelError(
            f"MAP adaptation: statistics of shape {counts.shape} and {first.shape}, the UBM has "
            f"{weights.shape} and {means.shape}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        # inf / inf (r = inf) and 0 / 0 (r = 0, no data) both mean "no evidence": keep the UBM.
        alpha = np.nan_to_num(counts / (counts + relevance_factor), nan=0.0)
    has_data = counts > 0
    safe_counts = np.where(has_data, counts, 1.0)[:, None]
    data_mean = np.where(has_data[:, None], first / safe_counts, means)
    a = alpha[:, None]
    new_means = a * data_mean + (1 - a) * means if "means" in parts else means
    new_weights = weights
    if "weights" in parts:
        new_weights = alpha * counts / counts.sum() + (1 - alpha) * weights
        new_weights = new_weights / new_weights.sum()
    new_variances = variances
    if "variances" in parts:
        second = np.asarray(stats.second, np.float64)
        data_square = np.where(has_data[:, None], second / safe_counts, variances + means**2)
        centre = weights @ means
        pooled_variance = weights @ (variances + means**2) - centre**2
        # The GMM's floor: relative per dimension, and absolutely 1e-10 x the widest dimension, so a
        # constant dimension cannot reach variances whose float32 precisions overflow when scoring.
        floor = floor_variances(pooled_variance, ubm.variance_floor)
        new_variances = np.maximum(a * data_square + (1 - a) * (variances + means**2) - new_means**2, floor)
    return MixtureParameters(
        new_weights, new_means, new_variances, variance_floor=ubm.variance_floor, dtype=ubm.dtype
    )


def enroll(
    ubm: MixtureParameters | DiagonalGMM,
    features_list: Sequence[np.ndarray],
    config: EnrollConfig = EnrollConfig(),
) -> MixtureParameters:
    """A speaker model from the speaker's utterances: :func:`map_adapt` with ``config``'s settings.

    Parameters
    ----------
    ubm : MixtureParameters or DiagonalGMM
    features_list : sequence of ndarray of shape (n_frames_i, n_features)
    config : EnrollConfig

    Returns
    -------
    MixtureParameters

    Examples
    --------
    >>> import numpy as np
    >>> ubm = MixtureParameters([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    >>> utterances = [np.full((4, 1), 3.0), np.full((4, 1), 3.0)]
    >>> model = enroll(ubm, utterances, EnrollConfig(relevance_factor=8.0, adapt="means,weights"))
    >>> model.means.ravel().round(2).tolist(), model.weights.round(2).tolist()
    ([-2.0, 2.5], [0.4, 0.6])
    """
    return map_adapt(ubm, features_list, relevance_factor=config.relevance_factor, adapt=config.adapt)
