"""Feature warping (Pelecanos & Sridharan, 2001): each feature mapped to the standard-normal value of its rank
within a window of frames, so a channel's monotone change of the features' distribution is undone."""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np


@lru_cache(maxsize=64)
def _normal_quantiles(n_values: int) -> np.ndarray:
    """``Phi^-1((r - 0.5) / n)`` for ranks ``r = 1, 1.5, ..., n`` (half ranks for ties), read-only."""
    ranks = np.arange(2, 2 * n_values + 1) / 2.0
    inverse_cdf = NormalDist().inv_cdf
    table = np.array([inverse_cdf((rank - 0.5) / n_values) for rank in ranks])
    table.setflags(write=False)
    return table


def _warp_block(values: np.ndarray, windows: np.ndarray, n_window: int) -> np.ndarray:
    """Warped values of ``values`` (m, d) within their ``windows`` (m, n_window, d)."""
    below = np.count_nonzero(windows < values[:, None, :], axis=1)
    equal = np.count_nonzero(windows == values[:, None, :], axis=1)
    # Rank r = below + (equal + 1) / 2 in 1..n (ties share their mean rank); the table steps by halves.
    return _normal_quantiles(n_window)[2 * below + equal - 1]


def feature_warping(features: np.ndarray, *, window_frames: int = 300, block_frames: int = 256) -> np.ndarray:
    """Map each feature to the standard-normal value of its rank within a window of frames around it.

    Feature warping (Pelecanos & Sridharan, 2001): in a window of ``window_frames`` frames centred on a
    frame (shifted to stay inside the utterance, as :func:`~.normalization.sliding_cmvn`; the whole
    utterance when it is shorter), the frame's value of each dimension has rank ``r`` of ``n``; it becomes
    ``Phi^-1((r - 0.5) / n)``, so every dimension is standard normal over the window whatever the channel did
    to its distribution.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    window_frames : int, default 300
        3 s at 100 frames/s, as in the original paper.
    block_frames : int, default 256
        Frames ranked per vectorised step (bounds the temporary memory to ``block * window * n_dims``).

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Examples
    --------
    >>> import numpy as np
    >>> feature_warping(np.array([[3.0], [1.0], [2.0]])).ravel().astype(float).round(3).tolist()
    [0.967, -0.967, 0.0]
    """
    frames = np.asarray(features, dtype=np.float32)
    n_frames, n_dims = frames.shape
    if n_frames == 0:
        return frames.copy()
    n_window = min(int(window_frames), n_frames)
    starts = np.clip(np.arange(n_frames) - n_window // 2, 0, n_frames - n_window)
    windows = np.lib.stride_tricks.sliding_window_view(frames, n_window, axis=0)  # (n - w + 1, d, w)
    warped = np.empty((n_frames, n_dims), dtype=np.float32)
    for first in range(0, n_frames, block_frames):
        last = min(first + block_frames, n_frames)
        block_windows = np.swapaxes(windows[starts[first:last]], 1, 2)  # (m, w, d)
        warped[first:last] = _warp_block(frames[first:last], block_windows, n_window)
    return warped
