"""Diagonal-covariance Gaussian mixture trained by EM through mergeable sufficient statistics.

The estimator (constructor parameters, EM loop, M-step, scoring) lives here; its fitted parameters and
their (de)serialisation are :class:`~spkid.gmm.parameters.MixtureParameters`, the chunked float32 E-step it
runs is :mod:`spkid.gmm._estep`, the statistics it exchanges :mod:`spkid.gmm.stats`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from spkid.errors import ModelError
from spkid.gmm import init as gmm_init
from spkid.gmm._estep import CLAMP, EStep, Frames, chunk_rows, estep_matrices
from spkid.gmm.parameters import MixtureParameters
from spkid.gmm.stats import SufficientStats, floor_variances, maximise

__all__ = ["MIN_FRAMES_PER_COMPONENT", "DiagonalGMM"]

MIN_FRAMES_PER_COMPONENT = 10
_CONSTRUCTOR_PARAMETERS = (
    "n_components", "max_iter", "tol", "init", "variance_floor", "min_weight", "random_state", "dtype",
    "chunk_size", "n_jobs", "weights_init", "means_init", "variances_init", "verbose",
)


def _random_state(seed: int | np.random.RandomState | None) -> np.random.RandomState:
    """A RandomState from None (numpy's global one), an int seed or a RandomState (scikit-learn's rule)."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    raise ModelError(f"random_state: expected None, an int or a numpy RandomState, got {seed!r}")


