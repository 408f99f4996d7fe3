"""Diagonal-covariance Gaussian mixture trained by EM through mergeable sufficient statistics.

The E-step runs chunk by chunk: one matrix product of the design rows ``[(x-c)^2, x-c, 1]`` with the
per-model matrix ``[-1/(2 var); (mu-c)/var; const]`` gives log w_k + log N(x | k); one fused numba pass
(:mod:`spkid._kernels`) turns it into responsibilities; a second product gives N_k, F_k and S_k at once.
Products run in the model dtype (float32 by default), statistics accumulate in float64.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from spkid import gmm_init
from spkid.errors import ModelError

# numba (spkid._kernels), joblib and scikit-learn are imported where first needed: importing this module
# (e.g. to load a stored model) stays cheap.

MIN_FRAMES_PER_COMPONENT = 10
# Chunks hold about 2^20 log-probabilities (4 MiB in float32): they stay in cache between the passes.
_CHUNK_ELEMENTS = 2**20
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 256, 4096
# log p - max p is clamped here before exp: exp(-80) ~ 1.8e-35 is still a normal float32, and subnormals
# reaching the statistics product make it an order of magnitude slower.
_CLAMP = {np.dtype(np.float32): -80.0, np.dtype(np.float64): -700.0}
_WEIGHT_SUM_TOLERANCE = 1e-4
_CONSTRUCTOR_PARAMETERS = (
    "n_components", "max_iter", "tol", "init", "variance_floor", "min_weight", "random_state", "dtype",
    "chunk_size", "n_jobs", "weights_init", "means_init", "variances_init", "verbose",
)
_DICT_KEYS = {"weights", "means", "variances", "dtype", "n_iter", "converged", "lower_bound", "history"}


@dataclass
class SufficientStats:
    """Zeroth, first and second order statistics of frames under a GMM's responsibilities (float64).

    Attributes
    ----------
    zeroth : ndarray of shape (n_components,)
        N_k = sum_t gamma_tk.
    first : ndarray of shape (n_components, n_features)
        F_k = sum_t gamma_tk x_t.
    second : ndarray of shape (n_components, n_features)
        S_k = sum_t gamma_tk x_t^2.
    log_likelihood : float
        sum_t log p(x_t) under the model that produced the responsibilities.
    n_frames : int
        Number of frames accumulated.

    Statistics of disjoint frame sets add up (``a + b``, ``sum([...])``), whatever process computed them.
    """

    zeroth: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float = 0.0
    n_frames: int = 0

    @classmethod
    def zeros(cls, n_components: int, n_features: int) -> SufficientStats:
        """Empty statistics, the neutral element of ``+``."""
        return cls(np.zeros(n_components), np.zeros((n_components, n_features)),
                   np.zeros((n_components, n_features)))

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if self.first.shape != other.first.shape:
            raise ModelError(f"cannot add statistics of shape {self.first.shape} and {other.first.shape}")
        return SufficientStats(
            self.zeroth + other.zeroth, self.first + other.first, self.second + other.second,
            self.log_likelihood + other.log_likelihood, self.n_frames + other.n_frames,
        )

    def __radd__(self, other: object) -> SufficientStats:
        return self if isinstance(other, int) and other == 0 else NotImplemented  # lets sum() start at 0


class _Frames:
    """Training frames: one array, a sequence of arrays, or a re-iterable of arrays, never concatenated.

    A one-shot iterator is materialised as a list of references to its arrays (memory-mapped arrays stay
    on disk). Any other iterable is re-iterated on every EM pass and must yield the same frames each time.
    """

    def __init__(self, data: np.ndarray | Iterable[np.ndarray], n_features: int | None) -> None:
        self._iterable: Iterable | None = None
        if isinstance(data, np.ndarray):
            self._items: list | None = [data]
        elif isinstance(data, (list, tuple, Iterator)):
            self._items = list(data)
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
            self._items, self._iterable = None, data
        else:
            raise ModelError(f"frames: expected an array or an iterable of arrays, got {type(data).__name__}")
        self.n_features = n_features
        self.n_frames = 0
        for _, array in self.arrays():
            self.n_frames += array.shape[0]
        if self.n_features is None:
            raise ModelError("frames: no arrays given")

    def arrays(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, array)`` for every non-empty 2-D array, checking its shape and dtype."""
        for index, item in enumerate(self._items if self._items is not None else self._iterable):
            array = item if isinstance(item, np.ndarray) else np.asarray(item)
            if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
                raise ModelError(f"frames array {index}: expected real numbers, got dtype {array.dtype}")
            expected = f"(n_frames, {self.n_features if self.n_features is not None else 'n_features'})"
            if array.ndim != 2 or (self.n_features is not None and array.shape[1] != self.n_features):
                raise ModelError(f"frames array {index}: expected shape {expected}, got {array.shape}")
            self.n_features = array.shape[1]
            if array.shape[0]:
                yield index, array

    def sample(self, n_rows: int, random_state: np.random.RandomState, dtype: np.dtype) -> np.ndarray:
        """``n_rows`` distinct frames drawn uniformly (in corpus order), as one ``(n_rows, D)`` array."""
        generator = np.random.default_rng(random_state.randint(2**31 - 1))
        rows = np.sort(generator.choice(self.n_frames, size=n_rows, replace=False, shuffle=False))
        parts, offset = [], 0
        for _, array in self.arrays():
            lo, hi = np.searchsorted(rows, [offset, offset + array.shape[0]])
            if hi > lo:
                parts.append(np.asarray(array[rows[lo:hi] - offset], dtype=dtype))
            offset += array.shape[0]
        return np.concatenate(parts)


