"""Feature normalisation: cepstral mean (and variance) over the utterance, a sliding window, toward the
pool's global statistics by duration, and the recording's level (feature warping: :mod:`.warping`).

Statistics accumulate in float64; output is float32. A dimension that does not vary maps to 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from spkid.errors import FeatureError

STD_FLOOR = 1e-5  # a (near-)constant dimension is centred, not blown up to unit variance


def level_normalisation(features: np.ndarray) -> np.ndarray:
    """Remove the recording's level: the utterance mean of the first coefficient (c0, or the log energy).

    A gain on the signal adds the same constant to every frame's log mel energies, so to c0 alone (the log
    mel floor follows the utterance's peak): this makes the features gain-invariant and keeps every other
    cepstral mean, which on short recordings is mostly the speaker.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
        Column 0 is c0 or the log energy (``mfcc`` keeps c0 first).

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> level_normalisation(np.array([[1.0, 5.0], [3.0, 6.0]])).tolist()
    [[-1.0, 5.0], [1.0, 6.0]]
    """
    levelled = np.array(features, dtype=np.float64)
    if levelled.shape[0]:
        levelled[:, 0] -= levelled[:, 0].mean()
    return levelled.astype(np.float32)


def cmvn(features: np.ndarray, *, variance: bool = True) -> np.ndarray:
    """Subtract each dimension's mean over the utterance and, optionally, divide by its standard deviation.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    variance : bool, default True

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32
        Zero mean, and unit variance (population, ``ddof=0``) when ``variance`` is true, per dimension.

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.random.default_rng(0).normal(3.0, 2.0, size=(200, 4))
    >>> normalised = cmvn(frames)
    >>> normalised.dtype, bool(np.allclose(normalised.mean(axis=0), 0.0, atol=1e-6))
    (dtype('float32'), True)
    >>> bool(np.allclose(normalised.std(axis=0), 1.0, atol=1e-5))
    True
    """
    features = np.asarray(features)
    if features.shape[0] == 0:
        return features.astype(np.float32)
    normalised = features - features.mean(axis=0, dtype=np.float64)  # float64: exact zero mean
    if variance:
        normalised /= np.maximum(np.sqrt(np.mean(np.square(normalised), axis=0)), STD_FLOOR)
    return normalised.astype(np.float32)


def sliding_cmvn(features: np.ndarray, *, window_frames: int = 300, variance: bool = True) -> np.ndarray:
    """Normalise each frame by the statistics of a window of ``window_frames`` frames centred on it.

    As Kaldi's ``apply-cmvn-sliding --center=true``: near the edges the window is shifted to stay inside the
    utterance, and an utterance shorter than the window uses all of its frames (so this equals
    :func:`cmvn`).

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    window_frames : int, default 300
    variance : bool, default True

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> drifting = np.linspace(0.0, 20.0, 1000)[:, None] + rng.normal(size=(1000, 2))  # a slow channel drift
    >>> last_second = sliding_cmvn(drifting, window_frames=100)[-100:]
    >>> bool(abs(last_second.mean()) < 0.5), bool(abs(cmvn(drifting)[-100:].mean()) < 0.5)
    (True, False)
    """
    features = np.asarray(features)
    n_frames = features.shape[0]
    if n_frames <= window_frames:
        return cmvn(features, variance=variance)
    start = np.clip(np.arange(n_frames) - window_frames // 2, 0, n_frames - window_frames)
    end = start + window_frames
    as_float64 = features.astype(np.float64)
    sums = np.zeros((n_frames + 1, features.shape[1]))
    np.cumsum(as_float64, axis=0, out=sums[1:])
    mean = (sums[end] - sums[start]) / window_frames
    normalised = as_float64 - mean
    if variance:
        squares = np.zeros_like(sums)
        np.cumsum(np.square(as_float64), axis=0, out=squares[1:])
        var = (squares[end] - squares[start]) / window_frames - np.square(mean)
        normalised /= np.maximum(np.sqrt(np.maximum(var, 0.0)), STD_FLOOR)
    return normalised.astype(np.float32)


@dataclass(frozen=True)
class GlobalStats:
    """Per-dimension mean and variance of un-normalised features over a whole pool (the UBM's).

    Estimated once at ``train-ubm`` time and stored in the model: the reference that
    :func:`global_cmvn` and :func:`adaptive_cmvn` normalise towards.

    Attributes
    ----------
    mean : ndarray of shape (n_dims,), float64
    variance : ndarray of shape (n_dims,), float64
    n_frames : int
        Frames the statistics were estimated on.

    Examples
    --------
    >>> import numpy as np
    >>> stats = GlobalStats.from_features([np.array([[0.0], [2.0]]), np.array([[4.0]])])
    >>> stats.mean.tolist(), stats.variance.round(4).tolist(), stats.n_frames
    ([2.0], [2.6667], 3)
    """

    mean: np.ndarray
    variance: np.ndarray
    n_frames: int

    @classmethod
    def from_features(cls, utterances: Iterable[np.ndarray]) -> GlobalStats:
        """Pool the frames of many ``(n_frames_i, n_dims)`` arrays (float64 sums, one pass, any count)."""
        total = squares = None
        n_frames = 0
        for frames in utterances:
            frames = np.asarray(frames, dtype=np.float64)
            if frames.ndim != 2:
                raise FeatureError(f"global statistics: expected (n_frames, n_dims), got {frames.shape}")
            if total is None:
                total, squares = np.zeros(frames.shape[1]), np.zeros(frames.shape[1])
            elif frames.shape[1] != total.shape[0]:
                raise FeatureError(f"global statistics: {frames.shape[1]} and {total.shape[0]} dimensions")
            total += frames.sum(axis=0)
            squares += np.square(frames).sum(axis=0)
            n_frames += frames.shape[0]
        if total is None or n_frames == 0:
            raise FeatureError("global statistics: no frames")
        mean = total / n_frames
        return cls(mean, np.maximum(squares / n_frames - np.square(mean), 0.0), n_frames)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"mean", "variance", "n_frames"}`` arrays, for the model store."""
        return {"mean": self.mean, "variance": self.variance, "n_frames": np.asarray(self.n_frames)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> GlobalStats:
        """Inverse of :meth:`to_arrays`; :class:`~spkid.errors.FeatureError` on missing or bad arrays."""
        try:
            mean = np.asarray(arrays["mean"], dtype=np.float64)
            variance = np.asarray(arrays["variance"], dtype=np.float64)
            n_frames = int(arrays["n_frames"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"global statistics: missing or malformed array ({exc})") from None
        finite = np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance >= 0)
        if mean.ndim != 1 or variance.shape != mean.shape or n_frames < 1 or not finite:
            raise FeatureError("global statistics: inconsistent shapes or non-finite values")
        return cls(mean, variance, n_frames)

    def digest(self) -> str:
        """SHA-256 of the statistics' bytes: part of feature cache keys."""
        digest = hashlib.sha256()
        for array in (self.mean, self.variance, np.asarray(self.n_frames, dtype=np.int64)):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def _scaled(centred: np.ndarray, variance: np.ndarray | None) -> np.ndarray:
    if variance is not None:
        centred /= np.maximum(np.sqrt(variance), STD_FLOOR)
    return centred.astype(np.float32)


def global_cmvn(features: np.ndarray, stats: GlobalStats, *, variance: bool = True) -> np.ndarray:
    """Normalise by the pool's statistics: ``(x - mean) / std`` with the same numbers for every utterance.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    stats : GlobalStats
    variance : bool, default True

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> stats = GlobalStats(np.array([1.0]), np.array([4.0]), 10)
    >>> global_cmvn(np.array([[3.0], [1.0]]), stats).ravel().tolist()
    [1.0, 0.0]
    """
    centred = np.asarray(features, dtype=np.float64) - stats.mean
    return _scaled(centred, stats.variance if variance else None)


def adaptive_cmvn(
    features: np.ndarray, stats: GlobalStats, *, relevance_frames: float = 300.0, variance: bool = True
) -> np.ndarray:
    """Utterance CMVN whose statistics are shrunk toward the pool's by the utterance's length (MAP-style).

    With ``n`` frames of utterance mean ``m`` and variance ``v``, and pool statistics ``M``, ``V``, the
    weight of the utterance is ``a = n / (n + relevance_frames)``; the mean used is ``a m + (1 - a) M`` and
    the variance the one of the mixture of both around that mean. Long utterances are normalised by their own
    statistics (channel removed), very short ones by the pool's (their cepstral mean, mostly speaker, kept).

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    stats : GlobalStats
    relevance_frames : float, default 300
        Frames at which the utterance and the pool weigh the same (0: plain utterance CMVN).
    variance : bool, default True

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> stats = GlobalStats(np.zeros(1), np.ones(1), 1000)
    >>> short = np.full((3, 1), 5.0)
    >>> float(adaptive_cmvn(short, stats, relevance_frames=300, variance=False)[0, 0])  # mean barely moved
    4.95049...
    """
    frames = np.asarray(features, dtype=np.float64)
    n_frames = frames.shape[0]
    if n_frames == 0:
        return frames.astype(np.float32)
    weight = n_frames / (n_frames + float(relevance_frames))
    own_mean = frames.mean(axis=0)
    mean = weight * own_mean + (1.0 - weight) * stats.mean
    centred = frames - mean
    if not variance:
        return _scaled(centred, None)
    own_variance = np.mean(np.square(frames - own_mean), axis=0)
    mixed = weight * (own_variance + np.square(own_mean - mean)) + (1.0 - weight) * (
        stats.variance + np.square(stats.mean - mean)
    )
    return _scaled(centred, mixed)


def adaptive_level_cmvn(
    features: np.ndarray, stats: GlobalStats, *, relevance_frames: float = 300.0, variance: bool = True
) -> np.ndarray:
    """:func:`adaptive_cmvn`, then the first coefficient (c0: the recording's level) centred on its own mean.

    A short recording keeps most of its cepstral means under :func:`adaptive_cmvn`, its loudness among them;
    here c0's is removed whole (:func:`level_normalisation`), so a gain on the signal no longer shifts it
    (c0's scale still follows :func:`adaptive_cmvn`'s mixed variance).

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    stats : GlobalStats
    relevance_frames : float, default 300
    variance : bool, default True

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> stats = GlobalStats(np.zeros(2), np.ones(2), 1000)
    >>> short = np.array([[5.0, 5.0], [7.0, 5.0]])
    >>> levelled = adaptive_level_cmvn(short, stats, variance=False)
    >>> levelled[:, 0].round(3).tolist(), levelled[:, 1].round(3).tolist()  # c0 centred, c1 keeps its mean
    ([-1.0, 1.0], [4.967, 4.967])
    """
    adapted = adaptive_cmvn(features, stats, relevance_frames=relevance_frames, variance=variance)
    return level_normalisation(adapted)
