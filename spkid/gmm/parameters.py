"""The fitted parameters of a diagonal-covariance mixture: a frozen holder of validated, read-only arrays.

:class:`MixtureParameters` is all that scoring needs and all that the EM loop (:mod:`spkid.gmm.em`) passes
from one iteration to the next: the model store loads UBMs and speakers as these, MAP adaptation returns
them, the scorer reads their ``weights_`` / ``means_`` / ``variances_``. Importing this module loads no
scikit-learn; the estimator :class:`~spkid.gmm.DiagonalGMM` converts to and from it
(``model.parameters()``, ``DiagonalGMM.from_params(parameters)``). Its dict form (``to_dict`` /
``from_dict``) is the one models are stored in.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable

import numpy as np

from spkid.errors import ModelError
from spkid.gmm._estep import CLAMP, EStep, Frames, estep_matrices
from spkid.gmm.stats import SufficientStats

__all__ = ["MixtureParameters"]

_WEIGHT_SUM_TOLERANCE = 1e-4
_DICT_KEYS = {"weights", "means", "variances", "dtype", "n_iter", "converged", "lower_bound", "history"}


def checked_dtype(dtype: object) -> type:
    """``numpy.float32`` or ``numpy.float64`` (as given, a dtype or its name), else ModelError."""
    try:
        checked = np.dtype(dtype)
    except TypeError:
        checked = None
    if checked not in CLAMP:
        raise ModelError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype!r}")
    return checked.type


@dataclasses.dataclass(frozen=True, eq=False)
class MixtureParameters:
    """Weights, means and variances of a diagonal GMM (float64, read-only), and how they were fitted.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Non-negative, summing to 1 (renormalised exactly on construction).
    means : ndarray of shape (n_components, n_features)
    variances : ndarray of shape (n_components, n_features)
        Positive.
    dtype : numpy.float32 or numpy.float64
        Precision of the E-step products; the parameters themselves are always float64.
    variance_floor : float
        The relative variance floor the model was trained with (MAP adaptation of variances reuses it).
    n_iter, converged, lower_bound, history
        The EM summary: iterations run, whether the gain fell below ``tol``, the mean log-likelihood per
        frame at the last E-step, and at every E-step.

    The scikit-learn names ``weights_``, ``means_``, ``variances_``, ``n_iter_``, ``converged_``,
    ``lower_bound_`` and ``history_`` read the same values, so code written for a fitted
    :class:`~spkid.gmm.DiagonalGMM` (the scorer, the store) reads these alike.

    Examples
    --------
    >>> import numpy as np
    >>> params = MixtureParameters([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    >>> params
    MixtureParameters(n_components=2, n_features=1, dtype=float32, n_iter=0)
    >>> params.predict(np.array([[-2.5], [1.5]])).tolist(), round(params.score(np.array([[0.0]])), 2)
    ([0, 1], -2.92)
    >>> bool(np.array_equal(MixtureParameters.from_dict(params.to_dict()).means, params.means))
    True
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    dtype: type = np.float32
    variance_floor: float = 1e-3
    n_iter: int = 0
    converged: bool = False
    lower_bound: float = float("nan")
    history: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        weights, means, variances = (
            np.array(a, dtype=np.float64) for a in (self.weights, self.means, self.variances)
        )
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
        fields = {
            "weights": weights,
            "means": means,
            "variances": variances,
            "dtype": checked_dtype(self.dtype),
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
            "lower_bound": float(self.lower_bound),
            "history": tuple(float(v) for v in self.history),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # -------------------------------------------------------------------- scikit-learn's fitted names
    @property
    def weights_(self) -> np.ndarray:
        return self.weights

    @property
    def means_(self) -> np.ndarray:
        return self.means

    @property
    def variances_(self) -> np.ndarray:
        return self.variances

    @property
    def n_iter_(self) -> int:
        return self.n_iter

    @property
    def converged_(self) -> bool:
        return self.converged

    @property
    def lower_bound_(self) -> float:
        return self.lower_bound

    @property
    def history_(self) -> list[float]:
        return list(self.history)

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features_in_(self) -> int:
        return self.means.shape[1]

    def __repr__(self) -> str:
        return (
            f"MixtureParameters(n_components={self.n_components}, n_features={self.n_features_in_}, "
            f"dtype={np.dtype(self.dtype).name}, n_iter={self.n_iter})"
        )

    # ------------------------------------------------------------------- copies without re-validation
    def _copy(self, **changes: object) -> MixtureParameters:
        """A copy with ``changes`` applied as they are (the caller keeps them valid; arrays are shared)."""
        duplicate = copy.copy(self)
        duplicate.__dict__.pop("_matrices", None)
        for name, value in changes.items():
            object.__setattr__(duplicate, name, value)
        return duplicate

    def with_summary(
        self, *, n_iter: int, converged: bool, lower_bound: float, history: Iterable[float]
    ) -> MixtureParameters:
        """The same parameters with another EM summary (the arrays are shared, not renormalised)."""
        return self._copy(
            n_iter=int(n_iter),
            converged=bool(converged),
            lower_bound=float(lower_bound),
            history=tuple(float(v) for v in history),
        )

    def with_settings(self, *, dtype: object, variance_floor: float) -> MixtureParameters:
        """The same parameters with another E-step ``dtype`` and ``variance_floor`` (self if unchanged)."""
        dtype = checked_dtype(dtype)
        if dtype is self.dtype and variance_floor == self.variance_floor:
            return self
        return self._copy(dtype=dtype, variance_floor=float(variance_floor))

    def sharing(self, other: MixtureParameters) -> MixtureParameters:
        """These parameters holding ``other``'s weights and variances arrays where they are equal.

        Arrays are read-only, so MAP-adapted speaker models (whose weights and variances are the UBM's
        under mean-only adaptation) can hold one copy of the UBM's arrays instead of one each: half the
        memory of a thousand loaded speakers.
        """
        shared = {
            name: getattr(other, name)
            for name in ("weights", "variances")
            if np.array_equal(getattr(self, name), getattr(other, name))
        }
        return self._copy(**shared) if shared else self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_matrices", None)  # rebuilt where the copy is used (a worker process)
        return state

    def __setstate__(self, state: dict) -> None:
        for array in (state["weights"], state["means"], state["variances"]):
            array.flags.writeable = False
        self.__dict__.update(state)

    # ------------------------------------------------------------------------------ the E-step
    @functools.cached_property
    def _matrices(self) -> tuple[np.ndarray, np.ndarray]:
        return estep_matrices(self.weights, self.means, self.variances, np.dtype(self.dtype))

    def estep(self, *, chunk_size: int | None = None, n_jobs: int = 1) -> EStep:
        """The chunked E-step of these parameters (:class:`spkid.gmm._estep.EStep`; matrices built once).

        ``chunk_size``: frames per chunk (None: about 2^20 / n_components); ``n_jobs``: chunk streams run
        at once (joblib threads, one BLAS thread each; -1 = all cores).
        """
        design_weights, centre = self._matrices
        return EStep(
            design_weights, centre, n_components=self.n_components, chunk_size=chunk_size, n_jobs=n_jobs
        )

    def _frames(self, X: np.ndarray | Iterable[np.ndarray] | Frames) -> Frames:
        """``X`` (an array, or an iterable of arrays) as :class:`~spkid.gmm._estep.Frames` of this width."""
        return X if isinstance(X, Frames) else Frames(X, n_features=self.n_features_in_)

    def accumulate(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> SufficientStats:
        """E-step: sufficient statistics of ``X`` (n_frames, n_features), or of an iterable of such arrays."""
        return self.estep(chunk_size=chunk_size, n_jobs=n_jobs).accumulate(self._frames(X))

    def weighted_log_prob(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> np.ndarray:
        """``log w_k + log N(x_t | k)``, ndarray of shape (n_frames, n_components) in ``dtype``."""
        estep = self.estep(chunk_size=chunk_size, n_jobs=n_jobs)
        return estep.weighted_log_prob(self._frames(X), np.dtype(self.dtype))

    def score_samples(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> np.ndarray:
        """Log-likelihood ``log p(x_t)`` of each frame, ndarray of shape (n_frames,), float64."""
        estep = self.estep(chunk_size=chunk_size, n_jobs=n_jobs)
        return estep.score_samples(self._frames(X), np.dtype(self.dtype))

    def score(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> float:
        """Mean log-likelihood per frame of ``X`` (NaN when it holds no frames)."""
        scores = self.score_samples(X, chunk_size=chunk_size, n_jobs=n_jobs)
        return float(np.mean(scores)) if scores.size else float("nan")

    def predict_proba(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> np.ndarray:
        """Responsibilities, ndarray of shape (n_frames, n_components) in ``dtype``; rows sum to 1."""
        estep = self.estep(chunk_size=chunk_size, n_jobs=n_jobs)
        return estep.posteriors(self._frames(X), np.dtype(self.dtype))

    def predict(
        self, X: np.ndarray | Iterable[np.ndarray], *, chunk_size: int | None = None, n_jobs: int = 1
    ) -> np.ndarray:
        """Most likely component of each frame, ndarray of shape (n_frames,), int64."""
        return self.estep(chunk_size=chunk_size, n_jobs=n_jobs).labels(self._frames(X))

    # ------------------------------------------------------------------------------ the dict form
    def to_dict(self) -> dict[str, np.ndarray | str | int | float | bool]:
        """Parameters and fit summary as plain arrays and scalars (for ``np.savez``, no pickle)."""
        return {
            "weights": self.weights.copy(),
            "means": self.means.copy(),
            "variances": self.variances.copy(),
            "dtype": np.dtype(self.dtype).name,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "lower_bound": self.lower_bound,
            "history": np.asarray(self.history, dtype=np.float64),
        }

    @classmethod
    def from_dict(cls, data: dict) -> MixtureParameters:
        """Rebuild from :meth:`to_dict` output (values may be 0-d arrays, as from ``np.load``)."""
        unknown = sorted(set(data) - _DICT_KEYS)
        if unknown:
            raise ModelError(f"model dict: unknown key {unknown[0]!r} (expected {sorted(_DICT_KEYS)})")
        missing = sorted({"weights", "means", "variances"} - set(data))
        if missing:
            raise ModelError(f"model dict: missing key {missing[0]!r}")
        dtype_name = str(np.asarray(data.get("dtype", "float32")))
        if dtype_name not in ("float32", "float64"):
            raise ModelError(f"model dict: dtype must be 'float32' or 'float64', got {dtype_name!r}")
        return cls(
            data["weights"],
            data["means"],
            data["variances"],
            dtype=np.dtype(dtype_name).type,
            n_iter=int(np.asarray(data.get("n_iter", 0))),
            converged=bool(np.asarray(data.get("converged", False))),
            lower_bound=float(np.asarray(data.get("lower_bound", np.nan))),
            history=np.asarray(data.get("history", []), dtype=np.float64).ravel().tolist(),
        )