class _Workspace:
    """Per-thread chunk buffers, allocated once per pass (first touch of large buffers is not free)."""

    def __init__(self, n_rows: int, n_components: int, n_features: int, dtype: np.dtype) -> None:
        self.design = np.empty((n_rows, 2 * n_features + 1), dtype=dtype)
        self.log_prob = np.empty((n_rows, n_components), dtype=dtype)
        self.row_log_likelihood = np.empty(n_rows, dtype=dtype)
        self.stats = np.empty((n_components, 2 * n_features + 1), dtype=dtype)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    # Inspecting the loaded libraries takes ~0.5 ms; do it once.
    return ThreadpoolController()


Segments = list[tuple[int, np.ndarray]]  # a chunk: (index of the input array, rows of it) pieces


def _random_state(seed: int | np.random.RandomState | None) -> np.random.RandomState:
    """A RandomState from None (numpy's global one), an int seed or a RandomState (scikit-learn's rule)."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    raise ModelError(f"random_state: expected None, an int or a numpy RandomState, got {seed!r}")


class DiagonalGMM:
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
        k-means++ seeding plus Lloyd steps, or binary splitting 1 -> 2 -> 4 ... (see :mod:`spkid.gmm_init`),
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

    # ------------------------------------------------------------------------------------ parameters

    @property
    def weights_(self) -> np.ndarray:
        return self._fitted("_weights")

    @weights_.setter
    def weights_(self, value: np.ndarray) -> None:
        self._set_parameters(value, self.means_, self.variances_)

    @property
    def means_(self) -> np.ndarray:
        return self._fitted("_means")

    @means_.setter
    def means_(self, value: np.ndarray) -> None:
        self._set_parameters(self.weights_, value, self.variances_)

    @property
    def variances_(self) -> np.ndarray:
        return self._fitted("_variances")

    @variances_.setter
    def variances_(self, value: np.ndarray) -> None:
        self._set_parameters(self.weights_, self.means_, value)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_weights")

    def _fitted(self, name: str) -> np.ndarray:
        if not hasattr(self, name):
            raise ModelError("DiagonalGMM is not fitted: call fit(), from_params() or from_dict() first")
        return getattr(self, name)

    def _set_parameters(self, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> None:
        """Validate and store the parameters (float64, read-only); drops the cached E-step matrices."""
        weights, means, variances = (np.array(a, dtype=np.float64) for a in (weights, means, variances))
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ModelError(f"means: expected shape (n_components, n_features), got {means.shape}")
        if weights.shape != means.shape[:1]:
            raise ModelError(f"weights: expected shape ({means.shape[0]},) like means, got {weights.shape}")
        if variances.shape != means.shape:
            raise ModelError(f"variances: expected shape {means.shape} like means, got {variances.shape}")
        for name, array in (("weights", weights), ("means", means), ("variances", variances)):
            if not np.all(np.isfinite(array)):
                raise ModelError(f"{name}: contains NaN or infinite values")
        if np.any(variances <= 0):
            raise ModelError(f"variances: must be > 0, smallest is {variances.min():.3g}")
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > _WEIGHT_SUM_TOLERANCE:
            raise ModelError(f"weights: must be >= 0 and sum to 1, sum is {weights.sum():.6g}")
        weights /= weights.sum()
        for array in (weights, means, variances):
            array.flags.writeable = False
        self._weights, self._means, self._variances = weights, means, variances
        self.n_features_in_ = means.shape[1]
        self._estep_cache = None

    @classmethod
    def from_params(cls, weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
                    **params) -> DiagonalGMM:
        """A fitted model with the given parameters (``params`` are constructor keywords, e.g. ``dtype``).

        Parameters
        ----------
        weights : ndarray of shape (n_components,)
        means : ndarray of shape (n_components, n_features)
        variances : ndarray of shape (n_components, n_features)
        """
        model = cls(n_components=int(np.shape(means)[0]) if np.ndim(means) else 0, **params)
        model._set_parameters(weights, means, variances)
        model.converged_, model.n_iter_, model.lower_bound_, model.history_ = False, 0, float("nan"), []
        return model

    def to_dict(self) -> dict[str, np.ndarray | str | int | float | bool]:
        """Parameters and fit summary as plain arrays and scalars (for ``np.savez``, no pickle)."""
        return {
            "weights": self.weights_.copy(), "means": self.means_.copy(), "variances": self.variances_.copy(),
            "dtype": np.dtype(self.dtype).name, "n_iter": int(self.n_iter_),
            "converged": bool(self.converged_), "lower_bound": float(self.lower_bound_),
            "history": np.asarray(self.history_, dtype=np.float64),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DiagonalGMM:
        """Rebuild a model from :meth:`to_dict` output (values may be 0-d arrays, as from ``np.load``)."""
        unknown = sorted(set(data) - _DICT_KEYS)
        if unknown:
            raise ModelError(f"model dict: unknown key {unknown[0]!r} (expected {sorted(_DICT_KEYS)})")
        missing = sorted({"weights", "means", "variances"} - set(data))
        if missing:
            raise ModelError(f"model dict: missing key {missing[0]!r}")
        dtype_name = str(np.asarray(data.get("dtype", "float32")))
        if dtype_name not in ("float32", "float64"):
            raise ModelError(f"model dict: dtype must be 'float32' or 'float64', got {dtype_name!r}")
        dtype = np.dtype(dtype_name).type
        model = cls.from_params(data["weights"], data["means"], data["variances"], dtype=dtype)
        model.n_iter_ = int(np.asarray(data.get("n_iter", 0)))
        model.converged_ = bool(np.asarray(data.get("converged", False)))
        model.lower_bound_ = float(np.asarray(data.get("lower_bound", np.nan)))
        model.history_ = [float(v) for v in np.asarray(data.get("history", []), dtype=np.float64).ravel()]
        return model

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
        frames = _Frames(X, n_features=None)
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
            stats = self._accumulate_frames(frames)
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
        return self._accumulate_frames(_Frames(X, n_features=self.means_.shape[1]))

    def apply_stats(self, stats: SufficientStats) -> DiagonalGMM:
        """M-step from (summed) statistics: new weights, means and floored variances; re-seed dead components.

        The variance floor is ``variance_floor`` times the variance, per dimension, of all the frames in
        ``stats``. A component whose weight is below ``min_weight`` (or zero) is replaced by half of the
        heaviest one (:func:`spkid.gmm_init.split_component`).
        """
        n_components = stats.zeroth.shape[0]
        if n_components != self.n_components:
            raise ModelError(f"statistics have {n_components} components, the model {self.n_components}")
        total = float(stats.zeroth.sum())
        if not total > 0 or not np.isfinite(total):
            raise ModelError(f"statistics hold no frames (total responsibility {total})")
        global_mean = stats.first.sum(axis=0) / total
        global_variance = np.maximum(stats.second.sum(axis=0) / total - global_mean**2, 0.0)
        floor = gmm_init._floor(global_variance, self.variance_floor)
        weights = stats.zeroth / total
        dead = (weights < self.min_weight) | (stats.zeroth <= 0)
        safe_counts = np.where(dead, 1.0, stats.zeroth)[:, None]
        means = np.where(dead[:, None], 0.0, stats.first / safe_counts)
        variances = np.maximum(np.where(dead[:, None], 1.0, stats.second / safe_counts - means**2), floor)
        weights[dead] = 0.0
        for target in np.flatnonzero(dead):
            gmm_init.split_component(weights, means, variances, int(np.argmax(weights)), int(target))
        if dead.any():
            np.maximum(variances, floor, out=variances)
            if self.verbose:
                print(f"[DiagonalGMM] re-seeded {int(dead.sum())} component(s) below {self.min_weight}")
        self._set_parameters(weights / weights.sum(), means, variances)
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
        if dtype not in _CLAMP:
            raise ModelError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype}")
        return dtype

    def _initialise(self, frames: _Frames, random_state: np.random.RandomState) -> None:
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
                floor = gmm_init._floor(global_variance, self.variance_floor)
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

    def _estep_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(design_weights (2D+1, K), centre (D,))`` in the model dtype, cached until parameters change.

        ``design_rows @ design_weights = log w_k + log N(x | k)`` with design rows ``[(x-c)^2, x-c, 1]``.
        Centring on the mixture mean ``c`` keeps float32 products accurate for un-normalised features.
        """
        if getattr(self, "_estep_cache", None) is None:
            dtype = self._dtype()
            weights, means, variances = self.weights_, self.means_, self.variances_
            centre = (weights @ means).astype(dtype)
            precisions = 1.0 / variances
            offsets = means - centre.astype(np.float64)
            constant = (np.log(np.maximum(weights, 1e-300))
                        - 0.5 * (means.shape[1] * np.log(2 * np.pi) + np.log(variances).sum(axis=1)
                                 + (offsets**2 * precisions).sum(axis=1)))
            design_weights = np.vstack([-0.5 * precisions.T, (offsets * precisions).T, constant[None, :]])
            design_weights = np.ascontiguousarray(design_weights, dtype=dtype)
            if not np.all(np.isfinite(design_weights)):
                raise ModelError(f"variances: too small for {dtype.name} (smallest {variances.min():.3g})")
            self._estep_cache = (design_weights, centre)
        return self._estep_cache

    def _chunk_rows(self, n_frames: int) -> int:
        automatic = min(max(_CHUNK_ELEMENTS // self.n_components, _MIN_CHUNK_ROWS), _MAX_CHUNK_ROWS)
        rows = self.chunk_size or automatic
        return max(1, min(rows, n_frames))

    @staticmethod
    def _chunks(frames: _Frames, n_rows: int) -> Iterator[tuple[int, Segments]]:
        """``(first row, segments)`` of consecutive ``n_rows``-row chunks, spanning array boundaries."""
        segments, filled, first_row = [], 0, 0
        for index, array in frames.arrays():
            start = 0
            while start < array.shape[0]:
                take = min(n_rows - filled, array.shape[0] - start)
                segments.append((index, array[start : start + take]))
                filled, start = filled + take, start + take
                if filled == n_rows:
                    yield first_row, segments
                    segments, filled, first_row = [], 0, first_row + n_rows
        if segments:
            yield first_row, segments

    def _map_chunks(self, frames: _Frames, work: Callable[[int, Segments, _Workspace], object]) -> Iterator:
        """``work(first_row, segments, workspace)`` on every chunk; results in chunk order.

        With ``n_jobs`` > 1 the chunks go to that many joblib threads, each with its own workspace and one
        BLAS thread, so every core runs whole chunks (products and kernels) without waiting for the others.
        ``work`` must not return views of the workspace, which the thread reuses.
        """
        design_weights = self._estep_matrices()[0]
        n_rows = self._chunk_rows(frames.n_frames)
        chunks = self._chunks(frames, n_rows)

        def workspace() -> _Workspace:
            return _Workspace(n_rows, self.n_components, frames.n_features, design_weights.dtype)

        # One chunk or one job: no thread pool (starting one costs more than the work).
        from joblib import Parallel, delayed, effective_n_jobs

        n_jobs = effective_n_jobs(self.n_jobs) if frames.n_frames > n_rows else 1
        if n_jobs == 1:
            buffers = workspace()
            for first_row, segments in chunks:
                yield work(first_row, segments, buffers)
            return
        local = threading.local()

        def task(first_row: int, segments: Segments) -> object:
            if not hasattr(local, "buffers"):
                local.buffers = workspace()
            return work(first_row, segments, local.buffers)

        with _blas_controller().limit(limits=1, user_api="blas"):
            yield from Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
                delayed(task)(first_row, segments) for first_row, segments in chunks)

    def _log_prob(self, segments: Segments, buffers: _Workspace, out: np.ndarray | None = None) -> np.ndarray:
        """Fill the chunk's design rows and return ``log w_k + log N(x | k)`` (into ``out`` if given)."""
        from spkid import _kernels

        design_weights, centre = self._estep_matrices()
        row = 0
        for index, segment in segments:
            block = np.ascontiguousarray(segment, dtype=design_weights.dtype)
            n_bad = _kernels.fill_design(block, centre, buffers.design[row : row + block.shape[0]])
            if n_bad:
                raise ModelError(f"frames array {index}: {n_bad} frame(s) hold NaN or infinite values "
                                 f"(or values too large for {design_weights.dtype.name})")
            row += block.shape[0]
        log_prob = buffers.log_prob[:row] if out is None else out
        return np.matmul(buffers.design[:row], design_weights, out=log_prob)

    def _accumulate_frames(self, frames: _Frames) -> SufficientStats:
        from spkid import _kernels

        design_weights, centre = self._estep_matrices()
        n_features = centre.shape[0]
        clamp = design_weights.dtype.type(_CLAMP[design_weights.dtype])

        def chunk_statistics(first_row: int, segments: Segments, buffers: _Workspace):
            log_prob = self._log_prob(segments, buffers)
            n_rows = log_prob.shape[0]
            design, row_log_likelihood = buffers.design[:n_rows], buffers.row_log_likelihood[:n_rows]
            _kernels.estep(log_prob, design, row_log_likelihood, clamp)
            np.matmul(log_prob.T, design, out=buffers.stats)
            chunk_sum = float(np.sum(row_log_likelihood, dtype=np.float64))
            return buffers.stats.astype(np.float64), chunk_sum, n_rows

        # Chunk results are summed in chunk order, so the sums do not depend on n_jobs or thread timing.
        totals = np.zeros((self.n_components, 2 * n_features + 1))
        log_likelihood, n_frames = 0.0, 0
        for stats, chunk_sum, chunk_rows in self._map_chunks(frames, chunk_statistics):
            totals += stats
            log_likelihood, n_frames = log_likelihood + chunk_sum, n_frames + chunk_rows
        if n_frames != frames.n_frames:
            raise ModelError(f"frames: this pass yielded {n_frames} frames, the first {frames.n_frames}; "
                             "an iterable of arrays must yield the same arrays on every pass")
        if not np.isfinite(log_likelihood):
            raise ModelError(f"log-likelihood is not finite: features too large for "
                             f"{design_weights.dtype.name}; normalise them or use dtype=numpy.float64")
        # Back from centred coordinates: sum g x = sum g (x-c) + N c and
        # sum g x^2 = sum g (x-c)^2 + 2 c sum g (x-c) + N c^2.
        centre = centre.astype(np.float64)
        zeroth = totals[:, 2 * n_features]
        centred_first, centred_second = totals[:, n_features : 2 * n_features], totals[:, :n_features]
        first = centred_first + zeroth[:, None] * centre
        second = centred_second + 2 * centre * centred_first + zeroth[:, None] * centre**2
        return SufficientStats(zeroth.copy(), first, second, log_likelihood, n_frames)

    # --------------------------------------------------------------------------------------- scoring

    def _frames(self, X: np.ndarray | Iterable[np.ndarray]) -> _Frames:
        return _Frames(X, n_features=self.means_.shape[1])

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
        out = np.empty((frames.n_frames, self.n_components), dtype=self._dtype())

        def chunk(first_row: int, segments: Segments, buffers: _Workspace) -> None:
            n_rows = sum(segment.shape[0] for _, segment in segments)
            self._log_prob(segments, buffers, out[first_row : first_row + n_rows])

        for _ in self._map_chunks(frames, chunk):
            pass
        return out

    def score_samples(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Log-likelihood ``log p(x_t)`` of each frame, ndarray of shape (n_frames,), float64."""
        from spkid import _kernels

        frames = self._frames(X)
        scores = np.empty(frames.n_frames)
        clamp = self._dtype().type(_CLAMP[self._dtype()])

        def chunk(first_row: int, segments: Segments, buffers: _Workspace) -> None:
            log_prob = self._log_prob(segments, buffers)
            row_scores = buffers.row_log_likelihood[: log_prob.shape[0]]
            _kernels.logsumexp(log_prob, row_scores, clamp)
            scores[first_row : first_row + log_prob.shape[0]] = row_scores

        for _ in self._map_chunks(frames, chunk):
            pass
        return scores

    def score(self, X: np.ndarray | Iterable[np.ndarray]) -> float:
        """Mean log-likelihood per frame of ``X`` (an array or an iterable of arrays)."""
        scores = self.score_samples(X)
        return float(np.mean(scores)) if scores.size else float("nan")

    def predict_proba(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Responsibilities, ndarray of shape (n_frames, n_components) in the model dtype; rows sum to 1."""
        from spkid import _kernels

        frames = self._frames(X)
        out = np.empty((frames.n_frames, self.n_components), dtype=self._dtype())
        clamp = out.dtype.type(_CLAMP[out.dtype])

        def chunk(first_row: int, segments: Segments, buffers: _Workspace) -> None:
            n_rows = sum(segment.shape[0] for _, segment in segments)
            log_prob = self._log_prob(segments, buffers, out[first_row : first_row + n_rows])
            _kernels.posterior(log_prob, buffers.row_log_likelihood[:n_rows], clamp)

        for _ in self._map_chunks(frames, chunk):
            pass
        return out

    def predict(self, X: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """Most likely component of each frame, ndarray of shape (n_frames,), int64."""
        frames = self._frames(X)
        labels = np.empty(frames.n_frames, dtype=np.int64)

        def chunk(first_row: int, segments: Segments, buffers: _Workspace) -> None:
            log_prob = self._log_prob(segments, buffers)
            labels[first_row : first_row + log_prob.shape[0]] = np.argmax(log_prob, axis=1)

        for _ in self._map_chunks(frames, chunk):
            pass
        return labels

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
