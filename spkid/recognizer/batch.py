"""Batch work on worker processes or a Dask cluster: enrolling many speakers, identifying many recordings.

Items (a speaker and its recordings; a run of recordings; a run of trials) go to the workers of a backend
of :mod:`spkid.ubm.backends` (joblib worker processes on this machine, or a Dask cluster). Each worker
opens the model directory once (settings, UBM, cohort, the memory-mapped speaker bank) and keeps it for
every item it gets, so the model directory must be on a filesystem the workers share. Workers extract
features and MAP-adapt or score; they write nothing: the main process stores what they return and puts
results in input order. An error a worker meets comes back as a value, so the main process keeps every
item that finished before it raises the first error (in input order).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spkid.blas import resolve_n_jobs, thread_limits
from spkid.errors import ConfigError, SpkidError
from spkid.features import SkippedFile
from spkid.gmm import MixtureParameters, SufficientStats
from spkid.recognizer.bank_search import bank_or_none, bank_usable, identify_in_bank
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.results import Identification, rank_rows
from spkid.store import SpeakerCohortStats
from spkid.store.bank import BankView
from spkid.store.layout import (
    BANK_DIR,
    CALIBRATION_FILE,
    COHORT_FILE,
    MANIFEST_FILE,
    SPEAKERS_DIR,
    file_stamps,
)

__all__ = [
    "BACKENDS",
    "Ranked",
    "SpeakerOutcome",
    "adapt_speaker",
    "RUN_ITEMS",
    "enroll_task",
    "identify_task",
    "rank_in_bank",
    "rank_with_models",
    "run_tasks",
    "runs_of",
    "worker_model",
    "wants_workers",
]

PathLike = str | os.PathLike[str]
BACKENDS = ("local", "joblib", "dask")
_CLI_OPTIONS = ("--backend", "--scheduler")
#: Recordings (identify) or test recordings (trial lists) scored together: one pass over the speaker bank
#: (:data:`spkid.score.bank_scoring.UTTERANCE_BATCH` utterances).
RUN_ITEMS = 256
#: What a worker process keeps open: ``{(what, model directory): (the files' stamp, the object)}``.
_OPENED: dict[tuple[str, str], tuple[tuple, Any]] = {}


def _held(what: str, path: Path, stamp: tuple, make: Callable[[], Any]) -> Any:
    held = _OPENED.get((what, str(path)))
    if held is None or held[0] != stamp:
        held = _OPENED[(what, str(path))] = (stamp, make())
    return held[1]


def worker_model(model_dir: PathLike) -> Recognizer:
    """The model at ``model_dir``, opened once per worker process (again when its files change)."""
    path = Path(model_dir).resolve()
    stamp = file_stamps(path / MANIFEST_FILE, path / CALIBRATION_FILE, path / COHORT_FILE)
    return _held("model", path, stamp, lambda: Recognizer.open(path))


def _worker_scoring(recognizer: Recognizer) -> BankView | dict[str, MixtureParameters]:
    """What identification reads, opened once per worker: the bank (when the scoring settings allow it),
    else every speaker model."""
    path = recognizer.store.path.resolve()
    speakers = file_stamps(path / SPEAKERS_DIR)
    if bank_usable(recognizer):
        stamp = (*speakers, *file_stamps(path / BANK_DIR / "index.json"))
        view = _held("bank", path, stamp, lambda: bank_or_none(recognizer, require_speakers=False))
        if view is not None:
            return view
    return _held("speakers", path, speakers, recognizer.speakers)


def wants_workers(backend: str, n_jobs: int, n_items: int) -> bool:
    """Whether items go to workers: always on Dask or joblib; with ``local``, when ``n_jobs`` asks for
    several processes and there are ``n_items`` (speakers, or runs of recordings) to keep them busy (else
    only feature extraction is spread over processes)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend={backend!r}: must be one of {', '.join(BACKENDS)}")
    if backend != "local":
        return True
    workers = resolve_n_jobs(n_jobs)
    return workers > 1 and n_items >= workers


def run_tasks(
    function: Callable[..., Any],
    items: Sequence[Any],
    *,
    backend: str,
    scheduler: str | None,
    n_jobs: int,
    **shared: Any,
) -> Iterator[tuple[int, Any]]:
    """``(i, function(items[i], **shared, n_threads=...))`` as each item finishes, on joblib or Dask workers.

    ``backend`` ``local`` means joblib worker processes on this machine; ``n_jobs`` is their number, and that
    of the local Dask cluster started when ``scheduler`` is None.
    """
    from spkid.ubm.backends import open_backend

    engine = "dask" if backend == "dask" else "joblib"
    workers = resolve_n_jobs(n_jobs) if engine == "joblib" else n_jobs
    with open_backend(engine, scheduler=scheduler, n_jobs=workers, options=_CLI_OPTIONS) as pool:
        yield from pool.map_calls(function, items, n_threads=pool.task_threads, **shared)


