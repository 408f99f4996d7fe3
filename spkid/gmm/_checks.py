"""Input checks of :class:`~spkid.gmm.DiagonalGMM`: its settings, and its frames checked as scikit-learn does.

Kept beside :mod:`spkid.gmm.model` (the only other module that imports scikit-learn) so the estimator holds
the model's behaviour and this module its validation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from spkid.errors import ModelError
from spkid.gmm._estep import Frames
from spkid.gmm.parameters import checked_dtype

__all__ = ["NOT_FITTED", "as_frames", "check_settings", "is_one_array"]

NOT_FITTED = "DiagonalGMM is not fitted: call fit(), from_params() or from_dict() first"


def is_one_array(X: object) -> bool:
    """Whether ``X`` is one array-like of frames (ndarray, DataFrame, sparse, nested lists of numbers)
    rather than a collection of utterances (a sequence or iterable of 2-D arrays)."""
    if hasattr(X, "__array__") or hasattr(X, "__array_namespace__") or hasattr(X, "tocsr"):
        return True
    if isinstance(X, (list, tuple)):
        return len(X) == 0 or np.ndim(X[0]) < 2
    return False


def check_settings(estimator: BaseEstimator) -> None:
    """Raise :class:`ModelError` naming the first setting of ``estimator`` that is out of range."""
    if not isinstance(estimator.n_components, (int, np.integer)) or estimator.n_components < 1:
        raise ModelError(f"n_components: expected an integer >= 1, got {estimator.n_components!r}")
    if not isinstance(estimator.max_iter, (int, np.integer)) or estimator.max_iter < 0:
        raise ModelError(f"max_iter: expected an integer >= 0, got {estimator.max_iter!r}")
    if estimator.init not in ("kmeans++", "split"):
        raise ModelError(f"init: expected 'kmeans++' or 'split', got {estimator.init!r}")
    for name in ("tol", "variance_floor"):
        value = getattr(estimator, name)
        if not (value is None and name == "tol") and not value >= 0:
            raise ModelError(f"{name}: expected a number >= 0, got {value!r}")
    if not 0 <= estimator.min_weight < 1.0 / estimator.n_components:
        raise ModelError(f"min_weight: expected 0 <= value < 1/n_components, got {estimator.min_weight!r}")
    if estimator.chunk_size is not None and (
        not isinstance(estimator.chunk_size, (int, np.integer)) or estimator.chunk_size < 1
    ):
        raise ModelError(f"chunk_size: expected None or an integer >= 1, got {estimator.chunk_size!r}")
    checked_dtype(estimator.dtype)


def as_frames(
    estimator: BaseEstimator, X: np.ndarray | Iterable[np.ndarray], *, reset: bool = False
) -> Frames:
    """``X`` as Frames: one array-like is validated as scikit-learn does (``validate_data``: NaN, shape,
    ``n_features_in_``, feature names), an iterable of utterances by :class:`Frames` itself. ``reset`` (in
    ``fit``) sets ``estimator.n_features_in_``; otherwise the estimator must be fitted."""
    if not reset:
        check_is_fitted(estimator, msg=NOT_FITTED)
    if not is_one_array(X):
        frames = Frames(X, n_features=None if reset else estimator.n_features_in_)
        if reset:
            estimator.n_features_in_ = frames.n_features
        return frames
    if np.ndim(X) != 2 and not hasattr(X, "tocsr"):
        width = "n_features" if reset else estimator.n_features_in_
        raise ModelError(
            f"X: expected shape (n_frames, {width}), got {np.shape(X)}. Reshape your data: "
            "X.reshape(1, -1) if it is one frame, X.reshape(-1, 1) if it is one feature"
        )
    try:
        X = validate_data(estimator, X, reset=reset, dtype=(np.float64, np.float32))
    except ValueError as error:  # scikit-learn's messages, on one line
        raise ModelError(" ".join(str(error).split())) from None
    return Frames(X, n_features=X.shape[1])
