"""Features of many files: worker processes, the on-disk cache, skipped files, the pool's sample rate.

:func:`extract_many` runs :func:`spkid.features.extraction.extract` over files in worker processes
(:mod:`spkid.features.jobs`), reusing the disk cache (:mod:`spkid.features.cache`);
:func:`resolve_sample_rate` picks the front-end rate of ``sample_rate: auto`` from the files' headers.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from spkid.audio import audio_info
from spkid.errors import ConfigError, DataError, FeatureError, SpkidError
from spkid.features.cache import CACHE_VERSION, cache_file, cache_settings, read_cached
from spkid.features.config import AUTO_SAMPLE_RATES, FeatureConfig
from spkid.features.extraction import FileExtractor, normalise
from spkid.features.files import SkippedFile
from spkid.features.jobs import run_batches
from spkid.features.normalization import GlobalStats
from spkid.progress import Progress

__all__ = ["ExtractResult", "choose_sample_rate", "extract_many", "resolve_sample_rate", "reusing_raw_pools"]

#: The un-normalised pool features decoded inside a :func:`reusing_raw_pools` block, by front-end and files.
_RAW_POOLS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("spkid_raw_pools", default=None)


@contextlib.contextmanager
def reusing_raw_pools() -> Iterator[None]:
    """Within the block, :func:`extract_pool` decodes a pool once per front-end: the un-normalised features
    it extracts for pool statistics are kept (in memory, for the block) and are the features of a later call
    with ``cmvn="none"`` on the same files. ``train-ubm`` with ``cmvn: auto`` trains its two models so.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> with tempfile.TemporaryDirectory() as folder, reusing_raw_pools():
    ...     files = make_speakers(folder, n_speakers=1, n_utterances=2, duration_s=1.0)["spk01"]
    ...     normalised, stats = extract_pool(files, FeatureConfig(cmvn="adaptive"))
    ...     raw, _ = extract_pool(files, FeatureConfig(cmvn="none"))  # not decoded again
    >>> bool(np.allclose(stats.mean, np.concatenate(raw).mean(axis=0), atol=1e-4))
    True
    """
    token = _RAW_POOLS.set({})
    try:
        yield
    finally:
        _RAW_POOLS.reset(token)


class ExtractResult(list):
    """The list of feature arrays :func:`extract_many` returns, with the matching paths and the skipped files.

    Attributes
    ----------
    paths : list of Path
        ``paths[i]`` is the file ``self[i]`` came from (input order, skipped files left out).
    skipped : list of SkippedFile
        Files that raised a :class:`~spkid.errors.SpkidError` (only with ``skip_bad=True``), input order.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> result = ExtractResult([np.zeros((98, 60), np.float32)], [Path("a.wav")], [])
    >>> len(result), result[0].shape, result.paths[0].name, result.skipped
    (1, (98, 60), 'a.wav', [])
    """

    def __init__(self, features: Iterable[np.ndarray], paths: list[Path], skipped: list[SkippedFile]) -> None:
        super().__init__(features)
        self.paths = paths
        self.skipped = skipped


def extract_many(
    paths: Iterable[str | os.PathLike[str]],
    config: FeatureConfig = FeatureConfig(),
    *,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    skip_bad: bool = False,
    skip_unusable: bool = False,
    stats: GlobalStats | None = None,
) -> ExtractResult:
    """Extract features of many files, in parallel processes, reusing an on-disk cache.

    Parameters
    ----------
    paths : iterable of path
    config : FeatureConfig, default FeatureConfig()
    n_jobs : int, default 1
        Worker processes (joblib ``loky``; -1 = all cores). Files go to workers in batches, largest first.
    cache_dir : path, optional
        Cache folder: an entry per (absolute path, size, mtime_ns, config, front-end version), so a re-run
        only computes new or changed files. See :mod:`spkid.features.cache`.
    progress : bool, default False
        Show a files-done progress bar on stderr.
    skip_bad : bool, default False
        Skip files that raise a :class:`~spkid.errors.SpkidError` (unreadable, too short, silent) instead
        of stopping at the first; they are listed in the result's ``skipped`` attribute.
    skip_unusable : bool, default False
        Skip (and list) files that decode but hold too little speech (too short, silent, no speech after
        VAD: :class:`~spkid.errors.FeatureError`) while still stopping at unreadable ones.
    stats : GlobalStats, optional
        The UBM pool's statistics for ``config.cmvn`` "adaptive" or "global"; part of the cache key.

    Returns
    -------
    ExtractResult
        A list of ``(n_frames_i, config.n_features)`` float32 arrays in input order (bad files left out
        when ``skip_bad``), with ``.paths`` (the file of each array) and ``.skipped``
        (:class:`SkippedFile` ``(path, reason)`` pairs).

    Raises
    ------
    SpkidError
        Unless ``skip_bad``: the error of the first bad file met (files are processed largest first).
    ConfigError
        ``cache_dir`` cannot be created.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from spkid.corpora.synthetic import make_speakers
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = make_speakers(folder, n_speakers=1, n_utterances=2, duration_s=1.0)["spk01"]
    ...     result = extract_many([*files, Path(folder, "missing.wav")], skip_bad=True)
    >>> [features.shape for features in result], [path.name for path in result.paths]
    ([(98, 60), (98, 60)], ['spk01_01.wav', 'spk01_02.wav'])
    >>> [(skipped.path.name, skipped.unusable) for skipped in result.skipped]
    [('missing.wav', False)]
    """
    skippable: tuple[type[SpkidError], ...] = (
        (SpkidError,) if skip_bad else (FeatureError,) if skip_unusable else ()
    )
    paths = [Path(path) for path in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    features: list[np.ndarray | None] = [None] * len(paths)
    failures: dict[int, SpkidError] = {}
    cache_paths: list[Path | None] = [None] * len(paths)
    settings = cache_settings(config, frontend_version=CACHE_VERSION, stats=stats)
    if cache_dir is not None:
        try:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cache_dir {cache_dir}: cannot create ({error.strerror})") from error

    with Progress(len(paths), enabled=progress) as bar:
        todo: list[int] = []
        for index, path in enumerate(paths):
            if cache_dir is not None:
                try:
                    cache_paths[index] = cache_file(cache_dir, path, settings)
                except SpkidError as error:
                    if not isinstance(error, skippable):
                        raise
                    failures[index] = error
                    bar.advance()
                    continue
                features[index] = read_cached(cache_paths[index], config.n_features)
                if features[index] is not None:
                    bar.advance()
                    continue
            todo.append(index)
        batches = run_batches(
            FileExtractor(config, stats),
            [paths[i] for i in todo],
            [cache_paths[i] for i in todo],
            n_jobs=n_jobs,
            continue_on=skippable,
        )
        for positions, outcomes in batches:
            for position, (array, error) in zip(positions, outcomes, strict=False):  # shorter after an error
                if error is not None:
                    if not isinstance(error, skippable):
                        raise error
                    failures[todo[position]] = error
                features[todo[position]] = array
            bar.advance(len(positions))

    kept = [index for index in range(len(paths)) if index not in failures]
    skipped = [
        SkippedFile(paths[index], str(failures[index]), isinstance(failures[index], FeatureError))
        for index in sorted(failures)
    ]
    return ExtractResult([features[index] for index in kept], [paths[index] for index in kept], skipped)


def extract_pool(
    paths: Iterable[str | os.PathLike[str]],
    config: FeatureConfig,
    *,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
) -> tuple[ExtractResult, GlobalStats | None]:
    """Features of a UBM pool normalised as ``config`` says, and the pool statistics that took.

    With ``config.cmvn`` "adaptive" or "global" the pool's un-normalised features come first, their
    :class:`GlobalStats`, then each utterance normalised toward them (what ``train-ubm`` stores); otherwise
    this is :func:`extract_many`. Files with too little speech are skipped and listed, as a pool is many
    files (``skip_unusable``); unreadable ones stop it unless ``skip_bad``.

    Parameters
    ----------
    paths : iterable of path
    config : FeatureConfig
        With a resolved sample rate.
    n_jobs, skip_bad, progress
        As for :func:`extract_many`.

    Returns
    -------
    features : ExtractResult
        ``(n_frames_i, config.n_features)`` float32 arrays, ``.paths`` and ``.skipped``.
    stats : GlobalStats or None
        None when ``config.cmvn`` needs no pool statistics, or when no file was usable.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = make_speakers(folder, n_speakers=1, n_utterances=2, duration_s=1.0)["spk01"]
    ...     features, stats = extract_pool(files, FeatureConfig(cmvn="adaptive"))
    >>> len(features), stats.n_frames == sum(len(f) for f in features)
    (2, True)
    """
    options = {"n_jobs": n_jobs, "skip_bad": skip_bad, "progress": progress, "skip_unusable": True}
    pools = _RAW_POOLS.get()
    if not config.needs_global_stats and (pools is None or config.cmvn != "none"):
        return extract_many(paths, config, **options), None
    paths = list(paths)
    raw_config = dataclasses.replace(config, cmvn="none")
    key = (raw_config, tuple(paths), skip_bad)
    raw = None if pools is None else pools.get(key)
    if raw is None:
        raw = extract_many(paths, raw_config, **options)
        if pools is not None:
            pools[key] = raw
    if not config.needs_global_stats or not raw:  # cmvn "none" in a reusing_raw_pools block, or no file
        return raw, None
    stats = GlobalStats.from_features(raw)
    return ExtractResult([normalise(frames, config, stats) for frames in raw], raw.paths, raw.skipped), stats


def resolve_sample_rate(
    config: FeatureConfig, paths: Iterable[str | os.PathLike[str]], *, skip_bad: bool = False
) -> FeatureConfig:
    """``config`` with ``sample_rate="auto"`` replaced by the rate the files' native rates call for.

    The files' headers are read (no decoding); :func:`choose_sample_rate` picks 8000
    or 16000 by where most of their duration lies, and :meth:`FeatureConfig.resolve` fits the mel range to
    it. A config with a rate in Hz is returned unchanged.

    Parameters
    ----------
    config : FeatureConfig
    paths : iterable of path
        The UBM pool's audio files.
    skip_bad : bool, default False
        Leave unreadable files out instead of raising their error.

    Returns
    -------
    FeatureConfig

    Raises
    ------
    AudioError
        An unreadable file (unless ``skip_bad``).
    DataError
        No readable file.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = make_speakers(folder, n_speakers=1, n_utterances=1, duration_s=0.5, sample_rate=8000)
    ...     config = resolve_sample_rate(FeatureConfig(sample_rate="auto"), files["spk01"])
    >>> config.sample_rate, config.f_max_hz
    (8000, 3800.0)
    """
    if config.is_resolved:
        return config
    seconds_by_rate: dict[int, float] = {}
    errors: list[SpkidError] = []
    for path in paths:
        try:
            info = audio_info(path)
        except SpkidError as error:
            if not skip_bad:
                raise
            errors.append(error)
            continue
        seconds_by_rate[info.sample_rate_hz] = seconds_by_rate.get(info.sample_rate_hz, 0.0) + info.duration_s
    if not seconds_by_rate:  # the same words as when extraction finds nothing usable
        first = f"; first: {errors[0]}" if errors else ""
        raise DataError(f"no usable audio: all {len(errors)} files were skipped{first}")
    return config.resolve(choose_sample_rate(seconds_by_rate))


def choose_sample_rate(durations_s_by_rate: Mapping[int, float]) -> int:
    """The front-end rate for a UBM pool, from how much of its audio is at each native rate.

    Audio recorded below 16 kHz (8 kHz telephone, 11.025 kHz, ...) has no energy above its own Nyquist
    frequency: when most of the pool's duration is such audio, the front-end runs at 8 kHz, with mel bands
    fitted to 4 kHz; otherwise at 16 kHz (wider-band audio is resampled down to it).

    Parameters
    ----------
    durations_s_by_rate : mapping of int to float
        Native sample rate in Hz -> seconds of pool audio at that rate.

    Returns
    -------
    int
        8000 or 16000.

    Examples
    --------
    >>> choose_sample_rate({8000: 120.0, 16000: 60.0})
    8000
    >>> choose_sample_rate({44100: 10.0, 8000: 5.0})
    16000
    """
    narrow = sum(seconds for rate, seconds in durations_s_by_rate.items() if rate < 16000)
    wide = sum(seconds for rate, seconds in durations_s_by_rate.items() if rate >= 16000)
    return AUTO_SAMPLE_RATES[0] if narrow > wide else AUTO_SAMPLE_RATES[1]
