"""Using an enrolled model: identify recordings (a claimed speaker: ``verification``; trial lists:
``trial_scoring``).

Scores are the stored normalisation of frame-averaged LLRs, mapped through the model's calibrator when it
has one; the default decision thresholds are documented in :mod:`spkid.recognizer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from spkid.audio import find_audio_files
from spkid.errors import DataError, SpkidError
from spkid.recognizer.bank_search import bank_or_none
from spkid.recognizer.batch import (
    Ranked,
    identify_task,
    rank_in_bank,
    rank_with_models,
    run_tasks,
    runs_of,
    wants_workers,
)
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.recordings import StepClock, extract_usable, warn_if_short
from spkid.recognizer.results import (
    Identification,
    IdentifyResult,
    score_kind,
)
from spkid.recognizer.routing import join_routed, route_recordings
from spkid.score import start_kernels

__all__ = [
    "Identification",
    "IdentifyResult",
    "identify",
    "score_kind",
]

PathLike = str | os.PathLike[str]


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
    backend: str = "local",
    scheduler: str | None = None,
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
    backend, scheduler
        Where a batch runs: ``"local"`` (this machine; with ``n_jobs`` above 1 and enough recordings,
        runs of them are identified in joblib worker processes, each holding the bank open), ``"joblib"``,
        or ``"dask"`` (the cluster at ``scheduler``, else a local one of ``n_jobs`` workers; the model
        directory must be on a filesystem the workers share). Results are the serial ones, in input order.
    timings : dict, optional
        Filled with the seconds spent opening the model (``model_s``: settings, UBM, cohort), opening the
        bank (``bank_s``, when scoring reads it), extracting features (``features_s``), starting the
        compiled scoring kernels (``kernels_s``, ~0.3 s once per process) and scoring (``scoring_s``; with
        the per-file path, loading the speakers too); on workers ``workers_s`` is those last three.

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
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=4, duration_s=3.0)
    >>> # one front-end: these synthetic voices differ below 4 kHz only (features.bands: auto adds 4-7.6 kHz)
    >>> settings = ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2", "features.bands=single"]
    >>> config = load_config(None, settings)
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:3] for name, files in corpus.items()})
    >>> result = identify(model, [files[3] for files in corpus.values()], top_k=2)
    >>> [found.speaker for found in result.results]
    ['spk01', 'spk02', 'spk03']
    >>> len(result.results[0].scores)
    2
    >>> tmp.cleanup()
    """
    if top_k < 0:
        raise DataError(f"top_k={top_k}: must be 0 (all speakers) or more")
    files = find_audio_files(list(recordings))
    options = {
        "top_k": top_k,
        "open_set": open_set,
        "threshold": threshold,
        "n_jobs": n_jobs,
        "skip_bad": skip_bad,
        "progress": progress,
        "cache_dir": cache_dir,
        "timings": timings,
        "backend": backend,
        "scheduler": scheduler,
    }
    parts = [_identify_with(model, part, **options) for model, part in route_recordings(model_dir, files)]
    return join_routed(files, parts)


def _identify_with(
    model_dir: PathLike,
    files: list[Path],
    *,
    top_k: int,
    open_set: bool,
    threshold: float | None,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
    timings: dict[str, float] | None,
    backend: str,
    scheduler: str | None,
) -> IdentifyResult:
    """:func:`identify` on one model directory and the audio files found."""
    clock = StepClock(timings)
    recognizer = Recognizer.open(model_dir)
    clock("model_s")
    view = bank_or_none(recognizer)  # repaired here, before any worker
    clock("bank_s")
    settings = {"top_k": top_k, "open_set": open_set, "threshold": threshold}
    if wants_workers(backend, n_jobs, len(runs_of(files))):
        if view is None:
            recognizer.speakers([])  # the "no speakers enrolled" error before any work
        return _identify_on_workers(
            model_dir,
            files,
            settings,
            backend=backend,
            scheduler=scheduler,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            cache_dir=cache_dir,
            frame_shift_ms=recognizer.feature_config.frame_shift_ms,
            kind=score_kind(recognizer),
            clock=clock,
        )
    models = recognizer.speakers() if view is None else {}
    features = extract_usable(
        recognizer, files, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    clock("features_s")
    start_kernels()
    clock("kernels_s")
    features_of = dict(zip(features.paths, features, strict=True))
    results = []
    for run in runs_of(files):  # the runs workers would score (identical scores either way)
        paths = [path for path in run if path in features_of]
        usable = [features_of[path] for path in paths]
        if view is not None and usable:
            results.extend(rank_in_bank(recognizer, view, usable, paths, **settings))
        elif usable:
            results.extend(rank_with_models(recognizer, models, usable, paths, progress=progress, **settings))
    clock("scoring_s")
    return IdentifyResult(results=results, skipped=list(features.skipped), kind=score_kind(recognizer))


def _identify_on_workers(
    model_dir: PathLike,
    files: list[Path],
    settings: dict,
    *,
    backend: str,
    scheduler: str | None,
    n_jobs: int,
    skip_bad: bool,
    cache_dir: PathLike | None,
    frame_shift_ms: float,
    kind: str,
    clock: StepClock,
) -> IdentifyResult:
    """Runs of ``files`` identified on workers, each holding the model and its bank open; input order."""
    runs = runs_of(files)
    done: dict[int, Ranked | SpkidError] = dict(
        run_tasks(
            identify_task,
            runs,
            backend=backend,
            scheduler=scheduler,
            n_jobs=n_jobs,
            model_dir=str(model_dir),
            skip_bad=skip_bad,
            cache_dir=None if cache_dir is None else str(cache_dir),
            **settings,
        )
    )
    clock("workers_s")
    ordered = [done[index] for index in range(len(runs))]
    for outcome in ordered:
        if isinstance(outcome, SpkidError):
            raise outcome
    results = [found for outcome in ordered for found in outcome.results]
    skipped = [item for outcome in ordered for item in outcome.skipped]
    if not results:
        raise DataError(
            f"no usable recording: all {len(files)} files were skipped; first: {skipped[0].reason}"
        )
    for found, n_frames in zip(results, (n for outcome in ordered for n in outcome.n_frames), strict=True):
        warn_if_short(Path(found.recording), n_frames, frame_shift_ms)
    return IdentifyResult(results=results, skipped=skipped, kind=kind)
