"""Checks shared by the config section dataclasses: unknown keys and unknown choices, with a did-you-mean.

Kept free of numpy so a section (e.g. :class:`spkid.feature_config.FeatureConfig`) can be read and validated
without importing the numerical modules.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from spkid.errors import ConfigError


def close_match_hint(word: object, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the candidate closest to ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_settings(section: str, cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``settings`` as a dict after rejecting keys that are not fields of ``cls`` (with a hint).

    Raises
    ------
    ConfigError
        ``"<section>: unknown setting '<key>' (did you mean '<field>'?)"``, or when ``settings`` is not a
        mapping.
    """
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {type(settings).__name__}")
    known = [field.name for field in dataclasses.fields(cls)]
    for key in settings:
        if key not in known:
            raise ConfigError(f"{section}: unknown setting '{key}'{close_match_hint(key, known)}")
    return dict(settings)
