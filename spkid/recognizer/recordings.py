"""What identification and verification share: usable features of the recordings, and the step timer."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from spkid.errors import DataError
from spkid.features import ExtractResult
from spkid.recognizer.recognizer import Recognizer

__all__ = ["TRUSTED_SPEECH_S", "StepClock", "extract_usable", "warn_if_short"]

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)
#: Seconds of speech (after VAD) below which identify and verify warn that a recording's scores are not to
#: be trusted: GMM-UBM scores of shorter tests scatter widely.
TRUSTED_SPEECH_S = 1.0


def extract_usable(
    recognizer: Recognizer,
    files: list[Path],
    *,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
) -> ExtractResult:
    """Features of ``files`` (found by :func:`find_audio_files`); DataError when ``skip_bad`` left none."""
    features = recognizer.extract(
        files, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    if not features:  # --skip-bad skipped every file: a failure, not an empty success
        raise DataError(
            f"no usable recording: all {len(files)} files were skipped; first: {features.skipped[0].reason}"
        )
    _warn_short(features, recognizer.feature_config.frame_shift_ms)
    return features


def _warn_short(features: ExtractResult, frame_shift_ms: float) -> None:
    """A warning per recording with less than :data:`TRUSTED_SPEECH_S` of speech: too short to trust."""
    for path, frames in zip(features.paths, features, strict=True):
        warn_if_short(path, len(frames), frame_shift_ms)


def warn_if_short(path: Path, n_frames: int, frame_shift_ms: float) -> None:
    speech_s = n_frames * frame_shift_ms / 1000.0
    if speech_s < TRUSTED_SPEECH_S:
        logger.warning(
            "%s: only %.2f s of speech, too short to trust the scores (%g s or more is advised)",
            path,
            speech_s,
            TRUSTED_SPEECH_S,
            extra={
                "spkid_kind": f"hold under {TRUSTED_SPEECH_S:g} s of speech (too short to trust)",
                "spkid_path": str(path),
            },
        )


class StepClock:
    """Adds the seconds since the previous call under each name given (nothing when ``into`` is None)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.last = into, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[name] = self.into.get(name, 0.0) + now - self.last
        self.last = now
