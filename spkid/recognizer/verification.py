"""Verifying a claimed speaker: each recording scored against one enrolled speaker, accepted at a threshold.

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from spkid.audio import find_audio_files
from spkid.recognizer.bank_search import bank_or_none, verify_in_bank
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.recordings import StepClock, extract_usable
from spkid.recognizer.results import Verification, VerifyResult, score_kind
from spkid.recognizer.routing import join_routed, route_recordings
from spkid.score import start_kernels

__all__ = ["verify"]

PathLike = str | os.PathLike[str]


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
    timings: dict[str, float] | None = None,
) -> VerifyResult:
    """Score recordings against one claimed speaker; accept when the score reaches the threshold.

    The default threshold is :func:`identify`'s open-set threshold. ``timings`` is filled as
    :func:`identify` fills it (``model_s``, ``bank_s``, ``features_s``, ``kernels_s``, ``scoring_s``).

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
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=4, duration_s=3.0)
    >>> # one front-end: these synthetic voices differ below 4 kHz only (features.bands: auto adds 4-7.6 kHz)
    >>> settings = ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2", "features.bands=single"]
    >>> config = load_config(None, settings)
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:3] for name, files in corpus.items()})
    >>> from spkid.recognizer import verify
    >>> result = verify(model, "spk01", [corpus["spk01"][3], corpus["spk02"][3]], threshold=-2.0)
    >>> [(checked.speaker, checked.accepted) for checked in result.results]
    [('spk01', True), ('spk01', False)]
    >>> tmp.cleanup()
    """
    files = find_audio_files(list(recordings))
    options = {
        "threshold": threshold,
        "n_jobs": n_jobs,
        "skip_bad": skip_bad,
        "progress": progress,
        "cache_dir": cache_dir,
        "timings": timings,
    }
    parts = [
        _verify_with(model, speaker, part, **options)
        for model, part in route_recordings(model_dir, files, speaker=speaker)
    ]
    return join_routed(files, parts)


def _verify_with(
    model_dir: PathLike,
    speaker: str,
    files: list[Path],
    *,
    threshold: float | None,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
    timings: dict[str, float] | None,
) -> VerifyResult:
    """:func:`verify` on one model directory and the audio files found."""
    clock = StepClock(timings)
    recognizer = Recognizer.open(model_dir)
    clock("model_s")
    view = bank_or_none(recognizer)
    clock("bank_s")
    if view is not None and speaker not in view.names:
        recognizer.speakers([speaker])  # the "not enrolled" error, before any extraction
    models = recognizer.speakers([speaker]) if view is None else {}
    features = extract_usable(
        recognizer,
        files,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress,
        cache_dir=cache_dir,
    )
    clock("features_s")
    start_kernels()
    clock("kernels_s")
    if view is not None:
        scores, default = verify_in_bank(recognizer, view, speaker, features)
    else:
        scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))[:, 0]
        default = float(recognizer.default_thresholds(models)[0])
    clock("scoring_s")
    cutoff = default if threshold is None else float(threshold)
    results = [
        Verification(str(path), speaker, float(value), cutoff, bool(value >= cutoff))
        for path, value in zip(features.paths, scores, strict=True)
    ]
    return VerifyResult(results=results, skipped=list(features.skipped), kind=score_kind(recognizer))
