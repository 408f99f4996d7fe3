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

    Examples
    --------
    >>> from spkid.recognizer import Identification
    >>> found = Identification("test.wav", "spk01", [("spk01", 1.25), ("spk02", -0.5)])
    >>> found.to_dict()["scores"][0]
    {'speaker': 'spk01', 'score': 1.25}
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
    """What a model's scores are: ``"calibrated LLR ..."`` or ``"raw score: frame-averaged LLR ..."``.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import Recognizer, load_config, score_kind, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=2, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=2", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> score_kind(Recognizer.open(f"{tmp.name}/model"))  # no calibration stored yet
    'raw score: frame-averaged LLR (speaker vs UBM), not calibrated'
    >>> tmp.cleanup()
    """
    method = recognizer.score_config.normalization
    if calibrated and recognizer.calibrator is not None:
        return f"calibrated LLR (natural log; calibration of the model, normalization {method})"
    norm = "" if method == "none" else f", {method}-normalised"
    return f"raw score: frame-averaged LLR (speaker vs UBM{norm}), not calibrated"


@dataclass(frozen=True)
class IdentifyResult(_Results[Identification]):
    """Identifications in input order (skipped files left out), the skipped files, what the scores are.

    Examples
    --------
    >>> from spkid.recognizer import Identification, IdentifyResult
    >>> result = IdentifyResult([Identification("test.wav", "spk01", [("spk01", 1.25)])])
    >>> [found.speaker for found in result.results], result.skipped
    (['spk01'], [])
    """


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

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, identify, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> result = identify(model, [files[2] for files in corpus.values()], top_k=2)
    >>> [found.speaker for found in result.results]
    ['spk01', 'spk02', 'spk03']
    >>> len(result.results[0].scores)
    2
    >>> tmp.cleanup()
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
    """One recording checked against a claimed speaker.

    Examples
    --------
    >>> from spkid.recognizer import Verification
    >>> checked = Verification("test.wav", "spk01", score=1.25, threshold=3.0, accepted=False)
    >>> checked.to_dict()["accepted"]
    False
    """

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
    """Verifications in input order (skipped files left out) and the skipped files.

    Examples
    --------
    >>> from spkid.recognizer import Verification, VerifyResult
    >>> result = VerifyResult([Verification("test.wav", "spk01", 1.25, 3.0, False)])
    >>> [checked.accepted for checked in result.results], result.skipped
    ([False], [])
    """


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

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> from spkid.recognizer import verify
    >>> result = verify(model, "spk01", [corpus["spk01"][2], corpus["spk02"][2]], threshold=-2.0)
    >>> [(checked.speaker, checked.accepted) for checked in result.results]
    [('spk01', True), ('spk01', False)]
    >>> tmp.cleanup()
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
