"""Time derivatives of feature trajectories (Δ, ΔΔ), as ``librosa.feature.delta`` computes them.

Savitzky-Golay derivative filters over ``2 * width_frames + 1`` frames, with polynomial fits at the two
edges (scipy's ``mode="interp"``); the filter and edge matrices are computed once per width and order.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np

from spkid.errors import FeatureError


@lru_cache(maxsize=16)
def _filters(width_frames: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior filter ``(window,)`` and edge matrices ``(width_frames, window)``, float64, read-only."""
    window = 2 * width_frames + 1
    positions = np.arange(window, dtype=np.float64)
    fit = np.linalg.pinv(np.vander(positions, order + 1, increasing=True))  # samples -> poly coefficients
    # The order-th derivative of a degree-order polynomial is order! times its top coefficient, the same
    # wherever it is evaluated: the interior filter (scipy.signal.savgol_coeffs(window, order, deriv=order,
    # use="dot"), to 1e-15, without importing scipy.signal) and every edge row are this one vector.
    interior = factorial(order) * fit[order]
    edges = np.repeat(interior[None, :], window, axis=0)
    left, right = edges[:width_frames], edges[window - width_frames :]
    for array in (interior, left, right):
        array.setflags(write=False)
    return interior, left, right


def deltas(features: np.ndarray, *, width_frames: int = 2, order: int = 1) -> np.ndarray:
    """Savitzky-Golay time derivative of each feature along axis 0.

    Equals ``librosa.feature.delta(features.T, width=2 * width_frames + 1, order=order).T``; for
    ``order=1`` the interior is the HTK regression formula.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    width_frames : int, default 2
        Half-width of the window (±frames).
    order : int, default 1
        1 for Δ, 2 for ΔΔ.

    Returns
    -------
    ndarray of shape (n_frames, n_dims), float32

    Raises
    ------
    FeatureError
        Fewer than ``2 * width_frames + 1`` frames.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = 2.0 * np.arange(10.0)[:, None]  # rises by 2 per frame
    >>> slope = deltas(ramp)
    >>> slope.shape, slope.dtype, bool(np.allclose(slope, 2.0))  # the edges too
    ((10, 1), dtype('float32'), True)
    """
    stacked = with_deltas(features, width_frames=width_frames, order=order, first_order=order)
    return stacked[:, features.shape[1] :]


def with_deltas(
    features: np.ndarray, *, width_frames: int = 2, order: int = 2, first_order: int = 1
) -> np.ndarray:
    """``[features, Δ, ΔΔ, ...]`` side by side: the static features and their derivatives up to ``order``.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_dims)
    width_frames : int, default 2
    order : int, default 2
        Highest derivative; 0 returns the features alone (as float32).
    first_order : int, default 1
        Lowest derivative included (internal use by :func:`deltas`).

    Returns
    -------
    ndarray of shape (n_frames, n_dims * (1 + order - first_order + 1)), float32

    Examples
    --------
    >>> import numpy as np
    >>> cepstra = np.random.default_rng(0).normal(size=(50, 20))
    >>> with_deltas(cepstra).shape, with_deltas(cepstra, order=1).shape  # static + Δ + ΔΔ, static + Δ
    ((50, 60), (50, 40))
    """
    features = np.asarray(features, dtype=np.float32)
    n_frames, n_dims = features.shape
    orders = list(range(first_order, order + 1))
    stacked = np.empty((n_frames, n_dims * (1 + len(orders))), dtype=np.float32)
    stacked[:, :n_dims] = features
    if not orders:
        return stacked
    window = 2 * width_frames + 1
    if n_frames < window:
        raise FeatureError(f"too short for deltas: {n_frames} frames, need at least {window}")
    # (n_frames - window + 1, n_dims, window) view: each frame's neighbourhood, no copy.
    neighbourhoods = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)
    for slot, derivative_order in enumerate(orders, start=1):
        interior, left, right = _filters(width_frames, derivative_order)
        columns = slice(slot * n_dims, (slot + 1) * n_dims)
        interior_rows = slice(width_frames, n_frames - width_frames)
        stacked[interior_rows, columns] = neighbourhoods @ interior.astype(np.float32)
        stacked[:width_frames, columns] = left @ features[:window]
        stacked[n_frames - width_frames :, columns] = right @ features[n_frames - window :]
    return stacked
