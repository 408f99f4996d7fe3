"""The one EM loop of spkid: E-step statistics from a pluggable source, M-step, convergence test, logging.

As scikit-learn's ``BaseMixture.fit`` runs one loop over ``_e_step`` / ``_m_step``, :func:`run_em` is the
loop of both :meth:`spkid.gmm.DiagonalGMM.fit` and UBM training (:func:`spkid.ubm.train_ubm`). What differs
is only where the E-step runs, a :class:`StatisticsSource`: :class:`FrameStatistics` here (this process,
chunk threads), or the UBM's sharded source (:class:`spkid.ubm.backends.ShardStatistics`: in-process, joblib
or Dask workers). Every iteration logs one INFO line on this module's logger; the end logs whether EM
converged, and warns with :class:`spkid.errors.ConvergenceWarning` only when the caller asked for a ``tol``.
Each iteration's record also carries its figures as ``record.spkid_iteration`` (iteration, max_iter,
log_likelihood, gain, seconds_left, n_frames) for :class:`spkid.progress.IterationDisplay`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from spkid.errors import ConvergenceWarning
from spkid.gmm._estep import Frames
from spkid.gmm.parameters import MixtureParameters
from spkid.gmm.stats import SufficientStats, maximise

__all__ = [
    "DEFAULT_MIN_WEIGHT",
    "DEFAULT_TOL",
    "FrameStatistics",
    "StatisticsSource",
    "asked_for_convergence",
    "m_step",
    "run_em",
    "verbose_logging",
]

logger = logging.getLogger(__name__)

#: The convergence threshold when the caller gives none (no warning when it is not reached).
DEFAULT_TOL = 1e-4
#: Components lighter than this are re-seeded by the M-step (see :func:`spkid.gmm.maximise`).
DEFAULT_MIN_WEIGHT = 1e-5


class StatisticsSource(Protocol):
    """Where the E-step runs: the summed statistics of all the frames under the given parameters.

    Examples
    --------
    Any object with this ``statistics`` method will do, e.g. one that sums the statistics of two halves:

    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters, run_em
    >>> class Halves:
    ...     def __init__(self, X):
    ...         self.halves = np.array_split(X, 2)
    ...
    ...     def statistics(self, parameters, iteration):
    ...         return sum(parameters.accumulate(half) for half in self.halves)
    >>> start = MixtureParameters([0.5, 0.5], [[-1.0], [1.0]], [[1.0], [1.0]])
    >>> X = np.random.default_rng(0).normal(size=(200, 1))
    >>> run_em(start, Halves(X), max_iter=3, tol=0.0, variance_floor=1e-3).n_iter
    3
    """

    def statistics(self, parameters: MixtureParameters, iteration: int) -> SufficientStats:
        """Summed :class:`~spkid.gmm.SufficientStats` (with the log-likelihood and frame count) of this
        iteration's frames; ``iteration`` counts from 0 (a source that subsamples seeds its draw with it)."""
        ...


@dataclass(frozen=True)
class FrameStatistics:
    """The E-step in this process: the frames in chunks, ``n_jobs`` chunk streams (threads) at once.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> from spkid.gmm._estep import Frames
    >>> utterances = [np.random.default_rng(seed).normal(size=(100, 1)) for seed in range(3)]
    >>> source = FrameStatistics(Frames(utterances, n_features=None), chunk_size=64)
    >>> start = MixtureParameters([0.5, 0.5], [[-1.0], [1.0]], [[1.0], [1.0]])
    >>> stats = source.statistics(start, iteration=0)
    >>> stats.n_frames, stats.first.shape
    (300, (2, 1))
    """

    frames: Frames
    chunk_size: int | None = None
    n_jobs: int = 1

    def statistics(self, parameters: MixtureParameters, iteration: int) -> SufficientStats:
        return parameters.estep(chunk_size=self.chunk_size, n_jobs=self.n_jobs).accumulate(self.frames)


def m_step(
    stats: SufficientStats, *, dtype: object, variance_floor: float, min_weight: float
) -> MixtureParameters:
    """New parameters from (summed) statistics (:func:`spkid.gmm.maximise`); logs re-seeded components."""
    weights, means, variances, n_reseeded = maximise(stats, variance_floor, min_weight)
    if n_reseeded:
        logger.info("re-seeded %d component(s) lighter than min_weight=%g", n_reseeded, min_weight)
    return MixtureParameters(weights, means, variances, dtype=dtype, variance_floor=variance_floor)


