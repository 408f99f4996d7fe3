"""The speaker-bank side of :class:`spkid.store.ModelStore`: keeping the bank in step with the speaker files.

Writers journal the names they change, write the speaker files, then sync those names into the bank
(:mod:`spkid.store.bank`), all under the writer lock. Readers get a :class:`~spkid.store.bank.BankView`,
after finishing the work of a killed writer, or rebuilding a missing, stale or corrupt bank from the speaker
files, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spkid.atomic import remove_stale_temp_files
from spkid.gmm import MixtureParameters
from spkid.score._bank import QuantizedBank, design_row_norms, stack_parameters
from spkid.store import bank as bank_files
from spkid.store.bank import BankCorruptError, BankView
from spkid.store.bank_file import SegmentWriter
from spkid.store.layout import LOCK_FILE, SPEAKERS_DIR
from spkid.store.locking import writer_lock

__all__ = ["BankFiles", "quantised_speakers"]

logger = logging.getLogger("spkid.store.bank")

#: Speakers per block of the stored bank: the scorer's block width, so stored blocks are scored in place.
BLOCK_SPEAKERS = 128
#: Speakers loaded, quantised and written at a time when the bank is written (a multiple of the block):
#: ~250 MB of float64 models and 63 MB of blocks at K=512, D=60.
_PIECE = 1024
_GROUP = 512  # speakers quantised at a time (bounds the float32 temporaries)


def quantised_speakers(
    ubm: MixtureParameters,
    models: Sequence[MixtureParameters],
    cohort: Sequence[Any],
    *,
    shared: bool | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """The bank arrays of ``models`` (the scorer's 16-bit blocks) and whether they share the UBM variances.

    ``cohort`` holds each speaker's ``(mean, std, top_c, top_k)`` or None. ``shared=False`` asks for the
    general form even when they share them (a segment whose other speakers do not).
    """
    variances = np.asarray(ubm.variances_, np.float64)
    sharing = all(np.array_equal(np.asarray(m.variances_, np.float64), variances) for m in models)
    shared = sharing if shared is None else (shared and sharing)
    norms = design_row_norms(variances, shared)
    pieces = []
    for start in range(0, len(models), _GROUP):
        group = list(models[start : start + _GROUP])
        _, stacked, _, group_shared = stack_parameters(ubm, group)
        if group_shared != shared:  # some speaker elsewhere adapts variances: the general form for all
            stacked = _general_form(ubm, group)
        pieces.append(QuantizedBank.from_bank(stacked, norms, BLOCK_SPEAKERS))
    blocks = np.concatenate(
        [p.blocks.transpose(0, 3, 1, 2).reshape(-1, *p.blocks.shape[1:3]) for p in pieces]
    )
    scale = np.concatenate([p.scale.transpose(0, 2, 1).reshape(-1, p.scale.shape[1]) for p in pieces])
    constant = np.concatenate(
        [p.constant.transpose(0, 2, 1).reshape(-1, p.constant.shape[1]) for p in pieces]
    )
    keep = np.concatenate([np.arange(p.blocks.shape[0] * p.width) < p.n_speakers for p in pieces])
    blocks, scale, constant = blocks[keep], scale[keep], constant[keep]  # (S, K, R-1), (S, K), (S, K)
    n = len(models)
    n_blocks = -(-n // BLOCK_SPEAKERS)
    padded = n_blocks * BLOCK_SPEAKERS

    def to_blocks(columns: np.ndarray, fill: float) -> np.ndarray:
        full = np.full((padded, *columns.shape[1:]), fill, columns.dtype)
        full[:n] = columns
        shaped = full.reshape(n_blocks, BLOCK_SPEAKERS, *columns.shape[1:])
        return np.ascontiguousarray(np.moveaxis(shaped, 1, -1))

    means = np.array([np.nan if c is None else c[0] for c in cohort], np.float64)
    top_c = np.array([-2 if c is None else (-1 if c[2] is None else c[2]) for c in cohort], np.int64)
    arrays = {
        "blocks": to_blocks(blocks, 0),
        "scale": to_blocks(scale, 1.0),
        "constant": to_blocks(constant, 0.0),
        "cohort_mean": np.nan_to_num(means),
        "cohort_std": np.array([0.0 if c is None else c[1] for c in cohort], np.float64),
        "cohort_top_c": top_c,
        "cohort_top_k": np.array([-1 if c is None or c[3] is None else c[3] for c in cohort], np.int64),
    }
    return arrays, shared


def _general_form(ubm: MixtureParameters, group: list[MixtureParameters]) -> np.ndarray:
    """The (K, 2D+1, S) bank of ``group`` even when they share the UBM's variances."""
    widened = MixtureParameters(
        ubm.weights_, ubm.means_, 2 * np.asarray(ubm.variances_), variance_floor=ubm.variance_floor
    )  # a column that does not share them forces the general form; it is dropped
    _, stacked, _, _ = stack_parameters(ubm, [*group, widened])
    return stacked[:, :, :-1]


class BankFiles:
    """Bank maintenance mixed into :class:`spkid.store.ModelStore`."""

    path: Path
    _ubm_sha256: str

    def load_ubm(self) -> MixtureParameters: ...

    def speakers(self) -> list[str]: ...

    def _load_for_bank(self, name: str) -> tuple[MixtureParameters, Any] | None: ...

    def speaker_path(self, name: str) -> Path: ...

    _journal_depth: int = 0

    # ----------------------------------------------------------------------------- writers
    @contextlib.contextmanager
    def bank_batch(self, names: Sequence[str]) -> Iterator[None]:
        """Journal ``names``, run the block (which writes their speaker files), then sync them into the bank.

        The bank is written once, at the end; a writer killed inside the block leaves a journal from which
        the next reader finishes the sync.
        """
        with contextlib.ExitStack() as stack:
            try:
                with writer_lock(self.path / LOCK_FILE):  # released while the speakers are written
                    self._ensure_bank()
                    pending = stack.enter_context(bank_files.journal(self.path, names))
            except OSError as exc:
                raise bank_files.bank_error(self.path, exc) from None
            self._journal_depth += 1
            try:
                yield
            finally:
                self._journal_depth -= 1
                try:
                    with writer_lock(self.path / LOCK_FILE):
                        self._sync_bank(names)
                        bank_files.drop_journal(pending)
                except OSError as exc:  # the journal stays: the next reader finishes the sync
                    raise bank_files.bank_error(self.path, exc) from None

    def rebuild_bank(self) -> int:
        """Rebuild the speaker bank from the speaker files; returns the number of speakers in it."""
        with writer_lock(self.path / LOCK_FILE):
            return self._rebuild_bank()

    def open_bank(self) -> BankView:
        """The speaker bank, repaired or rebuilt first (with a warning) when a writer was killed, or when
        it is missing, stale or corrupt.

        Raises
        ------
        StoreError
            The bank needs repairing and the directory cannot be written.
        """
        try:
            return self._open_bank()
        except OSError as exc:
            raise bank_files.bank_error(self.path, exc) from None

    # ----------------------------------------------------------------------------- helpers
    def _open_bank(self) -> BankView:
        abandoned = bank_files.abandoned_journals(self.path)
        if abandoned:
            with writer_lock(self.path / LOCK_FILE):
                abandoned = bank_files.abandoned_journals(self.path)
                names = sorted({name for items in abandoned.values() for name in items})
                logger.warning(
                    "%s: an interrupted write left the speaker bank behind; re-syncing %d speaker(s) "
                    "from their files",
                    self.path / bank_files.BANK_DIR,
                    len(names),
                )
                self._ensure_bank()
                self._sync_bank(names)
                for file in abandoned:
                    bank_files.drop_journal(file)
        stored = self._count_speaker_files()
        try:
            view = bank_files.read_bank(self.path, self._ubm_sha256)
            if len(view.names) != stored:
                raise BankCorruptError(
                    f"{self.path / bank_files.BANK_DIR}: holds {len(view.names)} speakers, the speaker files "
                    f"{stored} (stale)"
                )
            return view
        except bank_files.BankMissingError:
            if stored == 0:  # nothing enrolled yet: nothing to build or write
                return BankView([], [], [])
            logger.info("%s: no speaker bank yet (an older model); building it", self.path)
        except BankCorruptError as exc:
            logger.warning("%s; rebuilding the speaker bank from the speaker files", exc)
        self.rebuild_bank()
        return bank_files.read_bank(self.path, self._ubm_sha256)

    def _count_speaker_files(self) -> int:
        with os.scandir(self.path / SPEAKERS_DIR) as entries:
            return sum(1 for e in entries if e.name.endswith(".npz") and not e.name.startswith("."))

    def _ensure_bank(self) -> None:
        """Under the lock: build the bank when there is none (an older model), so appends add to a whole."""
        try:
            bank_files.read_index(self.path, self._ubm_sha256)
        except BankCorruptError:
            self._rebuild_bank()

    def _rebuild_bank(self) -> int:
        file, written = self._stream_segment(self.speakers())
        bank_files.write_bank(self.path, self._ubm_sha256, file, fresh=True)
        return len(written)

    def _sync_bank(self, names: Sequence[str]) -> None:
        """Under the lock: bring ``names`` in the bank in line with their speaker files."""
        if self._journal_depth:
            return
        names = list(dict.fromkeys(names))
        removed = [name for name in names if not self.speaker_path(name).is_file()]
        if removed:
            live = set(bank_files.read_bank(self.path, self._ubm_sha256).names)
            removed = [name for name in removed if name in live]
        gone = set(removed)
        file, _ = self._stream_segment([name for name in names if name not in gone])
        if file is None and not removed:
            return
        bank_files.write_bank(self.path, self._ubm_sha256, file, removed=removed)
        view = bank_files.read_bank(self.path, self._ubm_sha256)
        if bank_files.needs_compaction(view):
            forms = {(segment.shared, segment.blocks.shape[1:]) for segment in view.segments}
            if len(forms) > 1:  # speakers of both forms (some adapt variances): quantise them afresh
                self._rebuild_bank()
                return
            bank_files.write_compacted(self.path, self._ubm_sha256, view, _PIECE)

    def _stream_segment(self, names: Sequence[str]) -> tuple[str | None, list[str]]:
        """Under the lock: a new segment file (its name in the bank directory; None when no speaker file is
        left) holding those of ``names`` whose speaker file exists: loaded, quantised and written
        :data:`_PIECE` speakers at a time, so memory does not grow with the number of speakers. Returns
        the file and the names in it."""
        bank_dir = self.path / bank_files.BANK_DIR
        bank_dir.mkdir(exist_ok=True)
        remove_stale_temp_files(bank_dir)
        try:
            return self._write_pieces(bank_dir, list(names), shared=None)
        except _MixedForms:  # a later speaker adapts variances: the general form for all of them
            return self._write_pieces(bank_dir, list(names), shared=False)

    def _write_pieces(
        self, bank_dir: Path, names: list[str], *, shared: bool | None
    ) -> tuple[str | None, list[str]]:
        ubm = self.load_ubm()
        writer: SegmentWriter | None = None
        pending: list[tuple[str, tuple[MixtureParameters, Any]]] = []
        try:
            for start in range(0, len(names), _PIECE):
                for name in names[start : start + _PIECE]:
                    item = self._load_for_bank(name)
                    if item is not None:
                        pending.append((name, item))
                last = start + _PIECE >= len(names)
                while len(pending) >= _PIECE or (last and pending):
                    piece, pending = pending[:_PIECE], pending[_PIECE:]
                    arrays, piece_shared = quantised_speakers(
                        ubm, [m for _, (m, _) in piece], [c for _, (_, c) in piece], shared=shared
                    )
                    if writer is None:
                        shared = piece_shared
                        shape = arrays["blocks"].shape[1:3] + (arrays["blocks"].shape[3],)
                        writer = SegmentWriter(
                            bank_dir, names, shape, shared=shared, ubm_sha256=self._ubm_sha256
                        )
                    elif piece_shared != shared:
                        raise _MixedForms
                    writer.write([name for name, _ in piece], arrays)
            if writer is None:
                return None, []
            file = bank_files.new_segment_name()
            writer.commit(bank_dir / file)
            return file, writer.names
        except BaseException:
            if writer is not None:
                writer.discard()
            raise


class _MixedForms(Exception):
    """Speakers of one segment that do and do not share the UBM variances (write the general form)."""
