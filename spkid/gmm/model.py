"""The scikit-learn estimator of a diagonal-covariance Gaussian mixture, trained by the one EM loop.

:class:`DiagonalGMM` is a ``BaseEstimator`` / ``DensityMixin``: ``clone``, ``GridSearchCV`` (which picks
``n_components`` by held-out :meth:`~DiagonalGMM.score`) and ``check_estimator`` work on it. It holds
settings; :meth:`~DiagonalGMM.fit` starts from :func:`spkid.gmm.start.initial_parameters` and runs
:func:`spkid.gmm.em.run_em`, and the fitted result is a :class:`~spkid.gmm.MixtureParameters`
(:meth:`~DiagonalGMM.parameters`), which is all that scoring needs. This module and its input checks
(:mod:`spkid.gmm._checks`) are the only ones of :mod:`spkid.gmm` that import scikit-learn; the package face
loads them on first use of ``DiagonalGMM``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from spkid.errors import ModelError
from spkid.gmm._checks import NOT_FITTED, as_frames, check_settings
from spkid.gmm._estep import Frames
from spkid.gmm.em import (
    DEFAULT_MIN_WEIGHT,
    DEFAULT_TOL,
    FrameStatistics,
    asked_for_convergence,
    m_step,
    run_em,
    verbose_logging,
)
from spkid.gmm.parameters import MixtureParameters
from spkid.gmm.start import initial_parameters
from spkid.gmm.stats import SufficientStats

__all__ = ["DiagonalGMM"]


class DiagonalGMM(DensityMixin, BaseEstimator):
    """Gaussian mixture with diagonal covariances, trained by EM (a scikit-learn estimator).

    Parameters
    ----------
    n_components : int
        Number of Gaussians K.
    max_iter : int
        Maximum number of EM iterations.
    tol : float or None
        EM stops when the mean log-likelihood per frame changes by less than this between iterations. None
        (default) uses 1e-4 and stays silent when ``max_iter`` comes first; a number of your own also warns
        with :class:`spkid.errors.ConvergenceWarning` then (0 runs exactly ``max_iter`` iterations, silently).
    init : {"kmeans++", "split"}
        k-means++ seeding plus Lloyd steps, or binary splitting 1 -> 2 -> 4 ... (see :mod:`spkid.gmm.init`),
        both on a random subsample of the frames. Ignored when ``means_init`` is given.
    variance_floor : float
        Variances are kept >= ``variance_floor`` times the global variance of each dimension.
    min_weight : float
        Components whose weight falls below this are re-seeded by splitting the heaviest component.
    random_state : int, numpy.random.RandomState or None
        Seed of the initialisation (the only random step).
    dtype : numpy.float32 or numpy.float64
        Precision of the E-step products; parameters and statistics are always float64.
    chunk_size : int or None
        Frames per E-step chunk; None picks about 2^20 / n_components.
    n_jobs : int
        Chunk streams run at once (joblib threads, one BLAS thread each; -1 = every CPU of
        :func:`spkid.blas.cpu_budget`); results equal those of ``n_jobs=1`` to rounding. With 1, chunks run
        one after another on one thread: use -1 for speed (EM and scoring alike).
    weights_init, means_init, variances_init : ndarray or None
        User-supplied initial parameters, shapes (K,), (K, D), (K, D); when ``means_init`` is given no
        initialisation is computed (weights default to uniform, variances to those of a frame subsample).
    verbose : bool
        Show the INFO log records of the fit (one per EM iteration, see :mod:`spkid.gmm.em`), on stderr
        when logging is not configured.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    variances_ : ndarray of shape (n_components, n_features)
        Fitted parameters, float64, read-only (assign a new array to change them).
    converged_ : bool
    n_iter_ : int
        EM iterations run (M-steps applied).
    lower_bound_ : float
        Mean log-likelihood per frame at the last E-step, i.e. of the parameters *before* the last M-step
        (as scikit-learn's ``GaussianMixture.lower_bound_``).
    history_ : list of float
        ``lower_bound_`` of every iteration.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3.0, 1.0, (200, 2)), rng.normal(3.0, 1.0, (200, 2))])  # two clusters
    >>> gmm = DiagonalGMM(n_components=2, max_iter=10, random_state=0).fit(X)
    >>> gmm.means_.shape, gmm.converged_, np.sort(gmm.means_[:, 0]).round().tolist()
    ((2, 2), True, [-3.0, 3.0])
    >>> gmm.predict_proba(X[:3]).shape, DiagonalGMM.from_dict(gmm.to_dict()).n_components
    ((3, 2), 2)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        max_iter: int = 20,
        tol: float | None = None,
        init: str = "kmeans++",
        variance_floor: float = 1e-3,
        min_weight: float = DEFAULT_MIN_WEIGHT,
        random_state=None,
        dtype: type = np.float32,
        chunk_size: int | None = None,
        n_jobs: int = 1,
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        variances_init: np.ndarray | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.variance_floor = variance_floor
        self.min_weight = min_weight
        self.random_state = random_state
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.weights_init = weights_init
        self.means_init = means_init
        self.variances_init = variances_init
        self.verbose = verbose

    # ------------------------------------------------------------------------ fitted parameters
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_parameters")

    def parameters(self) -> MixtureParameters:
        """The fitted parameters (with this estimator's ``dtype`` and ``variance_floor``): what scoring,
        MAP adaptation and the model store need, without scikit-learn."""
        check_is_fitted(self, msg=NOT_FITTED)
        return self._parameters.with_settings(dtype=self.dtype, variance_floor=self.variance_floor)

    def _set_parameters(self, parameters: MixtureParameters) -> None:
        self._parameters = parameters
        self.n_features_in_ = parameters.n_features_in_

    @classmethod
    def from_params(
        cls,
        weights: np.ndarray | MixtureParameters,
        means: np.ndarray | None = None,
        variances: np.ndarray | None = None,
        **params,
    ) -> DiagonalGMM:
        """A fitted estimator from :class:`MixtureParameters`, or from arrays of shapes (K,), (K, D), (K, D).

        ``params`` are constructor keywords (e.g. ``dtype``, ``n_jobs``); ``dtype`` and ``variance_floor``
        default to those of the given parameters.
        """
        if isinstance(weights, MixtureParameters):
            if means is not None or variances is not None:
                raise ModelError("from_params: give MixtureParameters alone, or weights, means and variances")
            fitted = weights
            params = {"dtype": fitted.dtype, "variance_floor": fitted.variance_floor, **params}
        else:
            fitted = MixtureParameters(
                weights,
                means,
                variances,
                dtype=params.get("dtype", np.float32),
                variance_floor=params.get("variance_floor", 1e-3),
            )
        model = cls(n_components=fitted.n_components, **params)
        model._set_parameters(fitted)
        return model

    @classmethod
    def from_dict(cls, data: dict) -> DiagonalGMM:
        """Rebuild from :meth:`to_dict` output (:meth:`MixtureParameters.from_dict`)."""
        return cls.from_params(MixtureParameters.from_dict(data))

    def to_dict(self) -> dict[str, np.ndarray | str | int | float | bool]:
        """Parameters and fit summary as plain arrays and scalars (for ``np.savez``, no pickle)."""
        return self.parameters().to_dict()

    def _replaced(self, **arrays: np.ndarray) -> None:
        current = self.parameters()
        values = {
            "weights": current.weights,
            "means": current.means,
            "variances": current.variances,
            **arrays,
        }
        self._set_parameters(
            MixtureParameters(**values, dtype=current.dtype, variance_floor=current.variance_floor)
        )

    weights_ = property(
        lambda self: self.parameters().weights, lambda self, value: self._replaced(weights=value)
    )
    means_ = property(lambda self: self.parameters().means, lambda self, value: self._replaced(means=value))
    variances_ = property(
        lambda self: self.parameters().variances, lambda self, value: self._replaced(variances=value)
    )
    converged_ = property(lambda self: self.parameters().converged)
    n_iter_ = property(lambda self: self.parameters().n_iter)
    lower_bound_ = property(lambda self: self.parameters().lower_bound)
    history_ = property(lambda self: self.parameters().history_)

    # -------------------------------------------------------------------------------- training
    def fit(self, X: np.ndarray | Iterable[np.ndarray], y: None = None) -> DiagonalGMM:
        """Initialise, then run EM until the mean log-likelihood changes by less than ``tol``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features), or an iterable of such arrays
            Training frames. A sequence (e.g. utterances, ``np.load(..., mmap_mode="r")`` arrays) is used in
            place, never concatenated. A one-shot iterator (generator) is turned into a list of references to
            the arrays it yields; any other iterable is re-iterated on every EM pass.
        y : ignored

        Returns
        -------
        self : DiagonalGMM
        """
        self._check_params()
        frames = self._frames(X, reset=True)
        tol = DEFAULT_TOL if self.tol is None else self.tol
        with verbose_logging(self.verbose):
            start = initial_parameters(
                frames,
                self.n_components,
                init=self.init,
                variance_floor=self.variance_floor,
                min_weight=self.min_weight,
                random_state=self.random_state,
                dtype=self.dtype,
                chunk_size=self.chunk_size,
                n_jobs=self.n_jobs,
                weights_init=self.weights_init,
                means_init=self.means_init,
                variances_init=self.variances_init,
            )
            source = FrameStatistics(frames, self.chunk_size, self.n_jobs)
            fitted = run_em(
                start,
                source,
                max_iter=self.max_iter,
                tol=tol,
                variance_floor=self.variance_floor,
                min_weight=self.min_weight,
                warn=asked_for_convergence(self.tol),
                name="DiagonalGMM",
            )
        self._set_parameters(fitted)
        return self

    def accumulate(self, X: np.ndarray | Iterable[np.ndarray]) -> SufficientStats:
        """E-step: sufficient statistics of ``X`` under the current parameters (chunked, float64 sums).

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_features), or an iterable of such arrays

        Returns
        -------
        SufficientStats
            Add the statistics of several shards (processes, workers) and pass the sum to :meth:`apply_stats`.
        """
        return self.parameters().accumulate(X, chunk_size=self.chunk_size, n_jobs=self.n_jobs)

    def apply_stats(self, stats: SufficientStats) -> DiagonalGMM:
        """M-step from (summed) statistics: new weights, means and floored variances; re-seed dead components.

        The variance floor is ``variance_floor`` times the variance, per dimension, of all the frames in
        ``stats``. A component whose weight is below ``min_weight`` (or zero) is replaced by half of the
        heaviest one (:func:`spkid.gmm.stats.split_component`).
        """
        n_components = stats.zeroth.shape[0]
        if n_components != self.n_components:
            raise ModelError(f"statistics have {n_components} components, the model {self.n_components}")
        self._set_parameters(
            m_step(stats, dtype=self.dtype, variance_floor=self.variance_floor, min_weight=self.min_weight)
        )
        return self

    def _check_params(self) -> None:
        check_settings(self)

    # ---------------------------------------------------------------------------------- scoring
    def _frames(self, X: np.ndarray | Iterable[np.ndarray], *, reset: bool = False) -> Frames:
        return as_frames(self, X, reset=reset)

    def _estep_settings(self) -> dict:
        return {"chunk_size": self.chunk_size, "n_jobs": self.n_jobs}

    def weighted_log_prob(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """``log w_k + log N(x_t | mu_k, var_k)``, ndarray of shape (n_frames, n_components) in ``dtype``."""
        return self.parameters().weighted_log_prob(self._frames(X), **self._estep_settings())

    def score_samples(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Log-likelihood ``log p(x_t)`` of each frame, ndarray of shape (n_frames,), float64."""
        return self.parameters().score_samples(self._frames(X), **self._estep_settings())

    def score(self, X: np.ndarray | Iterable[np.ndarray], y: None = None) -> float:
        """Mean log-likelihood per frame of ``X`` (an array or an iterable of arrays); ``y`` is ignored."""
        scores = self.score_samples(X)
        return float(np.mean(scores)) if scores.size else float("nan")

    def predict_proba(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Responsibilities, ndarray of shape (n_frames, n_components) in ``dtype``; rows sum to 1."""
        return self.parameters().predict_proba(self._frames(X), **self._estep_settings())

    def predict(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Most likely component of each frame, ndarray of shape (n_frames,), int64."""
        return self.parameters().predict(self._frames(X), **self._estep_settings())

    def _n_parameters(self) -> int:
        n_components, n_features = self.means_.shape
        return 2 * n_components * n_features + n_components - 1

    def bic(self, X: np.ndarray | Iterable[np.ndarray]) -> float:
        """Bayesian information criterion on ``X`` (lower is better), as scikit-learn defines it."""
        scores = self.score_samples(X)
        return float(-2 * scores.sum() + self._n_parameters() * np.log(scores.shape[0]))

    def aic(self, X: np.ndarray | Iterable[np.ndarray]) -> float:
        """Akaike information criterion on ``X`` (lower is better), as scikit-learn defines it."""
        return float(-2 * self.score_samples(X).sum() + 2 * self._n_parameters())
