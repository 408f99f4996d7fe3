"""The speaker bank of a model directory: every enrolled speaker's scoring parameters in a few mapped files.

``identify`` and ``verify`` read the bank instead of one file per speaker, so opening a model takes a time
independent of the number of speakers. The speaker files stay the source of truth; the bank is derived
from them and is rebuilt from them (with a warning) whenever it is missing, stale or corrupt. Layout::

    bank/index.json          the segments in order, and the names removed since each (written atomically)
    bank/seg-<id>.spkb        immutable segments (:mod:`spkid.store.bank_file`), each written atomically
    bank/pending-<id>.json    the journal of a writer at work, ``flock``-ed by it while it runs

Every writer holds the model's writer lock while it changes the bank, and first journals the names it is
about to change. A later occurrence of a name overrides an earlier one; a removal hides the occurrences
in the segments before it. A writer killed at any point leaves an index that names only complete segments
and a journal nobody holds: the next reader re-syncs those names from their speaker files. Appends create
segments; past :data:`MAX_SEGMENTS` segments, or when removed columns are a quarter of the bank, the next
writer compacts them into one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spkid.atomic import atomic_write_bytes, fsync_directory, remove_stale_temp_files, write_temp_file
from spkid.errors import StoreError
from spkid.store.bank_file import BankCorruptError, Segment, SegmentWriter
from spkid.store.layout import BANK_DIR

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BANK_DIR",
    "BankCorruptError",
    "BankUnwritableError",
    "BankView",
    "MAX_SEGMENTS",
    "journal",
    "read_bank",
    "write_bank",
]

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
INDEX_FORMAT = "spkid-bank"
MAX_SEGMENTS = 16
_COHORT = {
    "cohort_mean": np.float64,
    "cohort_std": np.float64,
    "cohort_top_c": np.int64,
    "cohort_top_k": np.int64,
}


class BankUnwritableError(StoreError):
    """The bank must be written (built, repaired or changed) and the model directory cannot be."""


class BankMissingError(BankCorruptError):
    """The model has no bank yet (made before banks, or nothing enrolled)."""


@dataclass
class BankView:
    """The live speakers of a bank: the mapped segments and, per segment, the columns still enrolled.

    Attributes
    ----------
    segments : list of Segment
    columns : list of ndarray of int
        The live columns of each segment, in column order.
    names : list of str
        Every live speaker, segment by segment in column order (the order scores come in).
    """

    segments: list[Segment]
    columns: list[np.ndarray]
    names: list[str]

    def cohort_stats(self, index: int) -> tuple[float, float, int | None, int | None] | None:
        """``(mean, std, top_c, top_k)`` of live speaker ``index`` (its position in :attr:`names`), or None
        (see :class:`~spkid.store.SpeakerCohortStats`)."""
        for segment, columns in zip(self.segments, self.columns, strict=True):
            if index < len(columns):
                column = int(columns[index])
                top_c = int(segment.cohort_top_c[column])
                if top_c == -2:  # no cohort statistics stored
                    return None
                top_k = int(segment.cohort_top_k[column])
                return (
                    float(segment.cohort_mean[column]),
                    float(segment.cohort_std[column]),
                    (None if top_c < 0 else top_c),
                    (None if top_k < 0 else top_k),
                )
            index -= len(columns)
        raise IndexError(index)


def _index_path(model_dir: Path) -> Path:
    return model_dir / BANK_DIR / INDEX_FILE


def read_index(model_dir: Path, ubm_sha256: str) -> dict[str, Any]:
    """The bank index (BankCorruptError naming the file when missing, unreadable or for another UBM)."""
    file = _index_path(model_dir)
    try:
        index = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
            raise ValueError("not a spkid bank index")
        segments, removed = index["segments"], index["removed"]
        if not isinstance(segments, list) or not isinstance(removed, dict):
            raise ValueError("malformed")
    except FileNotFoundError:
        raise BankMissingError(f"{file}: no speaker bank yet") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise BankCorruptError(f"{file}: unreadable bank index ({exc})") from None
    if index.get("ubm_sha256") != ubm_sha256:
        raise BankCorruptError(f"{file}: bank made with a different UBM")
    return index


def read_bank(model_dir: Path, ubm_sha256: str) -> BankView:
    """Map the bank's segments and resolve the live speakers (BankCorruptError naming a bad file)."""
    index = read_index(model_dir, ubm_sha256)
    segments = []
    for name in index["segments"]:
        segment = Segment(model_dir / BANK_DIR / str(name))
        if segment.ubm_sha256 != ubm_sha256:
            raise BankCorruptError(f"{segment.file}: bank segment made with a different UBM")
        segments.append(segment)
    latest: dict[str, tuple[int, int]] = {}
    for number, segment in enumerate(segments):
        for column, speaker in enumerate(segment.names):
            latest[speaker] = (number, column)
    for speaker, before in index["removed"].items():
        if speaker in latest and latest[speaker][0] < int(before):
            del latest[speaker]
    live: list[list[int]] = [[] for _ in segments]
    for number, column in latest.values():
        live[number].append(column)
    columns = [np.array(sorted(items), dtype=np.int64) for items in live]
    names = [segment.names[c] for segment, cols in zip(segments, columns, strict=True) for c in cols]
    return BankView(segments, columns, names)


