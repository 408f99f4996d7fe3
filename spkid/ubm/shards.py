"""Training frames cut into shards, and the per-shard E-step that every backend runs.

A shard is a list of row ranges of utterances: in-memory arrays (in-process only) or
:class:`~spkid.features.FeatureFile` descriptors, which a worker memory-maps a bounded batch of rows at
a time. :func:`shard_statistics` returns the shard's :class:`~spkid.gmm.SufficientStats`; the driver adds
the shards' statistics in shard order, so the sum does not depend on which worker ran what.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from spkid.blas import thread_limits
from spkid.errors import ModelError
from spkid.features.files import FeatureFile, StoredFeatures
from spkid.gmm import MixtureParameters, SufficientStats

__all__ = [
    "ModelParams",
    "Shard",
    "ShardTask",
    "Source",
    "frame_sources",
    "gather_rows",
    "make_shards",
    "shard_statistics",
    "shards_statistics",
    "task_statistics",
]

Source = FeatureFile | np.ndarray
# About 0.3 s of E-step per shard for 512 components: fine enough to balance workers, coarse enough that
# scheduling and sending the model cost little. Part of the subsampling plan, so fixed, not per-worker.
FRAMES_PER_SHARD = 65536
# Rows held in memory at once by a worker (16 MiB of 60-dimensional float32 frames).
READ_BATCH_FRAMES = 65536


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` of ``source`` (an array, or a file read on the worker); ``label`` names it."""

    source: Source
    start: int
    stop: int
    label: str


@dataclass(frozen=True)
class Shard:
    """Consecutive row ranges of the training frames, processed as one task."""

    segments: tuple[Segment, ...]

    @property
    def n_frames(self) -> int:
        return sum(segment.stop - segment.start for segment in self.segments)


@dataclass(frozen=True)
class ShardTask:
    """One shard of one EM iteration: all its frames, or ``n_sample`` of them drawn with ``seed``.

    ``n_threads`` caps the BLAS and numba threads of the worker (None: leave them as they are).
    """

    shard: Shard
    n_sample: int | None = None
    seed: tuple[int, ...] = ()
    n_threads: int | None = None


@dataclass(frozen=True)
class ModelParams:
    """What a worker needs for an E-step: the model's parameters and the frames per E-step chunk."""

    parameters: MixtureParameters
    chunk_size: int | None = None


def frame_sources(features: object, what: str = "UBM training") -> tuple[list[Source], int]:
    """The utterances of ``features`` as sources, without reading frames from files.

    Parameters
    ----------
    features : ndarray, StoredFeatures, or iterable of ndarray / FeatureFile
        Read-only memory-mapped arrays (``np.load(..., mmap_mode="r")``) are described by file and offset;
        other arrays are checked (2-D, finite) and kept in memory as float32.

    Returns
    -------
    sources : list of (FeatureFile or ndarray)
        Non-empty utterances only.
    n_features : int
    """
    if isinstance(features, StoredFeatures):
        items: Sequence[object] = features.files
    elif isinstance(features, np.ndarray):
        items = [features]
    else:
        items = list(features)  # type: ignore[call-overload]
    sources: list[Source] = []
    n_features = None
    for index, item in enumerate(items):
        source = item if isinstance(item, FeatureFile) else FeatureFile.of_memmap(item)  # type: ignore[arg-type]
        if source is None:
            source = np.asarray(item, dtype=np.float32)
            if source.ndim != 2:
                raise ModelError(
                    f"{what}: utterance {index} has shape {source.shape}, expected (n_frames, n_features)"
                )
            if not np.all(np.isfinite(source)):
                raise ModelError(f"{what}: utterance {index} contains NaN or infinite features")
        width = source.n_features if isinstance(source, FeatureFile) else source.shape[1]
        if n_features is not None and width != n_features:
            raise ModelError(f"{what}: utterance {index} has {width} features, the first has {n_features}")
        n_features = width
        if _length(source):
            sources.append(source)
    if not sources or n_features is None:
        raise ModelError(f"{what}: no feature frames given")
    return sources, n_features


def make_shards(sources: Sequence[Source], frames_per_shard: int = FRAMES_PER_SHARD) -> list[Shard]:
    """Cut the sources, in order, into shards of ``frames_per_shard`` frames (the last may be shorter)."""
    shards, segments, filled = [], [], 0
    for index, source in enumerate(sources):
        start, length = 0, _length(source)
        while start < length:
            take = min(frames_per_shard - filled, length - start)
            segments.append(Segment(source, start, start + take, _label(source, index)))
            start, filled = start + take, filled + take
            if filled == frames_per_shard:
                shards.append(Shard(tuple(segments)))
                segments, filled = [], 0
    if segments:
        shards.append(Shard(tuple(segments)))
    return shards


