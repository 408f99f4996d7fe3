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
from typing import Any, ClassVar

from spkid.config_checks import (
    Constraint,
    Interval,
    Options,
    WrongType,
    check_field,
    check_fields,
    check_settings,
)
from spkid.errors import ModelError

__all__ = [
    "ADAPTABLE",
    "BACKENDS",
    "INITS",
    "EnrollConfig",
    "Subset",
    "UBMConfig",
    "checked_components",
    "effective_components",
    "parse_adapt",
]

logger = logging.getLogger(__name__)

BACKENDS = ("local", "joblib", "dask")
INITS = ("kmeans++", "split")
ADAPTABLE = ("means", "weights", "variances")


@dataclasses.dataclass(frozen=True)
class UBMConfig:
    """How the universal background model is trained.

    Attributes
    ----------
    n_components : int
        Gaussians in the UBM (512: the classic GMM-UBM size for MFCC front-ends). Reduced automatically,
        with a warning, to the largest power of two that leaves ``min_frames_per_component`` frames each.
    wideband_components : int
        Gaussians of the companion model (``features.bands: auto``: the wideband one of a 16 kHz pool, the
        narrowband one of an 8 kHz pool), at most ``n_components``: 128 keeps a speaker's second copy to a
        quarter of the first, as accurate on the wideband conditions of ``bench_accuracy.py`` as 512 (mean
        EER 3.27% against 3.32%) and more accurate on telephone words with a telephone pool (8.57% against
        9.27%).
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
        E-step threads ("local") or worker processes ("joblib", a local "dask" cluster); -1 (the default):
        every CPU of :func:`spkid.blas.cpu_budget`. The model does not depend on it.
    max_unusable_fraction : float
        ``train-ubm`` skips pool files with too little speech (too short, silent), listing them in the
        model; when more than this share of the pool is such files it stops instead: the pool is wrong.

    Examples
    --------
    >>> config = UBMConfig(n_components=64, max_iter=5)
    >>> config.backend, config.to_dict()["n_components"]
    ('local', 64)
    >>> UBMConfig.from_dict(config.to_dict()) == config
    True
    """

    n_components: int = 512
    wideband_components: int = 128
    max_iter: int = 10
    tol: float = 1e-4
    init: str = "kmeans++"
    variance_floor: float = 1e-3
    min_frames_per_component: int = 20
    max_frames: int | None = None
    random_state: int = 0
    backend: str = "local"
    scheduler: str | None = None
    n_jobs: int = -1
    max_unusable_fraction: float = 0.2

    #: What each setting may be (:mod:`spkid.config_checks`).
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "n_components": Interval(int, 1, None),
        "wideband_components": Interval(int, 1, None),
        "max_iter": Interval(int, 1, None),
        "tol": Interval(float, 0, None),
        "init": Options(INITS),
        "variance_floor": Interval(float, 0, None, closed="neither"),
        "min_frames_per_component": Interval(int, 1, None),
        "max_frames": [Interval(int, 1, None), None],
        "random_state": Interval(int, 0, None),
        "backend": Options(BACKENDS),
        "scheduler": [str, None],
        "n_jobs": [Interval(int, 1, None), Options((-1,), what="-1 (all cores)")],
        "max_unusable_fraction": Interval(float, 0, 1),
    }

    def __post_init__(self) -> None:
        check_fields(self, "ubm")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> UBMConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("ubm", cls, settings))


class Subset(Constraint):
    """Constraint: a non-empty selection of ``values``, as a list or a comma-separated string
    ("means,weights"), converted to a tuple in the order of ``values`` (``enroll.adapt``)."""

    def __init__(self, values: Sequence[str]) -> None:
        self.values = tuple(values)
        self.expected = "a list or a comma-separated string"
        self.allowed = f"a non-empty subset of {', '.join(self.values)}"

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            parts: list[Any] = value.split(",")
        elif isinstance(value, (list, tuple, set, frozenset)):
            parts = list(value)
        else:
            raise WrongType
        chosen = {str(part).strip() for part in parts} - {""}
        return (*(name for name in self.values if name in chosen), *sorted(chosen - set(self.values)))

    def admits(self, value: Any) -> bool:
        return bool(value) and set(value) <= set(self.values)


def parse_adapt(adapt: str | Sequence[str]) -> tuple[str, ...]:
    """``"means,weights"`` or ``("weights", "means")`` -> ``("means", "weights")`` (canonical order)."""
    return check_field(EnrollConfig, "adapt", adapt, name="enroll.adapt")


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
    cross_band_relevance_factor : float or None
        The relevance factor of the main model of a two-band pair (``features.bands: auto``,
        :mod:`spkid.recognizer.bands`): that model compares recordings whose bands or channels differ
        (a telephone test against a speaker enrolled on wideband audio, or the reverse), where a model
        nearer the UBM carries across the channel. ``train-ubm`` stores it as that model's
        ``relevance_factor``; its companion and single-band models use ``relevance_factor``. None: the
        same as ``relevance_factor`` (the API's default; configs use 16).

    Examples
    --------
    >>> config = EnrollConfig(adapt="weights,means")  # stored in canonical order
    >>> config.adapt, config.to_dict()["adapt"]
    (('means', 'weights'), ['means', 'weights'])
    >>> EnrollConfig.from_dict(config.to_dict()) == config
    True
    >>> EnrollConfig(cross_band_relevance_factor=16.0).across_bands().relevance_factor
    16.0
    """

    relevance_factor: float = 4.0
    adapt: tuple[str, ...] = ("means",)
    cross_band_relevance_factor: float | None = None

    #: What each setting may be (:mod:`spkid.config_checks`); :func:`~spkid.ubm.map_adapt` checks its
    #: arguments by the same table.
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "relevance_factor": Interval(float, 0, math.inf),
        "adapt": Subset(ADAPTABLE),
        "cross_band_relevance_factor": [Interval(float, 0, math.inf), None],
    }

    def __post_init__(self) -> None:
        check_fields(self, "enroll")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (``adapt`` as a list)."""
        return {
            "relevance_factor": self.relevance_factor,
            "adapt": list(self.adapt),
            "cross_band_relevance_factor": self.cross_band_relevance_factor,
        }

    def across_bands(self) -> EnrollConfig:
        """The settings of a two-band pair's main model: ``relevance_factor`` set to
        ``cross_band_relevance_factor`` (unchanged when that is None)."""
        if self.cross_band_relevance_factor is None:
            return self
        return dataclasses.replace(self, relevance_factor=self.cross_band_relevance_factor)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> EnrollConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("enroll", cls, settings))


def effective_components(config: UBMConfig, n_frames: int) -> int:
    """``config.n_components``, or the largest power of two that leaves enough frames per component.

    Returns 1 (too few frames for a mixture) when ``n_frames`` cannot give 2 components their
    ``config.min_frames_per_component`` frames each.

    Examples
    --------
    >>> config = UBMConfig(n_components=512, min_frames_per_component=20)
    >>> [effective_components(config, n_frames) for n_frames in (100_000, 5_000, 30)]
    [512, 128, 1]
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
        n_frames,
        config.n_components,
        config.min_frames_per_component,
        reduced,
    )
    return reduced