def write_bank(
    model_dir: Path,
    ubm_sha256: str,
    segment_file: str | None,
    *,
    removed: Sequence[str] = (),
    fresh: bool = False,
) -> None:
    """Append ``segment_file`` (a segment already written in the bank directory by a
    :class:`~spkid.store.bank_file.SegmentWriter`; None appends nothing) and record ``removed`` names.

    Call while holding the model's writer lock. ``fresh`` starts a new index holding only this segment
    (a rebuild or a compaction). Old segments are deleted only after the new index is in place.
    """
    bank_dir = model_dir / BANK_DIR
    bank_dir.mkdir(exist_ok=True)
    remove_stale_temp_files(bank_dir)
    try:
        index = {"segments": [], "removed": {}} if fresh else read_index(model_dir, ubm_sha256)
    except BankCorruptError:
        index = {"segments": [], "removed": {}}
        fresh = True
    segments: list[str] = list(index["segments"])
    if segment_file is not None:
        segments.append(segment_file)
    removed_at = dict(index["removed"])
    for speaker in removed:
        removed_at[speaker] = len(segments)
    document = {"format": INDEX_FORMAT, "ubm_sha256": ubm_sha256, "segments": segments, "removed": removed_at}
    atomic_write_bytes(_index_path(model_dir), json.dumps(document).encode() + b"\n")
    _delete_unlisted(bank_dir, set(segments))


def new_segment_name() -> str:
    """A fresh segment file name (in the bank directory)."""
    return f"seg-{uuid.uuid4().hex}.spkb"


def _delete_unlisted(bank_dir: Path, listed: set[str]) -> None:
    """Delete segments the index no longer names (replaced by a compaction, or orphaned by a kill)."""
    deleted = False
    for file in bank_dir.glob("seg-*.spkb"):
        if file.name not in listed:
            with contextlib.suppress(OSError):
                file.unlink()
                deleted = True
    if deleted:
        fsync_directory(bank_dir)


