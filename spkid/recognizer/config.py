"""The spkid config: four typed sections (``features``, ``ubm``, ``enroll``, ``score``) and the free-form
``data`` and ``recipe`` mappings read by recipes, loaded from YAML with ``--set section.key=value`` overrides.

Each typed section is a frozen dataclass owned by the package that uses it; this module names them and
builds them with the generic machinery of :mod:`spkid.config` (strict YAML, did-you-mean checks, values
checked by each section's constraint table). It lives here, above :mod:`spkid.features`, :mod:`spkid.ubm` and
:mod:`spkid.score`, so that none of them imports upward.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from spkid.config import (
    FREE_SECTIONS,
    SectionClasses,
    build_sections,
    read_config_file,
    resolve_section_classes,
)
from spkid.features import FeatureConfig
from spkid.score import ScoreConfig
from spkid.ubm import EnrollConfig, UBMConfig

__all__ = [
    "CONFIG_DEFAULTS",
    "SECTIONS",
    "Config",
    "apply_overrides",
    "config_from_dict",
    "config_to_yaml",
    "load_config",
]

#: Typed config sections: name -> class.
SECTIONS: dict[str, type] = {
    "features": FeatureConfig,
    "ubm": UBMConfig,
    "enroll": EnrollConfig,
    "score": ScoreConfig,
}
#: Where the defaults of configs (the CLI's, ``default.yaml``'s) differ from the section classes' own: the
#: API's ``FeatureConfig()`` keeps an explicit rate, per-utterance CMVN and one front-end, which need no pool;
#: a config lets ``train-ubm`` choose the rate from the pool, split the band, and train a model that keeps
#: the recordings' loudness beside one that removes it for the enrollment to choose (``cmvn: auto``;
#: the latter's adaptive CMVN weighs a recording's own statistics as much as the pool's only at 30 s;
#: README "Defaults, and why"), adapt the main model of a band pair, which compares across channels, less
#: (relevance factor 16), and normalise scores with the pool's cohort (adaptive S-norm; a bare
#: ``ScoreConfig()`` scores without one).
CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "features": {
        "sample_rate": "auto",
        "cmvn": "auto",
        "cmvn_relevance_frames": 3000.0,
        "bands": "auto",
    },
    "enroll": {"cross_band_relevance_factor": 16.0},
    "score": {"normalization": "asnorm"},
}


def section_to_dict(section: Any) -> dict[str, Any]:
    """A built section's settings as a dict (its ``to_dict()``, or the dataclass fields)."""
    if hasattr(section, "to_dict"):
        return dict(section.to_dict())
    return dataclasses.asdict(section)


def plain(value: Any) -> Any:
    """Nested mappings → dicts, tuples → lists, Paths → str (what YAML and JSON can hold)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """A resolved configuration: the four typed sections and the free-form recipe sections.

    Examples
    --------
    >>> from spkid.recognizer import load_config
    >>> config = load_config(None)
    >>> config.ubm.n_components, config.features.cmvn, config.score.normalization
    (512, 'auto', 'asnorm')
    >>> sorted(config.to_dict())
    ['enroll', 'features', 'score', 'ubm']
    """

    features: FeatureConfig
    ubm: UBMConfig
    enroll: EnrollConfig
    score: ScoreConfig
    data: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (tuples become lists), ready for YAML or JSON."""
        result: dict[str, Any] = {name: plain(section_to_dict(getattr(self, name))) for name in SECTIONS}
        for name in FREE_SECTIONS:
            if getattr(self, name):
                result[name] = plain(getattr(self, name))
        return result


def load_config(
    path: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    section_classes: SectionClasses | None = None,
) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply ``--set`` overrides.

    Parameters
    ----------
    path : str, Path or None
        A YAML file with any of the sections; missing sections and keys take their defaults.
    overrides : sequence of str
        ``section.key=value`` strings applied after the file, in order.
    section_classes : mapping, optional
        Replaces entries of :data:`SECTIONS` (a class or ``"module:Class"``), e.g. for tests.

    Raises
    ------
    ConfigError
        Missing or unreadable file, YAML syntax error (with line), unknown section or key (with a
        did-you-mean), wrong value type, or a value the section class rejects.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from spkid.recognizer import load_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name, "small.yaml")
    >>> _ = path.write_text("ubm:\\n  n_components: 64\\n")
    >>> config = load_config(path, ["ubm.max_iter=5"])
    >>> config.ubm.n_components, config.ubm.max_iter, config.enroll.relevance_factor
    (64, 5, 4.0)
    >>> tmp.cleanup()
    """
    if path is None:
        return _resolve({}, overrides, "defaults", section_classes)
    raw = read_config_file(path)
    return _resolve({} if raw is None else raw, overrides, str(path), section_classes)


def apply_overrides(
    config: Config, overrides: Sequence[str], *, section_classes: SectionClasses | None = None
) -> Config:
    """Return ``config`` with ``--set`` overrides applied and everything re-validated.

    Examples
    --------
    >>> from spkid.recognizer import apply_overrides, load_config
    >>> config = load_config(None)
    >>> config = apply_overrides(config, ["score.normalization=znorm", "enroll.adapt=weights,means"])
    >>> config.score.normalization, config.enroll.adapt
    ('znorm', ('means', 'weights'))
    """
    return _resolve(config.to_dict(), overrides, "config", section_classes)


def config_from_dict(
    raw: Mapping[str, Any], *, source: str = "config", section_classes: SectionClasses | None = None
) -> Config:
    """Build a :class:`Config` from nested dicts (e.g. a parsed YAML document), with the same checks.

    Examples
    --------
    >>> from spkid.recognizer import config_from_dict
    >>> config = config_from_dict({"ubm": {"n_components": 32}, "score": {"cohort_size": 20}})
    >>> config.ubm.n_components, config.score.cohort_size, config.features.sample_rate
    (32, 20, 'auto')
    >>> config_from_dict({"ubm": {"n_component": 32}})
    Traceback (most recent call last):
    ...
    spkid.errors.ConfigError: config: unknown key ubm.n_component; did you mean 'ubm.n_components'?
    """
    return _resolve(raw, (), source, section_classes)


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML, for saving beside results (loads back to an equal :class:`Config`).

    Examples
    --------
    >>> import yaml
    >>> from spkid.recognizer import config_from_dict, config_to_yaml, load_config
    >>> config = load_config(None, ["ubm.n_components=64"])
    >>> text = config_to_yaml(config)
    >>> text.splitlines()[0], "  n_components: 64" in text.splitlines()
    ('features:', True)
    >>> config_from_dict(yaml.safe_load(text)) == config
    True
    """
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)


def _resolve(
    raw: Any, overrides: Sequence[str], source: str, section_classes: SectionClasses | None
) -> Config:
    classes = resolve_section_classes(SECTIONS, section_classes)
    # The config defaults belong to the standard classes: a replaced section keeps its class's own.
    defaults = {
        section: settings
        for section, settings in CONFIG_DEFAULTS.items()
        if classes.get(section) is SECTIONS.get(section)
    }
    sections, free = build_sections(raw, overrides, source, classes, defaults=defaults)
    return Config(**sections, **free)
