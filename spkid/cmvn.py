"""Cepstral mean (and variance) normalisation, over the whole utterance or a sliding window.

Statistics accumulate in float64; output is float32. A dimension that does not vary maps to 0.
"""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-5  # a (near-)constant dimension is centred, not blown up to unit variance


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