@contextlib.contextmanager
def journal(model_dir: Path, names: Sequence[str]) -> Iterator[Path]:
    """Journal ``names`` as about to change, for the ``with`` block; call it under the writer lock.

    The journal file is ``flock``-ed for the life of the block, so a reader can tell a writer at work (its
    lock is held) from one that was killed (the kernel dropped it).
    """
    bank_dir = model_dir / BANK_DIR
    bank_dir.mkdir(exist_ok=True)
    temporary = write_temp_file(bank_dir, json.dumps(list(names)).encode(), suffix=".json")
    fd = os.open(temporary, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        target = bank_dir / f"pending-{uuid.uuid4().hex}.json"
        os.replace(temporary, target)
        fsync_directory(bank_dir)
        yield target
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
        os.close(fd)


def drop_journal(target: Path) -> None:
    """Remove a journal whose names are now in the bank."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    fsync_directory(target.parent)


def abandoned_journals(model_dir: Path) -> dict[Path, list[str]]:
    """Journals of killed writers (their ``flock`` is free): ``{file: names}``."""
    found: dict[Path, list[str]] = {}
    for file in sorted((model_dir / BANK_DIR).glob("pending-*.json")):
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
            try:
                names = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                names = None
            found[file] = [str(n) for n in names] if isinstance(names, list) else []
        finally:
            os.close(fd)
    return found


def needs_compaction(view: BankView) -> bool:
    """Whether the bank has too many segments or too many removed columns."""
    total = sum(len(segment.names) for segment in view.segments)
    return len(view.segments) > MAX_SEGMENTS or (total > 64 and len(view.names) < 0.75 * total)


def compacted_pieces(view: BankView, piece: int) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
    """The live columns of every segment gathered, ``piece`` speakers at a time (a multiple of the block
    width), into the arrays of one segment (the stored values, unchanged): compaction in bounded memory."""
    first = view.segments[0]
    width = first.width
    n_components, n_rows = first.blocks.shape[1], first.blocks.shape[2]
    for segment in view.segments:
        if segment.blocks.shape[1:] != first.blocks.shape[1:] or segment.shared != first.shared:
            raise BankCorruptError(f"{segment.file}: segments of different shapes; rebuild the bank")
    live = [
        (segment, int(c))
        for segment, columns in zip(view.segments, view.columns, strict=True)
        for c in columns
    ]
    for start in range(0, len(live), piece):
        chunk = live[start : start + piece]
        n_blocks = -(-len(chunk) // width)
        blocks = np.zeros((n_blocks, n_components, n_rows, width), np.int16)
        scale = np.ones((n_blocks, n_components, width), np.float32)
        constant = np.zeros((n_blocks, n_components, width), np.float32)
        cohort = {key: np.zeros(len(chunk), dtype) for key, dtype in _COHORT.items()}
        for out, (segment, column) in enumerate(chunk):
            j, i = divmod(column, segment.width)
            segment.check_block(j)
            k, m = divmod(out, width)
            blocks[k, :, :, m] = segment.blocks[j, :, :, i]
            scale[k, :, m] = segment.scale[j, :, i]
            constant[k, :, m] = segment.constant[j, :, i]
            for key, values in cohort.items():
                values[out] = getattr(segment, key)[column]
        yield (
            view.names[start : start + len(chunk)],
            {"blocks": blocks, "scale": scale, "constant": constant, **cohort},
        )


def write_compacted(model_dir: Path, ubm_sha256: str, view: BankView, piece: int) -> None:
    """Under the lock: replace the bank by one segment of its live speakers, written ``piece`` at a time."""
    if not view.names:
        write_bank(model_dir, ubm_sha256, None, fresh=True)
        return
    first = view.segments[0]
    bank_dir = model_dir / BANK_DIR
    writer = SegmentWriter(
        bank_dir,
        list(view.names),
        first.blocks.shape[1:3] + (first.width,),
        shared=first.shared,
        ubm_sha256=ubm_sha256,
    )
    try:
        for names, arrays in compacted_pieces(view, piece):
            writer.write(names, arrays)
        name = new_segment_name()
        writer.commit(bank_dir / name)
    except BaseException:
        writer.discard()
        raise
    write_bank(model_dir, ubm_sha256, name, fresh=True)


def bank_error(model_dir: Path, exc: OSError) -> BankUnwritableError:
    reason = exc.strerror or exc
    return BankUnwritableError(f"{model_dir / BANK_DIR}: cannot write the speaker bank ({reason})")