def run_em(
    parameters: MixtureParameters,
    source: StatisticsSource,
    *,
    max_iter: int,
    tol: float,
    variance_floor: float,
    min_weight: float = DEFAULT_MIN_WEIGHT,
    warn: bool = False,
    name: str = "EM",
) -> MixtureParameters:
    """Run EM from ``parameters`` until the per-frame log-likelihood gains less than ``tol``.

    Parameters
    ----------
    parameters : MixtureParameters
        The starting point (its ``dtype`` is kept).
    source : StatisticsSource
        Computes the E-step statistics of every iteration.
    max_iter : int
        Most M-steps to apply (0: return ``parameters`` with an empty history).
    tol : float
        Stop when ``|L_i - L_{i-1}| < tol``, ``L_i`` the mean log-likelihood per frame at E-step i (the
        first iteration never stops); 0 runs exactly ``max_iter`` iterations.
    variance_floor, min_weight : float
        M-step settings (:func:`spkid.gmm.maximise`).
    warn : bool
        Warn with :class:`~spkid.errors.ConvergenceWarning` when ``tol`` was not reached within
        ``max_iter``; callers set it only when the user gave a ``tol`` of their own.
    name : str
        What is being trained, at the start of every log line ("DiagonalGMM", "UBM").

    Returns
    -------
    MixtureParameters
        After the last M-step, with ``n_iter``, ``converged``, ``lower_bound`` (the log-likelihood of the
        parameters *before* the last M-step, as scikit-learn's ``lower_bound_``) and ``history``.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import FrameStatistics, MixtureParameters
    >>> from spkid.gmm._estep import Frames
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3.0, 1.0, (200, 1)), rng.normal(3.0, 1.0, (200, 1))])
    >>> start = MixtureParameters([0.5, 0.5], [[-1.0], [1.0]], [[4.0], [4.0]])
    >>> source = FrameStatistics(Frames(X, n_features=1))
    >>> fitted = run_em(start, source, max_iter=5, tol=0.0, variance_floor=1e-3)
    >>> fitted.n_iter, bool(np.all(np.diff(fitted.history) > 0)), fitted.means.ravel().round().tolist()
    (5, True, [-3.0, 3.0])
    """
    history: list[float] = []
    converged, lower_bound, gain = False, math.nan, math.nan
    loop_started = time.perf_counter()
    for iteration in range(max_iter):
        started = time.perf_counter()
        stats = source.statistics(parameters, iteration)
        previous, lower_bound = lower_bound, stats.log_likelihood / stats.n_frames
        gain = lower_bound - previous
        parameters = m_step(
            stats, dtype=parameters.dtype, variance_floor=variance_floor, min_weight=min_weight
        )
        history.append(lower_bound)
        now = time.perf_counter()
        # At most this long: convergence may stop the loop before max_iter.
        left_s = (now - loop_started) / (iteration + 1) * (max_iter - iteration - 1)
        logger.info(
            "%s EM iteration %d/%d: log-likelihood per frame %.6f, gain %s, %d frames, %.2f s, ~%.0f s left",
            name,
            iteration + 1,
            max_iter,
            lower_bound,
            "n/a" if iteration == 0 else f"{gain:+.3e}",
            stats.n_frames,
            now - started,
            left_s,
            extra={
                "spkid_iteration": {
                    "iteration": iteration + 1,
                    "max_iter": max_iter,
                    "log_likelihood": lower_bound,
                    "gain": None if iteration == 0 else gain,
                    "seconds_left": left_s,
                    "n_frames": stats.n_frames,
                }
            },
        )
        if abs(gain) < tol:
            converged = True
            break
    if max_iter > 0:
        if converged:
            logger.info(
                "%s EM converged after %d iterations (gain %.3e < tol %g)", name, len(history), abs(gain), tol
            )
        else:
            logger.info(
                "%s EM did not converge within max_iter=%d iterations (last gain %s, tol %g)",
                name,
                max_iter,
                "n/a" if math.isnan(gain) else f"{gain:+.3e}",
                tol,
            )
            if warn:
                warnings.warn(
                    f"{name}: EM did not converge within max_iter={max_iter} iterations (last "
                    f"log-likelihood gain {gain:.3e}, tol {tol:g}); raise max_iter or tol",
                    ConvergenceWarning,
                    stacklevel=3,
                )
    return parameters.with_summary(
        n_iter=len(history), converged=converged, lower_bound=lower_bound, history=history
    )


def asked_for_convergence(tol: float | None, default: float = DEFAULT_TOL) -> bool:
    """Whether a ``tol`` is the caller's own request: given (not None, not ``default``) and not 0."""
    return tol is not None and tol != default and tol > 0


@contextlib.contextmanager
def verbose_logging(enabled: bool) -> Iterator[None]:
    """``verbose=True``: make the INFO records of :mod:`spkid.gmm` visible for the duration of the block.

    The ``spkid.gmm`` logger is lowered to INFO if it is above; when logging is not configured at all (no
    handler anywhere up the hierarchy), the records go to stderr. Nothing is changed when ``enabled`` is
    false, and everything is restored afterwards.
    """
    package_logger = logging.getLogger("spkid.gmm")
    if not enabled:
        yield
        return
    level, handler = package_logger.level, None
    if not package_logger.isEnabledFor(logging.INFO):
        package_logger.setLevel(logging.INFO)
    if not package_logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.setLevel(level)
        if handler is not None:
            package_logger.removeHandler(handler)
