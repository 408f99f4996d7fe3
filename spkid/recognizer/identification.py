"""Using an enrolled model: identify recordings, verify a claimed speaker (trial lists: ``trial_scoring``).

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from spkid.audio import find_audio_files
from spkid.errors import DataError
from spkid.features import ExtractResult, SkippedFile
from spkid.recognizer.recognizer import Recognizer

__all__ = [
    "Identification",
    "IdentifyResult",
    "Verification",
    "VerifyResult",
    "identify",
    "score_kind",
    "verify",
]

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)
#: Seconds of speech (after VAD) below which identify and verify warn that a recording's scores are not to
#: be trusted: GMM-UBM scores of shorter tests scatter widely.
TRUSTED_SPEECH_S = 1.0
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class _Results(Generic[Outcome]):
    """Outcomes in input order (skipped files left out), the skipped files, what the scores are."""

    results: list[Outcome]
    skipped: list[SkippedFile] = field(default_factory=list)
    kind: str = ""  # score_kind(): "calibrated LLR ..." or "raw score: frame-averaged LLR ..."


def _extract_usable(
    recognizer: Recognizer,
    recordings: Iterable[PathLike],
    *,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
) -> ExtractResult:
    """Features of the audio files under ``recordings``; DataError when ``skip_bad`` left none."""
    files = find_audio_files(list(recordings))
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
        speech_s = len(frames) * frame_shift_ms / 1000.0
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


@dataclass(frozen=True)
class Identification:
    """One recording identified: the best speaker and the ranked scores, best first.

    In open-set identification ``threshold`` is the score the best speaker had to reach; a rejection has
    ``speaker`` None and ``accepted`` False (no name is reserved: a speaker may be enrolled as "unknown").
    Closed-set results are always accepted and carry ``threshold`` None.
    """

    recording: str
    speaker: str | None
    scores: list[tuple[str, float]]
    accepted: bool = True
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"recording", "speaker", "accepted", "threshold", "scores": [{"speaker", "score"}, ...]}``."""
        return {
            "recording": self.recording,
            "speaker": self.speaker,
            "accepted": self.accepted,
            "threshold": self.threshold,
            "scores": [{"speaker": name, "score": score} for name, score in self.scores],
        }


def score_kind(recognizer: Recognizer, *, calibrated: bool = True) -> str:
    """What a model's scores are: ``"calibrated LLR ..."`` or ``"raw score: frame-averaged LLR ..."``."""
    method = recognizer.score_config.normalization
    if calibrated and recognizer.calibrator is not None:
        return f"calibrated LLR (natural log; calibration of the model, normalization {method})"
    norm = "" if method == "none" else f", {method}-normalised"
    return f"raw score: frame-averaged LLR (speaker vs UBM{norm}), not calibrated"


@dataclass(frozen=True)
class IdentifyResult(_Results[Identification]):
    """Identifications in input order (skipped files left out), the skipped files, what the scores are."""


def identify(
    model_dir: PathLike,
    recordings: Iterable[PathLike],
    *,
    top_k: int = 5,
    open_set: bool = False,
    threshold: float | None = None,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: PathLike | None = None,
) -> IdentifyResult:
    """Rank every enrolled speaker for each recording.

    Parameters
    ----------
    model_dir : path
    recordings : iterable of path
        Audio files, or folders searched recursively.
    top_k : int
        Speakers listed per recording; 0 lists all.
    open_set : bool
        Reject (``speaker`` None, ``accepted`` False) when even the best score is below the threshold.
    threshold : float, optional
        Default :meth:`spkid.recognizer.Recognizer.default_thresholds`: the Bayes threshold at
        p_target 0.01 with a calibrator, 3 on normalised scores, else each speaker's cohort threshold
        on raw LLRs (its impostor-score mean plus 3 standard deviations).
    n_jobs, skip_bad, progress, cache_dir
        As for :func:`spkid.features.extract_many`.

    Raises
    ------
    StoreError
        No model, or no speakers enrolled (checked before any feature extraction).
    """
    if top_k < 0:
        raise DataError(f"top_k={top_k}: must be 0 (all speakers) or more")
    recognizer = Recognizer.open(model_dir)
    models = recognizer.speakers()
    features = _extract_usable(
        recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))
    names = list(models)
    limit = len(names) if top_k == 0 else min(top_k, len(names))
    cutoffs = np.full(len(names), np.nan if threshold is None else float(threshold))
    if open_set and threshold is None:
        cutoffs = recognizer.default_thresholds(models)
    results = []
    for path, row in zip(features.paths, scores, strict=True):
        order = np.argsort(-row, kind="stable")
        cutoff = float(cutoffs[order[0]]) if open_set else None
        accepted = cutoff is None or bool(row[order[0]] >= cutoff)
        ranked = [(names[i], float(row[i])) for i in order[:limit]]
        best = names[order[0]] if accepted else None
        results.append(Identification(str(path), best, ranked, accepted=accepted, threshold=cutoff))
    kind = score_kind(recognizer)
    return IdentifyResult(results=results, skipped=list(features.skipped), kind=kind)


@dataclass(frozen=True)
class Verification:
    """One recording checked against a claimed speaker."""

    recording: str
    speaker: str
    score: float
    threshold: float
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "speaker": self.speaker,
            "score": self.score,
            "threshold": self.threshold,
            "accepted": self.accepted,
        }


@dataclass(frozen=True)
class VerifyResult(_Results[Verification]):
    """Verifications in input order (skipped files left out) and the skipped files."""


def verify(
    model_dir: PathLike,
    speaker: str,
    recordings: Iterable[PathLike],
    *,
    threshold: float | None = None,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: PathLike | None = None,
) -> VerifyResult:
    """Score recordings against one claimed speaker; accept when the score reaches the threshold.

    The default threshold is :func:`identify`'s open-set threshold.

    Raises
    ------
    StoreError
        No model, or ``speaker`` is not enrolled (checked before any feature extraction).
    """
    recognizer = Recognizer.open(model_dir)
    models = recognizer.speakers([speaker])
    features = _extract_usable(
        recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))[:, 0]
    cutoff = float(recognizer.default_thresholds(models)[0]) if threshold is None else float(threshold)
    results = [
        Verification(str(path), speaker, float(value), cutoff, bool(value >= cutoff))
        for path, value in zip(features.paths, scores, strict=True)
    ]
    return VerifyResult(results=results, skipped=list(features.skipped), kind=score_kind(recognizer))
