"""Using an enrolled model: identify recordings, verify a claimed speaker (trial lists: ``trial_scoring``).

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

import numpy as np

from spkid.audio import find_audio_files
from spkid.errors import DataError
from spkid.features import ExtractResult
from spkid.recognizer.bank_search import (
    bank_usable,
    identify_in_bank,
    open_bank,
    verify_in_bank,
)
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.results import (
    Identification,
    IdentifyResult,
    Verification,
    VerifyResult,
    score_kind,
)

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


class _Clock:
    """Records the seconds since the previous call under each name given (nothing when ``into`` is None)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.last = into, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[name] = now - self.last
        self.last = now


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
        Reject (``speaker`` None, ``accepted`` False) when even the best score is below the threshold.
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
            Identification(str(path), best, ranked, accepted=accepted, threshold=cutoff)
            for path, (best, ranked, accepted, cutoff) in zip(
                features.paths,
                identify_in_bank(recognizer, view, features, top_k, open_set, threshold),
                strict=True,
            )
        ]
        clock("scoring_s")
        return IdentifyResult(results=results, skipped=list(features.skipped), kind=score_kind(recognizer))
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
        cutoff = float(cutoffs[order[0]]) if open_set else None
        accepted = cutoff is None or bool(row[order[0]] >= cutoff)
        ranked = [(names[i], float(row[i])) for i in order[:limit]]
        best = names[order[0]] if accepted else None
        results.append(Identification(str(path), best, ranked, accepted=accepted, threshold=cutoff))
    kind = score_kind(recognizer)
    return IdentifyResult(results=results, skipped=list(features.skipped), kind=kind)


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
    return VerifyResult(results=results, skipped=list(features.skipped), kind=score_kind(recognizer))
