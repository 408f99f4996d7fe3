"""Score normalisation with an impostor cohort: Z-norm, T-norm, ZT-norm, S-norm and adaptive S-norm.

Pure functions on score matrices. ``scores[i, m]`` is the score of test utterance ``i`` against enrolled
model ``m``. The cohort is a set of impostor utterances and impostor models (e.g. drawn from the UBM pool):

- ``model_cohort_scores`` (n_cohort_utts, n_models): every enrolled model scored on every cohort
  utterance (the Z-norm statistics, one distribution per model; computable once, at enrollment);
- ``test_cohort_scores`` (n_tests, n_cohort_models): every test utterance scored against every cohort
  model (the T-norm statistics, one distribution per test);
- ``cohort_cohort_scores`` (n_cohort_utts, n_cohort_models): cohort models scored on cohort utterances
  (ZT-norm uses it to Z-normalise the T-norm cohort).

With :class:`spkid.score.Scorer` these are ``Scorer(ubm, enrolled).llr_many(cohort_utts)``,
``Scorer(ubm, cohort_models).llr_many(tests)`` and ``Scorer(ubm, cohort_models).llr_many(cohort_utts)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from spkid.errors import DataError

__all__ = ["METHODS", "asnorm", "normalize", "snorm", "tnorm", "znorm", "znorm_statistics", "ztnorm"]

METHODS = ("none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm")

# Standard deviations below this are treated as this, so a degenerate cohort cannot divide by zero.
STD_FLOOR = 1e-8


def _matrix(name: str, values: ArrayLike, n_rows: int | None = None, n_cols: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise DataError(f"{name}: expected a 2-D score matrix, got shape {array.shape}")
    if n_rows is not None and array.shape[0] != n_rows:
        raise DataError(f"{name}: expected {n_rows} rows, got shape {array.shape}")
    if n_cols is not None and array.shape[1] != n_cols:
        raise DataError(f"{name}: expected {n_cols} columns, got shape {array.shape}")
    if 0 in array.shape:
        raise DataError(f"{name}: empty score matrix of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name}: contains NaN or infinite scores")
    return array


def _stats(cohort: np.ndarray, axis: int, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and floored standard deviation along ``axis``, over the ``top_k`` highest scores if given."""
    if top_k is not None:
        size = cohort.shape[axis]
        if top_k < 1:
            raise DataError(f"top_k={top_k}: must be at least 1")
        if top_k < size:
            cohort = -np.partition(-cohort, top_k - 1, axis=axis)
            cohort = np.take(cohort, np.arange(top_k), axis=axis)
    mean = cohort.mean(axis=axis)
    std = np.maximum(cohort.std(axis=axis), STD_FLOOR)
    return mean, std


def znorm(scores: ArrayLike, model_cohort_scores: ArrayLike) -> np.ndarray:
    """Z-norm: standardise each model's scores by its score distribution on the cohort utterances.

    Parameters
    ----------
    scores : array-like of shape (n_tests, n_models)
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)

    Returns
    -------
    ndarray of shape (n_tests, n_models)
        ``(scores - mean_m) / std_m`` with the mean and std of column ``m`` of the cohort scores.

    Examples
    --------
    >>> model_cohort = [[0.0, 1.0], [2.0, 3.0]]  # 2 cohort utterances x 2 models: means 1, 2; stds 1, 1
    >>> znorm([[3.0, 2.0]], model_cohort).tolist()
    [[2.0, 0.0]]
    """
    scores = _matrix("scores", scores)
    mean, std = znorm_statistics(model_cohort_scores, n_models=scores.shape[1])
    return (scores - mean[None, :]) / std[None, :]


