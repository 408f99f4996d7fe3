"""The ``score`` section of the config: how test utterances are scored (top-C, normalisation, cohort)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from spkid.config_checks import Interval, Options, check_fields, check_settings
from spkid.score.normalize import METHODS

__all__ = ["MIN_NORMALISATION_COHORT", "ScoreConfig"]

#: Fewest cohort utterances worth normalising scores with (``score.min_cohort_size``'s default): below it a
#: standard deviation over a handful of impostors is noise (with 2, adaptive S-norm ranked a speaker's own
#: test below an impostor's).
MIN_NORMALISATION_COHORT = 10


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """How test utterances are scored.

    Attributes
    ----------
    top_c : int or None
        UBM components kept per frame: 10 by default, within a few hundredths of the exact LLR for models
        MAP-adapted with relevance factor 4, and ~70x faster than exact at 1,000 speakers (the usual 5 suits
        the weaker adaptation of relevance factor 16). None scores with every component (exact).
    normalization : str
        Score normalisation: "none", "znorm", "tnorm", "ztnorm", "snorm" or "asnorm" (see
        spkid.score.normalize).
    cohort_size : int
        Number of impostor utterances/models in the normalisation cohort.
    asnorm_top_k : int
        Adaptive S-norm uses the ``asnorm_top_k`` closest cohort scores of each side.
    min_cohort_size : int
        Fewest cohort utterances to normalise with: a model whose pool gives a smaller cohort scores raw LLRs
        (``normalization`` "none", with a warning; :func:`spkid.score.normalisable`). Lower it to normalise
        with a small cohort anyway.

    Examples
    --------
    >>> config = ScoreConfig.from_dict({"normalization": "asnorm", "cohort_size": 200})
    >>> config.top_c, config.normalization, config.cohort_size
    (10, 'asnorm', 200)
    >>> ScoreConfig(normalization="cnorm")
    Traceback (most recent call last):
        ...
    spkid.errors.ConfigError: score.normalization='cnorm': must be one of none, znorm, ...
    """

    top_c: int | None = 10
    normalization: str = "none"
    cohort_size: int = 100
    asnorm_top_k: int = 50
    min_cohort_size: int = MIN_NORMALISATION_COHORT

    #: What each setting may be (:mod:`spkid.config_checks`); :class:`Scorer` checks ``top_c`` by it too.
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "top_c": [Interval(int, 1, None), None],
        "normalization": Options(METHODS),
        "cohort_size": Interval(int, 1, None),
        "asnorm_top_k": Interval(int, 1, None),
        "min_cohort_size": Interval(int, 1, None),
    }

    def __post_init__(self) -> None:
        check_fields(self, "score")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> ScoreConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("score", cls, settings))