class DiagonalGMM(MixtureParameters):
    """Gaussian mixture with diagonal covariances, trained by EM (scikit-learn conventions).

    Parameters
    ----------
    n_components : int
        Number of Gaussians K.
    max_iter : int
        Maximum number of EM iterations.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per frame between iterations.
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
        Chunk streams run at once (joblib threads, one BLAS thread each; -1 = all cores); results equal
        those of ``n_jobs=1`` to rounding. With 1, chunks run one after another and only the BLAS products
        are multi-threaded: use -1 for speed (EM and scoring alike).
    weights_init, means_init, variances_init : ndarray or None
        User-supplied initial parameters, shapes (K,), (K, D), (K, D); when ``means_init`` is given no
        initialisation is computed (weights default to uniform, variances to those of a frame subsample).
    verbose : bool
        Print one line per EM iteration.

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
    """

    def __init__(self, n_components: int, *, max_iter: int = 20, tol: float = 1e-4, init: str = "kmeans++",
                 variance_floor: float = 1e-3, min_weight: float = 1e-5, random_state=None,
                 dtype: type = np.float32, chunk_size: int | None = None, n_jobs: int = 1,
                 weights_init: np.ndarray | None = None, means_init: np.ndarray | None = None,
                 variances_init: np.ndarray | None = None, verbose: bool = False) -> None:
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

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters (scikit-learn protocol, so ``sklearn.base.clone`` works)."""
        return {name: getattr(self, name) for name in _CONSTRUCTOR_PARAMETERS}

    def set_params(self, **params) -> DiagonalGMM:
        """Set constructor parameters (scikit-learn protocol)."""
        for name, value in params.items():
            if name not in _CONSTRUCTOR_PARAMETERS:
                raise ModelError(f"DiagonalGMM has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        fitted = f", fitted on {self.means_.shape[1]} features" if hasattr(self, "_weights") else ""
        return f"DiagonalGMM(n_components={self.n_components}, dtype={np.dtype(self.dtype).name}{fitted})"

    # -------------------------------------------------------------------------------------- training

    def fit(self, X: np.ndarray | Iterable[np.ndarray]) -> DiagonalGMM:
        """Initialise, then run EM until the mean log-likelihood changes by less than ``tol``.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_features), or an iterable of such arrays
            Training frames. A sequence (e.g. utterances, ``np.load(..., mmap_mode="r")`` arrays) is used in
            place, never concatenated. A one-shot iterator (generator) is turned into a list of references to
            the arrays it yields; any other iterable is re-iterated on every EM pass.

        Returns
        -------
        self : DiagonalGMM
        """
        self._check_params()
        frames = Frames(X, n_features=None)
        needed = MIN_FRAMES_PER_COMPONENT * self.n_components
        if frames.n_frames < needed:
            raise ModelError(f"{frames.n_frames} frames is too few for {self.n_components} components: "
                             f"need at least {needed} ({MIN_FRAMES_PER_COMPONENT} per component)")
        started = time.perf_counter()
        self._initialise(frames, _random_state(self.random_state))
        if self.verbose:
            print(f"[DiagonalGMM] initialised {self.n_components} components ({self.init}) "
                  f"in {time.perf_counter() - started:.2f} s")
        self.converged_, self.history_, lower_bound = False, [], float("nan")
        self.n_iter_ = 0
        for iteration in range(1, self.max_iter + 1):
            started = time.perf_counter()
            stats = self._engine().accumulate(frames)
            previous, lower_bound = lower_bound, stats.log_likelihood / stats.n_frames
            self.apply_stats(stats)
            self.history_.append(lower_bound)
            self.n_iter_ = iteration
            if self.verbose:
                print(f"[DiagonalGMM] iteration {iteration}: mean log-likelihood {lower_bound:.6f} "
                      f"(change {lower_bound - previous:+.3e}) in {time.perf_counter() - started:.2f} s")
            if abs(lower_bound - previous) < self.tol:
                self.converged_ = True
                break
        self.lower_bound_ = lower_bound
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
        frames = self._frames(X)
        return self._engine().accumulate(frames)

    def apply_stats(self, stats: SufficientStats) -> DiagonalGMM:
        """M-step from (summed) statistics: new weights, means and floored variances; re-seed dead components.

        The variance floor is ``variance_floor`` times the variance, per dimension, of all the frames in
        ``stats``. A component whose weight is below ``min_weight`` (or zero) is replaced by half of the
        heaviest one (:func:`spkid.gmm.stats.split_component`).
        """
        n_components = stats.zeroth.shape[0]
        if n_components != self.n_components:
            raise ModelError(f"statistics have {n_components} components, the model {self.n_components}")
        weights, means, variances, n_reseeded = maximise(stats, self.variance_floor, self.min_weight)
        if n_reseeded and self.verbose:
            print(f"[DiagonalGMM] re-seeded {n_reseeded} component(s) below {self.min_weight}")
        self._set_parameters(weights, means, variances)
        return self

    def _check_params(self) -> None:
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ModelError(f"n_components: expected an integer >= 1, got {self.n_components!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 0:
            raise ModelError(f"max_iter: expected an integer >= 0, got {self.max_iter!r}")
        if self.init not in ("kmeans++", "split"):
            raise ModelError(f"init: expected 'kmeans++' or 'split', got {self.init!r}")
        for name in ("tol", "variance_floor"):
            if not getattr(self, name) >= 0:
                raise ModelError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_weight < 1.0 / self.n_components:
            raise ModelError(f"min_weight: expected 0 <= value < 1/n_components, got {self.min_weight!r}")
        if self.chunk_size is not None and (not isinstance(self.chunk_size, (int, np.integer))
                                            or self.chunk_size < 1):
            raise ModelError(f"chunk_size: expected None or an integer >= 1, got {self.chunk_size!r}")
        self._dtype()

    def _dtype(self) -> np.dtype:
        dtype = np.dtype(self.dtype)
        if dtype not in CLAMP:
            raise ModelError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype}")
        return dtype

    def _initialise(self, frames: Frames, random_state: np.random.RandomState) -> None:
        """Set the starting parameters from ``*_init`` or the ``init`` strategy on a frame subsample."""
        n_components, n_features = self.n_components, frames.n_features
        shapes = {"weights_init": (n_components,), "means_init": (n_components, n_features),
                  "variances_init": (n_components, n_features)}
        given = {}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None:
                given[name] = np.asarray(value, dtype=np.float64)
                if given[name].shape != shape:
                    raise ModelError(f"{name}: expected shape {shape}, got {given[name].shape}")
        weights = np.full(n_components, 1.0 / n_components)
        means, variances = given.get("means_init"), given.get("variances_init")
        if means is None or variances is None:
            sample = frames.sample(gmm_init.n_init_frames(frames.n_frames, n_components), random_state,
                                   self._dtype())
            if not np.all(np.isfinite(sample)):
                raise ModelError("frames: contain NaN or infinite values")
            if means is not None:
                global_variance = np.var(sample, axis=0, dtype=np.float64)
                floor = floor_variances(global_variance, self.variance_floor)
                variances = np.tile(np.maximum(global_variance, floor), (n_components, 1))
            elif self.init == "kmeans++":
                weights, means, variances = gmm_init.kmeans_init(
                    sample, n_components, random_state=random_state, variance_floor=self.variance_floor)
            else:
                weights, means, variances = gmm_init.binary_split_init(
                    sample, n_components, self._em_step, variance_floor=self.variance_floor)
        variances = given.get("variances_init", variances)
        self._set_parameters(given.get("weights_init", weights), means, variances)

    def _em_step(self, frames: np.ndarray, weights: np.ndarray, means: np.ndarray,
                 variances: np.ndarray) -> gmm_init.Params:
        """One EM iteration of a smaller mixture with this model's settings (for binary splitting)."""
        model = DiagonalGMM.from_params(weights, means, variances, variance_floor=self.variance_floor,
                                        min_weight=min(self.min_weight, 0.5 / weights.shape[0]),
                                        dtype=self.dtype, chunk_size=self.chunk_size, n_jobs=self.n_jobs)
        model.apply_stats(model.accumulate(frames))
        return model._weights.copy(), model._means.copy(), model._variances.copy()

    # ------------------------------------------------------------------------------------ the E-step

    def _engine(self) -> EStep:
        """The E-step of the current parameters with the current ``chunk_size`` and ``n_jobs``.

        Its matrices (:func:`spkid.gmm._estep.estep_matrices`) are cached until the parameters change.
        """
        if getattr(self, "_estep_cache", None) is None:
            dtype = self._dtype()
            self._estep_cache = estep_matrices(self.weights_, self.means_, self.variances_, dtype)
        design_weights, centre = self._estep_cache
        return EStep(design_weights, centre, n_components=self.n_components, chunk_size=self.chunk_size,
                     n_jobs=self.n_jobs)

    def _chunk_rows(self, n_frames: int) -> int:
        return chunk_rows(n_frames, self.n_components, self.chunk_size)

    # --------------------------------------------------------------------------------------- scoring

    def _frames(self, X: np.ndarray | Iterable[np.ndarray]) -> Frames:
        return Frames(X, n_features=self.means_.shape[1])

    def weighted_log_prob(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """``log w_k + log N(x_t | mu_k, var_k)`` for every frame and component.

        The per-model product matrix is computed once and cached until the parameters change.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_features), or an iterable of such arrays (rows concatenated)

        Returns
        -------
        ndarray of shape (n_frames, n_components), in the model dtype (float32 by default)
        """
        frames = self._frames(X)
        dtype = self._dtype()
        return self._engine().weighted_log_prob(frames, dtype)

    def score_samples(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Log-likelihood ``log p(x_t)`` of each frame, ndarray of shape (n_frames,), float64."""
        frames = self._frames(X)
        dtype = self._dtype()
        return self._engine().score_samples(frames, dtype)

    def score(self, X: np.ndarray | Iterable[np.ndarray]) -> float:
        """Mean log-likelihood per frame of ``X`` (an array or an iterable of arrays)."""
        scores = self.score_samples(X)
        return float(np.mean(scores)) if scores.size else float("nan")

    def predict_proba(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Responsibilities, ndarray of shape (n_frames, n_components) in the model dtype; rows sum to 1."""
        frames = self._frames(X)
        dtype = self._dtype()
        return self._engine().posteriors(frames, dtype)

    def predict(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Most likely component of each frame, ndarray of shape (n_frames,), int64."""
        frames = self._frames(X)
        return self._engine().labels(frames)

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
