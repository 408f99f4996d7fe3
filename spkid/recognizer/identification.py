"""Using an enrolled model: identify recordings and verify a claimed speaker (trial lists: trial_scoring).

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from spkid.audio import find_audio_files
from spkid.errors import DataError
from spkid.features import ExtractResult, SkippedFile
from spkid.recognizer.bank_search import (
    bank_usable,
    identify_in_bank,
    open_bank,
    verify_in_bank,
)
from spkid.recognizer.recognizer import Recognizer
from spkid.score import UNKNOWN

__all__ = [
    "Identification",
    "IdentifyResult",
    "Verification",
    "VerifyResult",
    "identify",
    "verify",
]

PathLike = str | os.PathLike[str]
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class _Results(Generic[Outcome]):
    """Outcomes in input order (skipped files left out) and the skipped files."""

    results: list[Outcome]
    skipped: list[SkippedFile] = field(default_factory=list)


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
    return features


class _Clock:
    """Records the seconds since the previous call under each name given (nothing when ``into`` is None)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.last = into, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[name] = now - self.last
        self.last = now


@dataclass(frozen=True)
class Identification:
    """One recording identified: the best speaker (or ``"unknown"``) and the ranked scores, best first."""

    recording: str
    speaker: str
    scores: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """``{"recording", "speaker", "scores": [{"speaker", "score"}, ...]}`` (the ``--json`` form)."""
        return {
            "recording": self.recording,
            "speaker": self.speaker,
            "scores": [{"speaker": name, "score": score} for name, score in self.scores],
        }


@dataclass(frozen=True)
class IdentifyResult(_Results[Identification]):
    """Identifications in input order (skipped files left out) and the skipped files."""


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
    timings: dict[str, float] | None = None,
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
        Answer ``"unknown"`` when even the best score is below ``threshold``.
    threshold : float, optional
        Default :meth:`spkid.recognizer.Recognizer.default_thresholds`: the Bayes threshold at
        p_target 0.01 with a calibrator, 3 on normalised scores, else each speaker's cohort threshold
        on raw LLRs (its impostor-score mean plus 3 standard deviations).
    n_jobs, skip_bad, progress, cache_dir
        As for :func:`spkid.features.extract_many`.
    timings : dict, optional
        Filled with the seconds spent opening the model (``model_s``: settings, UBM, cohort), opening the
        bank (``bank_s``, when scoring reads it), extracting features (``features_s``) and scoring
        (``scoring_s``; with the per-file path, loading the speakers too).

    Raises
    ------
    StoreError
        No model, or no speakers enrolled (checked before any feature extraction).
    """
    if top_k < 0:
        raise DataError(f"top_k={top_k}: must be 0 (all speakers) or more")
    clock = _Clock(timings)
    recognizer = Recognizer.open(model_dir)
    clock("model_s")
    if bank_usable(recognizer):
        view = open_bank(recognizer)
        clock("bank_s")
        features = _extract_usable(
            recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
        )
        clock("features_s")
        results = [
            Identification(recording=str(path), speaker=best, scores=ranked)
            for path, (best, ranked) in zip(
                features.paths,
                identify_in_bank(recognizer, view, features, top_k, open_set, threshold),
                strict=True,
            )
        ]
        clock("scoring_s")
        return IdentifyResult(results=results, skipped=list(features.skipped))
    models = recognizer.speakers()
    features = _extract_usable(
        recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    clock("features_s")
    scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))
    clock("scoring_s")
    names = list(models)
    limit = len(names) if top_k == 0 else min(top_k, len(names))
    cutoffs = np.full(len(names), np.nan if threshold is None else float(threshold))
    if open_set and threshold is None:
        cutoffs = recognizer.default_thresholds(models)
    results = []
    for path, row in zip(features.paths, scores, strict=True):
        order = np.argsort(-row, kind="stable")
        best = names[order[0]] if not (open_set and row[order[0]] < cutoffs[order[0]]) else UNKNOWN
        ranked = [(names[i], float(row[i])) for i in order[:limit]]
        results.append(Identification(recording=str(path), speaker=best, scores=ranked))
    return IdentifyResult(results=results, skipped=list(features.skipped))


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
    if bank_usable(recognizer):
        view = open_bank(recognizer)
        if speaker not in view.names:
            recognizer.speakers([speaker])  # the "not enrolled" error, before any extraction
        features = _extract_usable(
            recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
        )
        scores, default = verify_in_bank(recognizer, view, speaker, features)
    else:
        models = recognizer.speakers([speaker])
        features = _extract_usable(
            recognizer, recordings, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
        )
        scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))[:, 0]
        default = float(recognizer.default_thresholds(models)[0])
    cutoff = default if threshold is None else float(threshold)
    results = [
        Verification(str(path), speaker, float(value), cutoff, bool(value >= cutoff))
        for path, value in zip(features.paths, scores, strict=True)
    ]
    return VerifyResult(results=results, skipped=list(features.skipped))
