"""Running a per-file feature function over many files: batches, worker processes, errors sent back.

Used by :func:`spkid.features.extract_many`. Files go to joblib ``loky`` workers in batches (largest files
first, so the last batches are short and the workers finish together), each batch with one BLAS/FFT thread.
Warnings a worker logs (e.g. clipped audio) come back with its results and are logged again here, so the
caller's logging settings (the CLI's ``warning:`` prefix, ``--quiet``) apply to them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import spkid.errors
from spkid.blas import resolve_n_jobs
from spkid.errors import AudioError, SpkidError
from spkid.features.cache import write_cached

ErrorDescription = tuple[str, tuple[str, ...]]
LogEntry = tuple[str, int, str, dict[str, str]]  # logger name, level, message, spkid_* record attributes
Outcome = tuple[np.ndarray | None, SpkidError | None]
MAX_BATCH_FILES = 16  # small enough for a smooth progress bar and balanced workers
BATCHES_PER_WORKER = 8


def _describe(error: SpkidError) -> ErrorDescription:
    # Exceptions travel back from workers as (class name, args): AudioError(path, reason) does not
    # survive pickling on its own.
    if isinstance(error, AudioError):
        return "AudioError", (str(error.path), error.reason)
    return type(error).__name__, (str(error),)


def _rebuild(description: ErrorDescription) -> SpkidError:
    name, args = description
    error_class = getattr(spkid.errors, name, SpkidError)
    return error_class(*args)


class _Recorder(logging.Handler):
    """Keeps the log records of spkid's loggers (warnings and above) as plain picklable entries."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.entries: list[LogEntry] = []

    def emit(self, record: logging.LogRecord) -> None:
        extra = {key: str(value) for key, value in vars(record).items() if key.startswith("spkid_")}
        self.entries.append((record.name, record.levelno, record.getMessage(), extra))


def extract_batch_in_worker(
    function: Callable[[Path], np.ndarray],
    paths: list[Path],
    cache_paths: list[Path | None],
    continue_on: tuple[type[SpkidError], ...],
) -> tuple[list[tuple[np.ndarray | None, ErrorDescription | None]], list[LogEntry]]:
    """:func:`extract_batch` in a worker process, returning also the warnings spkid logged meanwhile."""
    spkid_logger, recorder = logging.getLogger("spkid"), _Recorder()
    spkid_logger.addHandler(recorder)
    propagate, spkid_logger.propagate = spkid_logger.propagate, False  # not printed here: sent back
    try:
        return extract_batch(function, paths, cache_paths, continue_on), recorder.entries
    finally:
        spkid_logger.removeHandler(recorder)
        spkid_logger.propagate = propagate


def extract_batch(
    function: Callable[[Path], np.ndarray],
    paths: list[Path],
    cache_paths: list[Path | None],
    continue_on: tuple[type[SpkidError], ...],
) -> list[tuple[np.ndarray | None, ErrorDescription | None]]:
    """Apply ``function`` to each file, caching results; stop at the first error not in ``continue_on``."""
    from threadpoolctl import threadpool_limits

    outcomes: list[tuple[np.ndarray | None, ErrorDescription | None]] = []
    # One BLAS/FFT thread: the per-file matrices are small and the workers already fill the cores.
    with threadpool_limits(limits=1):
        for path, cache_path in zip(paths, cache_paths, strict=True):
            try:
                features = function(path)
            except SpkidError as error:
                outcomes.append((None, _describe(error)))
                if not isinstance(error, continue_on):
                    break
                continue
            if cache_path is not None:
                try:
                    write_cached(cache_path, features)
                except OSError:
                    pass  # the cache is an optimisation: a full or read-only disk must not fail the run
            outcomes.append((features, None))
    return outcomes


def run_batches(
    function: Callable[[Path], np.ndarray],
    paths: list[Path],
    cache_paths: list[Path | None],
    *,
    n_jobs: int = 1,
    continue_on: tuple[type[SpkidError], ...] = (),
) -> Iterator[tuple[list[int], list[Outcome]]]:
    """Apply ``function`` to every path, in ``n_jobs`` processes.

    Parameters
    ----------
    function : callable
        Picklable (a module-level function or a ``functools.partial`` of one).
    paths : list of Path
    cache_paths : list of (Path or None)
        Where to cache each result (None: do not).
    n_jobs : int, default 1
        Worker processes (joblib convention, -1 = all cores); 1 runs in this process.
    continue_on : tuple of SpkidError classes, default ()
        Errors a batch goes on after; any other stops it (the caller raises it anyway).

    Yields
    ------
    positions : list of int
        Indices into ``paths`` of the batch.
    outcomes : list of (ndarray or None, SpkidError or None)
        Per file of the batch, the result or the error (may be shorter after an error).
    """
    if not paths:
        return
    n_workers = max(1, min(resolve_n_jobs(n_jobs), len(paths)))
    sizes = [path.stat().st_size if path.is_file() else 0 for path in paths]
    ordered = sorted(range(len(paths)), key=lambda position: -sizes[position])
    batch_size = max(1, min(MAX_BATCH_FILES, math.ceil(len(ordered) / (BATCHES_PER_WORKER * n_workers))))
    batches = [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
    arguments = [
        (function, [paths[i] for i in batch], [cache_paths[i] for i in batch], continue_on)
        for batch in batches
    ]
    if n_workers == 1:
        results: Iterator[tuple[list, list[LogEntry]]] = ((extract_batch(*args), []) for args in arguments)
    else:
        import joblib  # only with workers: its import (multiprocessing, asyncio, loky) is ~0.1 s of start-up

        # Our batches are already sized for balance: joblib must not group them further.
        parallel = joblib.Parallel(n_jobs=n_workers, backend="loky", return_as="generator", batch_size=1)
        results = parallel(joblib.delayed(extract_batch_in_worker)(*args) for args in arguments)
    for batch, (outcomes, log_entries) in zip(batches, results, strict=True):
        for name, level, message, extra in log_entries:
            logging.getLogger(name).log(level, "%s", message, extra=extra)
        yield batch, [(array, None if error is None else _rebuild(error)) for array, error in outcomes]
