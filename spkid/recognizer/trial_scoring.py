"""Scoring trial lists against an enrolled model: stored speakers, or models adapted on the fly.

Scores are the stored normalisation of frame-averaged LLRs (see :mod:`spkid.recognizer.identification`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spkid.errors import DataError
from spkid.features import SkippedFile
from spkid.metrics import RecordingResolver, ScoredTrial, Trial, read_trial_list, write_scores
from spkid.recognizer.recognizer import Recognizer

__all__ = ["ScoreResult", "score_recordings", "score_trials"]

PathLike = str | os.PathLike[str]


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