def znorm_statistics(
    model_cohort_scores: ArrayLike, *, n_models: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-model Z-norm mean and floored standard deviation, each of shape (n_models,).

    Parameters
    ----------
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)
    n_models : int, optional
        Expected number of columns (checked when given).

    Examples
    --------
    >>> mean, std = znorm_statistics([[0.0, 1.0], [2.0, 3.0]], n_models=2)
    >>> mean.tolist(), std.tolist()
    ([1.0, 2.0], [1.0, 1.0])
    """
    cohort = _matrix("model_cohort_scores", model_cohort_scores, n_cols=n_models)
    return _stats(cohort, axis=0)


def tnorm(scores: ArrayLike, test_cohort_scores: ArrayLike) -> np.ndarray:
    """T-norm: standardise each test utterance's scores by its scores against the cohort models.

    Parameters
    ----------
    scores : array-like of shape (n_tests, n_models)
    test_cohort_scores : array-like of shape (n_tests, n_cohort_models)

    Returns
    -------
    ndarray of shape (n_tests, n_models)
        ``(scores - mean_i) / std_i`` with the mean and std of row ``i`` of the cohort scores.

    Examples
    --------
    >>> test_cohort = [[0.0, 2.0]]  # 1 test x 2 cohort models: mean 1, std 1
    >>> tnorm([[3.0, 2.0]], test_cohort).tolist()
    [[2.0, 1.0]]
    """
    scores = _matrix("scores", scores)
    cohort = _matrix("test_cohort_scores", test_cohort_scores, n_rows=scores.shape[0])
    mean, std = _stats(cohort, axis=1)
    return (scores - mean[:, None]) / std[:, None]


def ztnorm(
    scores: ArrayLike,
    model_cohort_scores: ArrayLike,
    test_cohort_scores: ArrayLike,
    cohort_cohort_scores: ArrayLike,
) -> np.ndarray:
    """ZT-norm: Z-norm, then T-norm with a T-cohort that was itself Z-normalised.

    Parameters
    ----------
    scores : array-like of shape (n_tests, n_models)
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)
    test_cohort_scores : array-like of shape (n_tests, n_cohort_models)
    cohort_cohort_scores : array-like of shape (n_cohort_utts, n_cohort_models)
        Z-norm statistics of the cohort models (same cohort utterances as ``model_cohort_scores``).

    Returns
    -------
    ndarray of shape (n_tests, n_models)

    Examples
    --------
    >>> model_cohort, test_cohort = [[0.0, 1.0], [2.0, 3.0]], [[0.0, 2.0]]
    >>> cohort_cohort = [[0.0, 1.0], [2.0, 3.0]]  # Z-normalises the test's cohort scores to [-1, 0]
    >>> ztnorm([[3.0, 2.0]], model_cohort, test_cohort, cohort_cohort).tolist()
    [[5.0, 1.0]]
    """
    scores = _matrix("scores", scores)
    model_cohort = _matrix("model_cohort_scores", model_cohort_scores, n_cols=scores.shape[1])
    test_cohort = _matrix("test_cohort_scores", test_cohort_scores, n_rows=scores.shape[0])
    cohort_cohort = _matrix(
        "cohort_cohort_scores",
        cohort_cohort_scores,
        n_rows=model_cohort.shape[0],
        n_cols=test_cohort.shape[1],
    )
    z_scores = znorm(scores, model_cohort)
    z_test_cohort = znorm(test_cohort, cohort_cohort)
    return tnorm(z_scores, z_test_cohort)


def snorm(scores: ArrayLike, model_cohort_scores: ArrayLike, test_cohort_scores: ArrayLike) -> np.ndarray:
    """Symmetric normalisation: the average of the Z-normalised and T-normalised scores.

    Parameters
    ----------
    scores : array-like of shape (n_tests, n_models)
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)
    test_cohort_scores : array-like of shape (n_tests, n_cohort_models)

    Returns
    -------
    ndarray of shape (n_tests, n_models)

    Examples
    --------
    >>> model_cohort, test_cohort = [[0.0, 1.0], [2.0, 3.0]], [[0.0, 2.0]]
    >>> snorm([[3.0, 2.0]], model_cohort, test_cohort).tolist()  # Z-norm [2, 0] and T-norm [2, 1] averaged
    [[2.0, 0.5]]
    """
    return 0.5 * (znorm(scores, model_cohort_scores) + tnorm(scores, test_cohort_scores))


def asnorm(
    scores: ArrayLike, model_cohort_scores: ArrayLike, test_cohort_scores: ArrayLike, *, top_k: int = 50
) -> np.ndarray:
    """Adaptive S-norm: S-norm whose statistics use only the ``top_k`` highest cohort scores of each side.

    For each model the mean/std come from its ``top_k`` best-scoring cohort utterances, for each test from
    its ``top_k`` best-scoring cohort models (Matějka et al. 2017); the cohort closest to each side is the
    one that matters for false alarms. With ``top_k`` at least the cohort size this equals :func:`snorm`.

    Parameters
    ----------
    scores : array-like of shape (n_tests, n_models)
    model_cohort_scores : array-like of shape (n_cohort_utts, n_models)
    test_cohort_scores : array-like of shape (n_tests, n_cohort_models)
    top_k : int

    Returns
    -------
    ndarray of shape (n_tests, n_models)

    Examples
    --------
    >>> import numpy as np
    >>> scores = [[3.0, 2.0]]
    >>> model_cohort, test_cohort = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], [[0.0, 2.0, 4.0]]
    >>> asnorm(scores, model_cohort, test_cohort, top_k=2).tolist()  # top 2: model means 3, 4; test mean 3
    [[0.0, -1.5]]
    >>> whole_cohort = asnorm(scores, model_cohort, test_cohort, top_k=3)
    >>> bool(np.allclose(whole_cohort, snorm(scores, model_cohort, test_cohort)))
    True
    """
    scores = _matrix("scores", scores)
    model_cohort = _matrix("model_cohort_scores", model_cohort_scores, n_cols=scores.shape[1])
    test_cohort = _matrix("test_cohort_scores", test_cohort_scores, n_rows=scores.shape[0])
    model_side = _stats(model_cohort, axis=0, top_k=top_k)
    return _s_norm(scores, *model_side, *_stats(test_cohort, axis=1, top_k=top_k))


def _s_norm(
    scores: np.ndarray,
    model_mean: np.ndarray,
    model_std: np.ndarray,
    test_mean: np.ndarray,
    test_std: np.ndarray,
) -> np.ndarray:
    """The average of the Z-normalised (per model, columns) and T-normalised (per test, rows) scores."""
    z_part = (scores - model_mean[None, :]) / model_std[None, :]
    t_part = (scores - test_mean[:, None]) / test_std[:, None]
    return 0.5 * (z_part + t_part)


def normalize(
    method: str,
    scores: ArrayLike,
    *,
    model_cohort_scores: ArrayLike | None = None,
    test_cohort_scores: ArrayLike | None = None,
    cohort_cohort_scores: ArrayLike | None = None,
    top_k: int = 50,
) -> np.ndarray:
    """Apply the normalisation named ``method`` (one of :data:`METHODS`), checking its cohort is given.

    Returns
    -------
    ndarray of shape (n_tests, n_models)
    """
    needs = {
        "none": (),
        "znorm": ("model_cohort_scores",),
        "tnorm": ("test_cohort_scores",),
        "ztnorm": ("model_cohort_scores", "test_cohort_scores", "cohort_cohort_scores"),
        "snorm": ("model_cohort_scores", "test_cohort_scores"),
        "asnorm": ("model_cohort_scores", "test_cohort_scores"),
    }
    if method not in needs:
        raise DataError(f"normalization={method!r}: expected one of {', '.join(METHODS)}")
    given = {
        "model_cohort_scores": model_cohort_scores,
        "test_cohort_scores": test_cohort_scores,
        "cohort_cohort_scores": cohort_cohort_scores,
    }
    missing = [name for name in needs[method] if given[name] is None]
    if missing:
        raise DataError(f"normalization={method!r} needs {', '.join(missing)} (no cohort given)")
    if method == "none":
        return _matrix("scores", scores)
    if method == "znorm":
        return znorm(scores, model_cohort_scores)
    if method == "tnorm":
        return tnorm(scores, test_cohort_scores)
    if method == "ztnorm":
        return ztnorm(scores, model_cohort_scores, test_cohort_scores, cohort_cohort_scores)
    if method == "snorm":
        return snorm(scores, model_cohort_scores, test_cohort_scores)
    return asnorm(scores, model_cohort_scores, test_cohort_scores, top_k=top_k)
