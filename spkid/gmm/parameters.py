"""The fitted parameters of a diagonal-covariance mixture: validated, read-only float64 arrays.

:class:`MixtureParameters` is the part of :class:`~spkid.gmm.DiagonalGMM` that holds ``weights_``,
``means_`` and ``variances_``: checks on assignment, sharing arrays between models, and the plain-array
dict form (``to_dict`` / ``from_dict``) models are stored in. The estimator itself is :mod:`spkid.gmm.model`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from spkid.errors import ModelError

__all__ = ["MixtureParameters"]

_WEIGHT_SUM_TOLERANCE = 1e-4
_DICT_KEYS = {"weights", "means", "variances", "dtype", "n_iter", "converged", "lower_bound", "history"}
Model = TypeVar("Model", bound="MixtureParameters")


class MixtureParameters:
    """Fitted-parameter storage of :class:`~spkid.gmm.DiagonalGMM` (its constructor makes the instances)."""

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

    def share_parameters_of(self, other: MixtureParameters) -> int:
        """Reuse ``other``'s weights and variances arrays where they equal this model's.

        Parameters are read-only, so MAP-adapted speaker models (whose weights and variances are the
        UBM's under mean-only adaptation) can hold one copy of the UBM's arrays instead of one each: half
        the memory of a thousand loaded speakers.

        Returns
        -------
        int
            How many of the two arrays are now shared (0, 1 or 2).
        """
        shared = 0
        if np.array_equal(self._fitted("_weights"), other._fitted("_weights")):
            self._weights, shared = other._weights, shared + 1
        if np.array_equal(self._fitted("_variances"), other._fitted("_variances")):
            self._variances, shared = other._variances, shared + 1
        return shared

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
    def from_params(cls: type[Model], weights: np.ndarray, means: np.ndarray, variances: np.ndarray,
                    **params) -> Model:
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
    def from_dict(cls: type[Model], data: dict) -> Model:
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
