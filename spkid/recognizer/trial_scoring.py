"""Scoring trial lists: Kaldi or VoxCeleb trials against enrolled speakers or recordings, to a score file.

Scores are what verification decides on (:mod:`spkid.recognizer.verification`): the stored normalisation
of frame-averaged LLRs, mapped through the model's calibrator when it has one; the score file's ``#`` first
line says which.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spkid.blas import thread_limits
from spkid.errors import DataError, SpkidError
from spkid.features import SkippedFile
from spkid.gmm import MixtureParameters
from spkid.metrics import RecordingResolver, ScoredTrial, Trial, read_trial_list, write_scores
from spkid.recognizer.batch import run_tasks, runs_of, wants_workers, worker_model
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.results import score_kind
from spkid.recognizer.routing import recordings_of, route_trials

__all__ = ["ScoreResult", "score_recordings", "score_task", "score_trials"]

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)


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
    allow_none: bool = False,
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

    allow_none : bool
        Return an empty list when no trial can be scored, instead of raising :class:`DataError`.

    Returns
    -------
    scored : list of ScoredTrial
        In trial order; trials that lost a recording to ``skip_bad`` are left out.
    skipped : list of SkippedFile

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
    >>> from spkid.metrics import Trial
    >>> from spkid.recognizer import Recognizer, score_recordings
    >>> trials = [Trial("spk01", "test"), Trial("spk02_01", "test")]  # an enrolled speaker, a recording
    >>> scored, skipped = score_recordings(
    ...     Recognizer.open(model),
    ...     trials,
    ...     enroll_recordings={"spk02_01": corpus["spk02"][:1]},
    ...     test_recordings={"test": corpus["spk01"][2]},
    ... )
    >>> [(trial.enroll, trial.test) for trial in scored], skipped
    ([('spk01', 'test'), ('spk02_01', 'test')], [])
    >>> tmp.cleanup()
    """
    enrolled = set(recognizer.store.speakers())
    files = [*(f for paths in enroll_recordings.values() for f in paths), *test_recordings.values()]
    extracted = recognizer.extract(
        list(dict.fromkeys(files)), n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    features_of = dict(zip(extracted.paths, extracted, strict=True))
    stored = sorted({trial.enroll for trial in trials if trial.enroll in enrolled})
    loaded = recognizer.speakers(stored) if stored else {}
    adapted: dict[str, MixtureParameters] = {}
    by_position: dict[int, ScoredTrial] = {}
    for run in runs_of(list(test_recordings)):  # the runs workers would score (identical scores either way)
        in_run = set(run)
        positions = [number for number, trial in enumerate(trials) if trial.test in in_run]
        enrolls = {trials[number].enroll for number in positions}
        models = {name: loaded[name] for name in sorted(enrolls & loaded.keys())}
        for identifier, paths in enroll_recordings.items():
            if identifier in enrolls and identifier not in models:
                usable = [features_of[path] for path in paths if path in features_of]
                if usable and identifier not in adapted:
                    adapted[identifier] = recognizer.adapt(usable)
                if usable:
                    models[identifier] = adapted[identifier]
        test_ids = [identifier for identifier in run if test_recordings[identifier] in features_of]
        test_index = {identifier: index for index, identifier in enumerate(test_ids)}
        model_index = {identifier: index for index, identifier in enumerate(models)}
        usable_positions = [
            n for n in positions if trials[n].enroll in model_index and trials[n].test in test_index
        ]
        values = recognizer.score_pairs(
            models,
            [features_of[test_recordings[identifier]] for identifier in test_ids],
            [(model_index[trials[n].enroll], test_index[trials[n].test]) for n in usable_positions],
            progress=progress,
        )
        for n, value in zip(usable_positions, values, strict=True):
            by_position[n] = ScoredTrial(trials[n].enroll, trials[n].test, float(value))
    if not by_position and not allow_none:
        raise DataError(f"no trial can be scored: {len(extracted.skipped)} recordings were skipped")
    scored = [by_position[n] for n in sorted(by_position)]
    return scored, list(extracted.skipped)


@dataclass(frozen=True)
class ScoreResult:
    """A scored trial list: where the scores went, how many trials were scored and how many were not.

    Examples
    --------
    >>> from pathlib import Path
    >>> from spkid.recognizer import ScoreResult
    >>> result = ScoreResult(Path("scores.txt"), n_scored=9, n_unscored=1)
    >>> result.n_scored + result.n_unscored, result.skipped
    (10, [])
    """

    output: Path
    n_scored: int
    n_unscored: int
    skipped: list[SkippedFile] = field(default_factory=list)
    kind: str = ""  # what the scores are, as the file's "#" first line says (see score_kind)


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
    calibrated: bool = True,
    backend: str = "local",
    scheduler: str | None = None,
) -> ScoreResult:
    """Score a Kaldi or VoxCeleb trial list and write ``enroll test score`` lines to ``output``.

    The scores are what :func:`verify` decides on: calibrated LLRs when the model holds a calibration
    (``calibrated=False``: the raw, possibly normalised, scores); the file's first line, a ``#`` comment,
    says which (:func:`score_kind`).

    An enroll id that is an enrolled speaker uses the stored model; otherwise it must name a recording,
    from which a model is MAP-adapted on the fly (VoxCeleb utterance-against-utterance trials). Test ids
    name recordings; see :mod:`spkid.metrics.trials` for how ids are found under ``audio_root``.

    A long list can be scored on workers: ``backend`` ``"joblib"``, or ``"local"`` with ``n_jobs`` above 1
    (worker processes here), or ``"dask"`` (the cluster at ``scheduler``, else a local one; the model
    directory and audio on a filesystem the workers share). Runs of trials go to the workers, each holding
    the model open; the scores are the serial ones, in trial order.

    Raises
    ------
    StoreError
        No model.
    DataError
        A malformed list, or an id that names neither an enrolled speaker nor a recording (checked before
        any feature extraction).

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, score_trials, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> from pathlib import Path
    >>> trials = Path(tmp.name, "trials.txt")  # Kaldi format; test ids are found by file stem
    >>> _ = trials.write_text("spk01 spk01_03 target\\nspk01 spk02_03 nontarget\\n")
    >>> result = score_trials(model, trials, output=f"{tmp.name}/scores.txt", audio_root=f"{tmp.name}/audio")
    >>> result.n_scored, result.n_unscored
    (2, 0)
    >>> print(result.output.read_text(), end="")
    # spkid scores: raw score: frame-averaged LLR (speaker vs UBM), not calibrated
    spk01 spk01_03 ...
    spk01 spk02_03 ...
    >>> tmp.cleanup()
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
    started = time.perf_counter()
    position = {(trial.enroll, trial.test): number for number, trial in enumerate(trial_list.trials)}
    scored: list[ScoredTrial] = []
    skipped: list[SkippedFile] = []
    routes = route_trials(model_dir, trial_list.trials, enroll_recordings, test_recordings)
    common = {"n_jobs": n_jobs, "skip_bad": skip_bad, "cache_dir": cache_dir, "allow_none": len(routes) > 1}
    for scoring_dir, trials_here in routes:  # one model, or the companion's share first (bands.py)
        recordings = recordings_of(
            trials_here, {"enroll_recordings": enroll_recordings, "test_recordings": test_recordings}
        )
        if wants_workers(backend, n_jobs, len(runs_of(list(recordings["test_recordings"])))):
            part, skipped_here = _score_on_workers(
                scoring_dir, trials_here, recordings, backend=backend, scheduler=scheduler, **common
            )
        else:
            scoring = recognizer if scoring_dir == Path(model_dir) else Recognizer.open(scoring_dir)
            part, skipped_here = score_recordings(
                scoring, trials_here, progress=progress, **common, **recordings
            )
        scored += part
        skipped += skipped_here
    if not scored:
        raise DataError(f"no trial can be scored: {len(skipped)} recordings were skipped")
    if len(routes) > 1:
        scored.sort(key=lambda item: position[(item.enroll, item.test)])
    if calibrated and recognizer.calibrator is not None:
        values = recognizer.calibrated(np.array([item.score for item in scored]))
        scored = [ScoredTrial(t.enroll, t.test, float(v)) for t, v in zip(scored, values, strict=True)]
    logger.info(
        "scored %d of %d trials (%d test recordings) in %.2f s",
        len(scored),
        len(trial_list.trials),
        len(test_recordings),
        time.perf_counter() - started,
    )
    kind = score_kind(recognizer, calibrated=calibrated)
    write_scores(output, scored, header=f"spkid scores: {kind}")
    return ScoreResult(Path(output), len(scored), len(trial_list.trials) - len(scored), skipped, kind)


def _score_on_workers(
    model_dir: PathLike,
    trials: Sequence[Trial],
    recordings: dict[str, dict],
    *,
    backend: str,
    scheduler: str | None,
    n_jobs: int,
    skip_bad: bool,
    cache_dir: PathLike | None,
    allow_none: bool = False,
) -> tuple[list[ScoredTrial], list[SkippedFile]]:
    """Runs of consecutive trials scored on workers; in trial order, the first error (in order) raised."""
    test_recordings = recordings["test_recordings"]
    runs = []
    for run in runs_of(list(test_recordings)):
        in_run = set(run)
        run_trials = [trial for trial in trials if trial.test in in_run]
        runs.append((run_trials, recordings_of(run_trials, recordings)))
    done = dict(
        run_tasks(
            score_task,
            runs,
            backend=backend,
            scheduler=scheduler,
            n_jobs=n_jobs,
            model_dir=str(model_dir),
            skip_bad=skip_bad,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    )
    by_pair: dict[tuple[str, str], ScoredTrial] = {}
    skipped: dict[Path, SkippedFile] = {}
    for index in range(len(runs)):
        outcome = done[index]
        if isinstance(outcome, SpkidError):
            raise outcome
        by_pair.update(((item.enroll, item.test), item) for item in outcome[0])
        skipped.update((item.path, item) for item in outcome[1])
    scored = [by_pair[(t.enroll, t.test)] for t in trials if (t.enroll, t.test) in by_pair]
    if not scored and not allow_none:
        raise DataError(f"no trial can be scored: {len(skipped)} recordings were skipped")
    return scored, list(skipped.values())


def score_task(
    item: tuple[list[Trial], dict[str, dict]],
    *,
    model_dir: str,
    skip_bad: bool,
    cache_dir: str | None,
    n_threads: int | None,
) -> tuple[list[ScoredTrial], list[SkippedFile]] | SpkidError:
    """On a worker: a run of trials scored with the model it holds open (an error as the value)."""
    trials, recordings = item
    try:
        with thread_limits(n_threads):
            return score_recordings(
                worker_model(model_dir),
                trials,
                skip_bad=skip_bad,
                cache_dir=cache_dir,
                allow_none=True,
                **recordings,
            )
    except SpkidError as error:
        return error
