"""Exceptions raised by spkid.

Every error spkid raises on bad input derives from :class:`SpkidError`; its message is one line that
names the file, key or value at fault and says what was expected. The CLI prints that line and exits 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class SpkidError(Exception):
    """Base class of every error spkid raises for bad input or a bad state."""


class AudioError(SpkidError):
    """An audio file is missing, unreadable, empty, corrupt or holds non-finite samples."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[type[AudioError], tuple[Path, str]]:
        # Errors cross process boundaries (joblib, dask); rebuild from the constructor's own arguments.
        return (AudioError, (self.path, self.reason))


class FeatureError(SpkidError):
    """Features cannot be extracted: too short, silent, or nothing left after voice activity detection."""


class ConfigError(SpkidError):
    """A configuration file, key, value or ``--set`` override is invalid."""


class ModelError(SpkidError, ValueError):
    """A model cannot be trained or used: invalid parameters, too little data, incompatible shapes.

    Also a :class:`ValueError`, the type scikit-learn expects an estimator to raise on bad input (its
    ``check_estimator`` and meta-estimators such as ``GridSearchCV`` rely on it).
    """


class StoreError(SpkidError):
    """A model directory is missing, corrupt, incompatible or cannot be written."""


class DataError(SpkidError):
    """A corpus layout, trial list or score file is malformed."""


class DownloadError(SpkidError):
    """A download failed: network error, bad HTTP status or checksum mismatch."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood gain fell below the ``tol`` the caller asked for.

    Warned only when the caller gave a ``tol`` of their own (not the default, and not 0, which asks for
    exactly ``max_iter`` iterations). spkid's own class, so importing it loads no scikit-learn; filter it
    with ``warnings.filterwarnings("ignore", category=spkid.errors.ConvergenceWarning)``.
    """


# ------------------------------------------------------------------------------------------ message helpers
def _closest(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def close_match_hint(word: object, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the candidate closest to ``word``, or ``""`` when none is close."""
    close = _closest(word, candidates)
    return f" (did you mean '{close}'?)" if close else ""


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate closest to ``word``, or ``""`` when none is close."""
    close = _closest(word, candidates)
    return f"; did you mean {close!r}?" if close else ""


def describe_value(value: Any) -> str:
    """``"<type> <repr>"``, the repr cut at 40 characters, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
