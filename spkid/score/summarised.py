"""Score normalisation with the model side summarised: two numbers per model, stored at enrollment.

Z-norm, S-norm and adaptive S-norm use each enrolled model's scores on the cohort's impostor segments only
through their mean and standard deviation (over the ``top_k`` highest for adaptive S-norm).
:func:`model_summary` computes those two numbers (enrollment stores them with the speaker, and the speaker
bank with its columns) and :func:`normalize_summarised` applies the method from them: the same scores as
:func:`spkid.score.normalize.normalize` given every model's cohort scores, without scoring the cohort segments
again for every test.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from spkid.errors import DataError
from spkid.score.normalize import _matrix, _s_norm, _stats

__all__ = ["SUMMARISED", "model_summary", "normalize_summarised"]

#: Methods whose model side is two numbers per model (:func:`model_summary`), computable at enrollment.
SUMMARISED = ("znorm", "snorm", "asnorm")


def model_summary(
    method: str, model_cohort_scores: ArrayLike, *, top_k: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """The model side of ``method`` (one of :data:`SUMMARISED`): each model's mean and floored standard
    deviation over its cohort scores, the ``top_k`` highest for ``asnorm``, all of them otherwise.

    Parameters
    ----------
    method : str
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)
    top_k : int

    Returns
    -------
    mean, std : ndarray of shape (n_models,)

    Examples
    --------
    >>> model_cohort = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> [values.tolist() for values in model_summary("asnorm", model_cohort, top_k=2)]
    [[3.0, 4.0], [1.0, 1.0]]
    >>> model_summary("snorm", model_cohort)[0].tolist()
    [2.0, 3.0]
    """
    cohort = _matrix("model_cohort_scores", model_cohort_scores)
    return _stats(cohort, axis=0, top_k=top_k if method == "asnorm" else None)


def normalize_summarised(
    method: str,
    scores: ArrayLike,
    model_mean: ArrayLike,
    model_std: ArrayLike,
    test_cohort_scores: ArrayLike | None = None,
    *,
    top_k: int = 50,
) -> np.ndarray:
    """:func:`normalize` for a method of :data:`SUMMARISED` with its model side given as
    :func:`model_summary` made it (stored at enrollment): the same numbers, without the model cohort scores.

    Parameters
    ----------
    method : str
    scores : array-like of shape (n_tests, n_models)
    model_mean, model_std : array-like of shape (n_models,)
    test_cohort_scores : array-like of shape (n_tests, n_cohort_models), optional
        Required unless ``method`` is "znorm".
    top_k : int

    Returns
    -------
    ndarray of shape (n_tests, n_models)

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.score.normalize import asnorm
    >>> scores, test_cohort = [[3.0, 2.0]], [[0.0, 2.0, 4.0]]
    >>> model_cohort = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> mean, std = model_summary("asnorm", model_cohort, top_k=2)
    >>> summarised = normalize_summarised("asnorm", scores, mean, std, test_cohort, top_k=2)
    >>> bool(np.array_equal(summarised, asnorm(scores, model_cohort, test_cohort, top_k=2)))
    True
    """
    if method not in SUMMARISED:
        raise DataError(f"normalization={method!r}: its model side is not a per-model summary")
    scores = _matrix("scores", scores)
    mean = np.asarray(model_mean, dtype=np.float64).reshape(-1)
    std = np.asarray(model_std, dtype=np.float64).reshape(-1)
    if len(mean) != scores.shape[1] or len(std) != scores.shape[1]:
        raise DataError(f"model statistics for {len(mean)} models, scores for {scores.shape[1]}")
    if method == "znorm":
        return (scores - mean[None, :]) / std[None, :]
    if test_cohort_scores is None:
        raise DataError(f"normalization={method!r} needs test_cohort_scores (no cohort given)")
    test_cohort = _matrix("test_cohort_scores", test_cohort_scores, n_rows=scores.shape[0])
    test_side = _stats(test_cohort, axis=1, top_k=top_k if method == "asnorm" else None)
    return _s_norm(scores, mean, std, *test_side)