def runs_of(items: Sequence[Any]) -> list[list[Any]]:
    """``items`` in consecutive runs of :data:`RUN_ITEMS`: the units scored together, here or on a worker.

    The runs depend on the items only (not on the workers), and the in-process path scores the same runs:
    scores come out identical to the last bit whichever way a batch runs (a matrix product's rounding may
    change with the rows scored together).
    """
    return [list(items[start : start + RUN_ITEMS]) for start in range(0, len(items), RUN_ITEMS)]


# ---------------------------------------------------------------------------------------------- enrolling
@dataclass(frozen=True)
class SpeakerOutcome:
    """One speaker's enrollment as a worker returns it: statistics (None: no usable recording), the raw
    cohort-score statistics its thresholds use, the recordings used and the files skipped."""

    name: str
    stats: SufficientStats | None
    cohort_stats: SpeakerCohortStats | None
    n_used: int
    skipped: list[SkippedFile] = field(default_factory=list)


def adapt_speaker(
    recognizer: Recognizer, features: Sequence[np.ndarray], earlier: SufficientStats | None
) -> tuple[SufficientStats, SpeakerCohortStats | None]:
    """A speaker's MAP statistics from ``features`` (plus ``earlier`` ones) and its cohort statistics."""
    stats = recognizer.ubm.accumulate(list(features))
    if earlier is not None:
        stats = stats + earlier
    return stats, recognizer.cohort_statistics(recognizer.store.speaker_model(stats))


def enroll_task(
    item: tuple[str, list[Path], SufficientStats | None],
    *,
    model_dir: str,
    skip_bad: bool,
    cache_dir: str | None,
    n_threads: int | None,
) -> SpeakerOutcome | SpkidError:
    """On a worker: one speaker's features, statistics and cohort statistics (an error as the value)."""
    name, files, earlier = item
    try:
        with thread_limits(n_threads):
            recognizer = worker_model(model_dir)
            extracted = recognizer.extract(files, skip_bad=skip_bad, cache_dir=cache_dir)
            if not extracted:
                return SpeakerOutcome(name, None, None, 0, list(extracted.skipped))
            stats, cohort_stats = adapt_speaker(recognizer, list(extracted), earlier)
            return SpeakerOutcome(name, stats, cohort_stats, len(extracted), list(extracted.skipped))
    except SpkidError as error:
        return error


# ---------------------------------------------------------------------------------------------- identifying
@dataclass(frozen=True)
class Ranked:
    """A run of recordings identified on a worker: results, files skipped, speech frames per result."""

    results: list[Identification]
    skipped: list[SkippedFile]
    n_frames: list[int]


def rank_with_models(
    recognizer: Recognizer,
    models: dict[str, MixtureParameters],
    features: Sequence[np.ndarray],
    paths: Sequence[Path],
    *,
    top_k: int,
    open_set: bool,
    threshold: float | None,
    progress: bool = False,
) -> list[Identification]:
    """Identifications of ``features`` against every speaker model (the per-file path, no bank)."""
    scores = recognizer.calibrated(recognizer.score_matrix(models, features, progress=progress))
    cutoffs = np.full(len(models), np.nan if threshold is None else float(threshold))
    if open_set and threshold is None:
        cutoffs = recognizer.default_thresholds(models)
    rankings = rank_rows(list(models), scores, cutoffs, top_k=top_k, open_set=open_set)
    return [
        Identification(str(path), best, ranked, accepted=accepted, threshold=cutoff)
        for path, (best, ranked, accepted, cutoff) in zip(paths, rankings, strict=True)
    ]


def rank_in_bank(
    recognizer: Recognizer,
    view: BankView,
    features: Sequence[np.ndarray],
    paths: Sequence[Path],
    *,
    top_k: int,
    open_set: bool,
    threshold: float | None,
) -> list[Identification]:
    """Identifications of ``features`` from the speaker bank."""
    return [
        Identification(str(path), best, ranked, accepted=accepted, threshold=cutoff)
        for path, (best, ranked, accepted, cutoff) in zip(
            paths, identify_in_bank(recognizer, view, features, top_k, open_set, threshold), strict=True
        )
    ]


def identify_task(
    files: list[Path],
    *,
    model_dir: str,
    top_k: int,
    open_set: bool,
    threshold: float | None,
    skip_bad: bool,
    cache_dir: str | None,
    n_threads: int | None,
) -> Ranked | SpkidError:
    """On a worker: identify a run of recordings against the bank (or the speaker files) it holds open."""
    try:
        with thread_limits(n_threads):
            recognizer = worker_model(model_dir)
            scoring = _worker_scoring(recognizer)
            extracted = recognizer.extract(files, skip_bad=skip_bad, cache_dir=cache_dir)
            settings = {"top_k": top_k, "open_set": open_set, "threshold": threshold}
            if not extracted:
                results = []
            elif isinstance(scoring, BankView):
                results = rank_in_bank(recognizer, scoring, list(extracted), extracted.paths, **settings)
            else:
                results = rank_with_models(recognizer, scoring, list(extracted), extracted.paths, **settings)
            return Ranked(results, list(extracted.skipped), [len(frames) for frames in extracted])
    except SpkidError as error:
        return error
