"""Universal background model training, MAP adaptation of speaker models, and enrollment.

``train_ubm`` fits one diagonal GMM to frames pooled from many speakers; ``map_adapt`` derives a speaker
model from it by maximum-a-posteriori adaptation (Reynolds, Quatieri & Dunn 2000): each component moves
towards the speaker's data in proportion to ``alpha_k = n_k / (n_k + relevance_factor)``, where ``n_k`` is
the soft count of the speaker's frames it explains. The UBM itself is never modified.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# check_settings stays importable from here: spkid.score uses it.
from spkid.config_checks import check_settings, close_match_hint
from spkid.errors import ConfigError, ModelError
from spkid.gmm import DiagonalGMM, SufficientStats

__all__ = [
    "ADAPTABLE", "BACKENDS", "EnrollConfig", "UBMConfig", "effective_components", "enroll", "map_adapt",
    "train_ubm",
]

logger = logging.getLogger(__name__)

BACKENDS = ("local", "joblib", "dask")
INITS = ("kmeans++", "split")
ADAPTABLE = ("means", "weights", "variances")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class UBMConfig:
    """How the universal background model is trained.

    Attributes
    ----------
    n_components : int
        Gaussians in the UBM (512: the classic GMM-UBM size for MFCC front-ends). Reduced automatically,
        with a warning, to the largest power of two that leaves ``min_frames_per_component`` frames each.
    max_iter : int
        EM iterations (the likelihood of a 512-component UBM barely moves after ~10).
    tol : float
        Stop early when the mean log-likelihood per frame improves by less than this.
    init : str
        "kmeans++" (seeded k-means++ centres) or "split" (binary splitting, as in HTK/Kaldi).
    variance_floor : float
        Lower bound on every variance, relative to the pooled data variance of each feature.
    min_frames_per_component : int
        Frames needed per component (below this a Gaussian fits noise); drives the automatic reduction.
    max_frames : int or None
        If set, each EM iteration uses a fresh random subsample of this many frames (huge pools).
    random_state : int
        Seed of initialisation and subsampling.
    backend : str
        Where E-steps run: "local" (this process, multi-threaded), "joblib" or "dask".
    scheduler : str or None
        Dask scheduler address when ``backend="dask"`` (None: a local cluster).
    n_jobs : int
        Workers for the local/joblib E-step (-1: all cores).
    max_unusable_fraction : float
        ``train-ubm`` skips pool files with too little speech (too short, silent), listing them in the
        model; when more than this share of the pool is such files it stops instead: the pool is wrong.
    """

    n_components: int = 512
    max_iter: int = 10
    tol: float = 1e-4
    init: str = "kmeans++"
    variance_floor: float = 1e-3
    min_frames_per_component: int = 20
    max_frames: int | None = None
    random_state: int = 0
    backend: str = "local"
    scheduler: str | None = None
    n_jobs: int = 1
    max_unusable_fraction: float = 0.2

    def __post_init__(self) -> None:
        def fail(name: str, reason: str) -> None:
            raise ConfigError(f"ubm.{name}={getattr(self, name)!r}: {reason}")

        fraction = self.max_unusable_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            fail("max_unusable_fraction", "must be a number in [0, 1]")
        for name in ("n_components", "max_iter", "min_frames_per_component"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "must be a positive integer")
        if self.max_frames is not None and (not _is_int(self.max_frames) or self.max_frames < 1):
            fail("max_frames", "must be a positive integer or None")
        if not _is_int(self.random_state) or self.random_state < 0:
            fail("random_state", "must be a non-negative integer")
        if not _is_int(self.n_jobs) or self.n_jobs == 0 or self.n_jobs < -1:
            fail("n_jobs", "must be a positive integer or -1 (all cores)")
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 0):
            fail("tol", "must be a finite number >= 0")
        if not (isinstance(self.variance_floor, (int, float)) and math.isfinite(self.variance_floor)
                and self.variance_floor > 0):  # fmt: skip
            fail("variance_floor", "must be a finite number > 0")
        for name, allowed in (("init", INITS), ("backend", BACKENDS)):
            if getattr(self, name) not in allowed:
                hint = close_match_hint(getattr(self, name), allowed)
                fail(name, f"must be one of {', '.join(allowed)}{hint}")
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            fail("scheduler", "must be a scheduler address string or None")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> UBMConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("ubm", cls, settings))


def _parse_adapt(adapt: str | Sequence[str]) -> tuple[str, ...]:
    """``"means,weights"`` or ``("weights", "means")`` -> ``("means", "weights")`` (canonical order)."""
    parts = adapt.split(",") if isinstance(adapt, str) else list(adapt)
    chosen = {str(part).strip() for part in parts if str(part).strip()}
    unknown = sorted(chosen - set(ADAPTABLE))
    if unknown or not chosen:
        raise ConfigError(f"enroll.adapt={adapt!r}: must be a non-empty subset of {', '.join(ADAPTABLE)}")
    return tuple(name for name in ADAPTABLE if name in chosen)


@dataclasses.dataclass(frozen=True)
class EnrollConfig:
    """How speaker models are derived from the UBM.

    Attributes
    ----------
    relevance_factor : float
        MAP relevance factor r: a component moves halfway to the speaker's data once it has explained r
        frames. Default 4, as in Idiap's bob speaker-recognition configurations: with a few seconds of
        enrollment, the 16 of Reynolds et al. (2000) leaves the models too close to the UBM; with minutes of
        speech both give nearly the same models.
    adapt : tuple of str
        Parameters to adapt, any of "means", "weights", "variances" (a string "means,weights" is accepted).
        Adapting only the means is the standard choice and enables the fastest scoring.
    """

    relevance_factor: float = 4.0
    adapt: tuple[str, ...] = ("means",)

    def __post_init__(self) -> None:
        factor = self.relevance_factor
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not factor >= 0
            or math.isnan(factor)
        ):
            raise ConfigError(f"enroll.relevance_factor={factor!r}: must be a number >= 0")
        object.__setattr__(self, "relevance_factor", float(factor))
        object.__setattr__(self, "adapt", _parse_adapt(self.adapt))

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (``adapt`` as a list)."""
        return {"relevance_factor": self.relevance_factor, "adapt": list(self.adapt)}

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> EnrollConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("enroll", cls, settings))


