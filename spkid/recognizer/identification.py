"""Using an enrolled model: identify recordings, verify a claimed speaker, score trial lists.

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from spkid.audio import find_audio_files
from spkid.errors import DataError
from spkid.features import ExtractResult, SkippedFile
from spkid.metrics import RecordingResolver, ScoredTrial, Trial, read_trial_list, write_scores
from spkid.recognizer.recognizer import Recognizer
from spkid.score import UNKNOWN

__all__ = [
    "Identification",
    "IdentifyResult",
    "ScoreResult",
    "Verification",
    "VerifyResult",
    "identify",
    "score_recordings",
    "score_trials",
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
    return VerifyResult(results=results, skipped=list(features.skipped))


def score_recordings(
    recognizer: Recognizer,
    trials: Sequence[Trial],
    *,
    enroll_recordings: Mapping[str, Sequence[Path]],
    test_recordings: Mapping[str, Path],
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: PathLike | None = None,
) -> tuple[list[ScoredTrial], list[SkippedFile]]:
    """Score trials whose models are enrolled speakers or are adapted on the fly from recordings.

    Parameters
    ----------
    recognizer : Recognizer
    trials : sequence of Trial
    enroll_recordings : mapping of str to sequence of Path
        Recordings of each enroll id that is not an enrolled speaker (a model is MAP-adapted from them).
    test_recordings : mapping of str to Path
        The recording of every test id.

    Returns
    -------
    scored : list of ScoredTrial
        In trial order; trials that lost a recording to ``skip_bad`` are left out.
    skipped : list of SkippedFile
    """
    enrolled = set(recognizer.store.speakers())
    files = [*(f for paths in enroll_recordings.values() for f in paths), *test_recordings.values()]
    extracted = recognizer.extract(
        list(dict.fromkeys(files)), n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    features_of = dict(zip(extracted.paths, extracted, strict=True))
    stored = sorted({trial.enroll for trial in trials if trial.enroll in enrolled})
    models = recognizer.speakers(stored) if stored else {}
    for identifier, paths in enroll_recordings.items():
        if identifier in models:
            continue
        usable = [features_of[path] for path in paths if path in features_of]
        if usable:
            models[identifier] = recognizer.adapt(usable)
    test_ids = [identifier for identifier, path in test_recordings.items() if path in features_of]
    test_index = {identifier: index for index, identifier in enumerate(test_ids)}
    model_index = {identifier: index for index, identifier in enumerate(models)}
    usable_trials = [trial for trial in trials if trial.enroll in model_index and trial.test in test_index]
    if not usable_trials:
        raise DataError(f"no trial can be scored: {len(extracted.skipped)} recordings were skipped")
    values = recognizer.score_pairs(
        models,
        [features_of[test_recordings[identifier]] for identifier in test_ids],
        [(model_index[trial.enroll], test_index[trial.test]) for trial in usable_trials],
        progress=progress,
    )
    scored = [ScoredTrial(t.enroll, t.test, float(v)) for t, v in zip(usable_trials, values, strict=True)]
    return scored, list(extracted.skipped)


@dataclass(frozen=True)
class ScoreResult:
    """A scored trial list: where the scores went, how many trials were scored and how many were not."""

    output: Path
    n_scored: int
    n_unscored: int
    skipped: list[SkippedFile] = field(default_factory=list)


def score_trials(
    model_dir: PathLike,
    trials: PathLike,
    *,
    output: PathLike,
    audio_root: PathLike | None = None,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: PathLike | None = None,
) -> ScoreResult:
    """Score a Kaldi or VoxCeleb trial list and write ``enroll test score`` lines to ``output``.

    An enroll id that is an enrolled speaker uses the stored model; otherwise it must name a recording,
    from which a model is MAP-adapted on the fly (VoxCeleb utterance-against-utterance trials). Test ids
    name recordings; see :mod:`spkid.metrics.trials` for how ids are found under ``audio_root``.

    Raises
    ------
    StoreError
        No model.
    DataError
        A malformed list, or an id that names neither an enrolled speaker nor a recording (checked before
        any feature extraction).
    """
    recognizer = Recognizer.open(model_dir)
    trial_list = read_trial_list(trials)
    resolver = RecordingResolver(audio_root)
    enrolled = set(recognizer.store.speakers())
    enroll_recordings: dict[str, list[Path]] = {}
    test_recordings: dict[str, Path] = {}
    for number, trial in enumerate(trial_list.trials, start=1):
        where = f"{trial_list.path}: trial {number}"
        if trial.enroll not in enrolled and trial.enroll not in enroll_recordings:
            path = resolver.find(trial.enroll)
            if path is None:
                root = "" if audio_root is None else f" under {audio_root}"
                raise DataError(
                    f"{where}: {trial.enroll!r} is neither an enrolled speaker nor a recording{root}"
                )
            enroll_recordings[trial.enroll] = [path]
        if trial.test not in test_recordings:
            test_recordings[trial.test] = resolver.require(trial.test, where)
    scored, skipped = score_recordings(
        recognizer,
        trial_list.trials,
        enroll_recordings=enroll_recordings,
        test_recordings=test_recordings,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress,
        cache_dir=cache_dir,
    )
    write_scores(output, scored)
    return ScoreResult(Path(output), len(scored), len(trial_list.trials) - len(scored), skipped)
