"""The settings of UBM training (:class:`UBMConfig`) and enrollment (:class:`EnrollConfig`), and the UBM size
a pool of frames supports (:func:`effective_components`).

The EM driver (:mod:`spkid.ubm.backends`), training (:mod:`spkid.ubm.train`) and MAP adaptation
(:mod:`spkid.ubm.map`) import these; this module imports none of them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spkid.config_checks import check_settings, close_match_hint
from spkid.errors import ConfigError, ModelError

__all__ = [
    "ADAPTABLE", "BACKENDS", "INITS", "EnrollConfig", "UBMConfig", "checked_components",
    "effective_components", "parse_adapt",
]  # fmt: skip

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


def parse_adapt(adapt: str | Sequence[str]) -> tuple[str, ...]:
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
        object.__setattr__(self, "adapt", parse_adapt(self.adapt))

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (``adapt`` as a list)."""
        return {"relevance_factor": self.relevance_factor, "adapt": list(self.adapt)}

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> EnrollConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("enroll", cls, settings))


def effective_components(config: UBMConfig, n_frames: int) -> int:
    """``config.n_components``, or the largest power of two that leaves enough frames per component.

    Returns 1 (too few frames for a mixture) when ``n_frames`` cannot give 2 components their
    ``config.min_frames_per_component`` frames each.
    """
    if n_frames >= config.n_components * config.min_frames_per_component:
        return config.n_components
    return 2 ** int(math.floor(math.log2(max(n_frames // config.min_frames_per_component, 1))))


def checked_components(config: UBMConfig, n_frames: int) -> int:
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