def gather_rows(sources: Sequence[Source], rows: np.ndarray) -> np.ndarray:
    """Frames at sorted global row indices ``rows`` (sources concatenated), ndarray (len(rows), D) float32."""
    offsets = np.concatenate([[0], np.cumsum([_length(source) for source in sources])])
    owners = np.searchsorted(offsets, rows, side="right") - 1
    boundaries = np.searchsorted(owners, np.arange(len(sources) + 1))
    parts = []
    for index in np.flatnonzero(np.diff(boundaries)):
        local = rows[boundaries[index] : boundaries[index + 1]] - offsets[index]
        parts.append(_read(sources[index], local, _label(sources[index], index)))
    return np.concatenate(parts)


def shard_statistics(task: ShardTask, params: ModelParams) -> SufficientStats:
    """E-step statistics of the shard's frames (or its subsample) under ``params`` (runs on workers)."""
    with thread_limits(task.n_threads):
        return task_statistics(params, task)


def shards_statistics(tasks: Sequence[ShardTask], params: ModelParams) -> list[SufficientStats]:
    """:func:`shard_statistics` of several tasks in one call (one scheduling round trip for all of them)."""
    return [shard_statistics(task, params) for task in tasks]


def task_statistics(params: ModelParams, task: ShardTask, n_jobs: int = 1) -> SufficientStats:
    """E-step statistics of the task's frames, read a bounded batch at a time, ``n_jobs`` chunk threads."""
    parameters = params.parameters
    total = SufficientStats.zeros(*parameters.means_.shape)
    for batch in _batches(task):
        total = total + parameters.accumulate(batch, chunk_size=params.chunk_size, n_jobs=n_jobs)
    return total


def _batches(task: ShardTask) -> Iterator[list[np.ndarray]]:
    """The shard's frames (or the ``n_sample`` drawn with ``seed``) as lists of arrays, bounded in size."""
    shard = task.shard
    if task.n_sample is None:
        pieces = (
            (segment, start, min(start + READ_BATCH_FRAMES, segment.stop), None)
            for segment in shard.segments
            for start in range(segment.start, segment.stop, READ_BATCH_FRAMES)
        )
    else:
        generator = np.random.default_rng(list(task.seed))
        rows = np.sort(generator.choice(shard.n_frames, size=task.n_sample, replace=False))
        pieces = _sampled_pieces(shard, rows)
    batch, filled = [], 0
    for segment, start, stop, local_rows in pieces:
        if local_rows is None:
            block = _open(segment.source, start, stop, segment.label)
        else:
            block = _read(segment.source, local_rows, segment.label)
        batch.append(block)
        filled += block.shape[0]
        if filled >= READ_BATCH_FRAMES:
            yield batch
            batch, filled = [], 0  # the memory maps of the batch are released here
    if batch:
        yield batch


def _sampled_pieces(shard: Shard, rows: np.ndarray) -> Iterator[tuple[Segment, int, int, np.ndarray]]:
    """Per segment, in pieces of at most READ_BATCH_FRAMES, the drawn rows as indices into its source."""
    offset = 0
    for segment in shard.segments:
        length = segment.stop - segment.start
        lo, hi = np.searchsorted(rows, [offset, offset + length])
        for piece in range(lo, hi, READ_BATCH_FRAMES):
            local = rows[piece : min(piece + READ_BATCH_FRAMES, hi)] - offset + segment.start
            yield segment, segment.start, segment.stop, local
        offset += length


def _open(source: Source, start: int, stop: int, label: str) -> np.ndarray:
    block = source.open(start, stop) if isinstance(source, FeatureFile) else source[start:stop]
    _check_finite(block, label, f"rows {start}-{stop}")
    return block


def _read(source: Source, local_rows: np.ndarray, label: str) -> np.ndarray:
    """Copy the rows ``local_rows`` (sorted) of one source, touching only the part of the file they span."""
    if isinstance(source, FeatureFile):
        first, last = int(local_rows[0]), int(local_rows[-1]) + 1
        block = np.array(source.open(first, last)[local_rows - first])
    else:
        block = source[local_rows]
    _check_finite(block, label, f"rows {local_rows[0]}-{local_rows[-1]}")
    return block


def _check_finite(block: np.ndarray, label: str, where: str) -> None:
    if not np.isfinite(block).all():
        raise ModelError(f"{label}: {where} hold NaN or infinite features")


def _length(source: Source) -> int:
    return source.n_frames if isinstance(source, FeatureFile) else source.shape[0]


def _label(source: Source, index: int) -> str:
    return source.path if isinstance(source, FeatureFile) else f"utterance {index}"