def _as_frame_list(features: np.ndarray | Iterable[np.ndarray], what: str) -> list[np.ndarray]:
    """One array -> [array]; an iterable of arrays -> list, each checked to be 2-D, finite, same width."""
    arrays = [features] if isinstance(features, np.ndarray) else list(features)
    checked = []
    for index, X in enumerate(arrays):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ModelError(
                f"{what}: utterance {index} has shape {X.shape}, expected (n_frames, n_features)"
            )
        if checked and X.shape[1] != checked[0].shape[1]:
            raise ModelError(
                f"{what}: utterance {index} has {X.shape[1]} features, the first has {checked[0].shape[1]}"
            )
        if not np.all(np.isfinite(X)):
            raise ModelError(f"{what}: utterance {index} contains NaN or infinite features")
        if len(X):
            checked.append(X)
    if not checked:
        raise ModelError(f"{what}: no feature frames given")
    return checked


def effective_components(config: UBMConfig, n_frames: int) -> int:
    """``config.n_components``, or the largest power of two that leaves enough frames per component.

    Returns 1 (too few frames for a mixture) when ``n_frames`` cannot give 2 components their
    ``config.min_frames_per_component`` frames each.
    """
    if n_frames >= config.n_components * config.min_frames_per_component:
        return config.n_components
    return 2 ** int(math.floor(math.log2(max(n_frames // config.min_frames_per_component, 1))))


def _effective_components(config: UBMConfig, n_frames: int) -> int:
    """:func:`effective_components`, logging a warning when the pool reduces it, ModelError below 2."""
    if n_frames >= config.n_components * config.min_frames_per_component:
        return config.n_components
    reduced = effective_components(config, n_frames)
    if reduced < 2:
        raise ModelError(
            f"UBM training: {n_frames} frames cannot train even 2 components "
            f"(ubm.min_frames_per_component={config.min_frames_per_component}); give more audio"
        )
    logger.warning(
        "UBM training: %d frames are too few for %d components at %d frames each; training %d components",
        n_frames, config.n_components, config.min_frames_per_component, reduced,
    )  # fmt: skip
    return reduced


def train_ubm(features: Iterable[np.ndarray], config: UBMConfig = UBMConfig()) -> DiagonalGMM:
    """Train the universal background model on frames pooled from many speakers.

    Parameters
    ----------
    features : iterable of ndarray of shape (n_frames_i, n_features), or StoredFeatures
        One array per utterance, never concatenated. Memory-mapped arrays (``np.load(..., mmap_mode="r")``)
        and :class:`spkid.feature_store.StoredFeatures` are read from disk a bounded batch at a time.
    config : UBMConfig
        ``backend`` ("local", "joblib", "dask"), ``scheduler`` and ``n_jobs`` say where E-steps run
        (:mod:`spkid.backends`); every backend gives the same model to float rounding.

    Returns
    -------
    DiagonalGMM
        Fitted with ``config.n_components`` components, or fewer (a warning is logged) on a small pool.
    """
    from spkid.backends import train_sharded  # imported here: spkid.backends imports this module

    return train_sharded(features, config)


def map_adapt(
    ubm: DiagonalGMM,
    X: np.ndarray | Sequence[np.ndarray],
    *,
    relevance_factor: float = 4.0,
    adapt: str | Sequence[str] = "means",
) -> DiagonalGMM:
    """MAP-adapt the UBM to one speaker's frames (Reynolds et al. 2000); the UBM is not modified.

    With soft counts ``n_k`` and data moments ``E_k[x]``, ``E_k[x^2]`` of the speaker's frames under the
    UBM, ``alpha_k = n_k / (n_k + relevance_factor)`` and

    - means: ``alpha_k E_k[x] + (1 - alpha_k) mu_k``;
    - weights: ``alpha_k n_k / T + (1 - alpha_k) w_k``, renormalised;
    - variances: ``alpha_k E_k[x^2] + (1 - alpha_k)(var_k + mu_k^2) - new_mu_k^2``, floored like the UBM.

    ``relevance_factor`` -> infinity returns the UBM; -> 0 the maximum-likelihood estimates of one EM step
    from the UBM (for components that see data; the others keep the UBM's parameters).

    Parameters
    ----------
    ubm : DiagonalGMM
    X : ndarray of shape (n_frames, n_features), or a sequence of such arrays (one speaker's utterances)
    relevance_factor : float
        The default is :class:`EnrollConfig`'s (4); Reynolds et al. (2000) used 16.
    adapt : str or sequence of str
        Any of "means", "weights", "variances" (a string may list several: "means,weights").

    Returns
    -------
    DiagonalGMM
        A new model.
    """
    parts = _parse_adapt(adapt)
    if isinstance(relevance_factor, bool) or not relevance_factor >= 0:
        raise ModelError(f"relevance_factor={relevance_factor!r}: must be a number >= 0")
    arrays = _as_frame_list(X, "MAP adaptation")
    weights, means, variances = ubm.weights_, ubm.means_, ubm.variances_
    if arrays[0].shape[1] != means.shape[1]:
        raise ModelError(
            f"MAP adaptation: features have {arrays[0].shape[1]} dimensions, the UBM {means.shape[1]}"
        )
    stats: SufficientStats = ubm.accumulate(arrays)
    counts = stats.zeroth
    with np.errstate(divide="ignore", invalid="ignore"):
        # inf / inf (r = inf) and 0 / 0 (r = 0, no data) both mean "no evidence": keep the UBM.
        alpha = np.nan_to_num(counts / (counts + relevance_factor), nan=0.0)
    has_data = counts > 0
    safe_counts = np.where(has_data, counts, 1.0)[:, None]
    data_mean = np.where(has_data[:, None], stats.first / safe_counts, means)
    data_square = np.where(has_data[:, None], stats.second / safe_counts, variances + means**2)
    a = alpha[:, None]
    new_means = a * data_mean + (1 - a) * means if "means" in parts else means
    new_weights = weights
    if "weights" in parts:
        new_weights = alpha * counts / counts.sum() + (1 - alpha) * weights
        new_weights = new_weights / new_weights.sum()
    new_variances = variances
    if "variances" in parts:
        centre = weights @ means
        pooled_variance = weights @ (variances + means**2) - centre**2
        # As the GMM floors: relative per dimension, and absolutely 1e-10 x the widest dimension, so a
        # constant dimension cannot reach variances whose float32 precisions overflow when scoring.
        absolute_floor = 1e-10 * max(float(pooled_variance.max()), 1e-30)
        floor = np.maximum(ubm.variance_floor * pooled_variance, absolute_floor)
        new_variances = np.maximum(a * data_square + (1 - a) * (variances + means**2) - new_means**2, floor)
    return DiagonalGMM.from_params(
        new_weights, new_means, new_variances, variance_floor=ubm.variance_floor, dtype=ubm.dtype
    )


def enroll(
    ubm: DiagonalGMM, features_list: Sequence[np.ndarray], config: EnrollConfig = EnrollConfig()
) -> DiagonalGMM:
    """A speaker model from the speaker's utterances: :func:`map_adapt` with ``config``'s settings.

    Parameters
    ----------
    ubm : DiagonalGMM
    features_list : sequence of ndarray of shape (n_frames_i, n_features)
    config : EnrollConfig
    """
    return map_adapt(ubm, features_list, relevance_factor=config.relevance_factor, adapt=config.adapt)
