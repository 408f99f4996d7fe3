"""Speaker files of a model directory: writing, reading and removing speakers, keeping the bank in step.

:class:`SpeakerFiles` is the part of :class:`spkid.store.ModelStore` behind ``speakers/``. A speaker file is
written atomically under the writer lock, and the speaker bank (:mod:`spkid.store.bank_store`) is synced
with it under the same lock, after journalling the name so that a kill in between is finished by the next
reader. What a file holds is :mod:`spkid.store.records`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spkid.atomic import (
    atomic_write_bytes,
    encode_npz,
    fsync_directory,
    read_npz,
    remove_stale_temp_files,
    to_arrays,
    to_python,
)
from spkid.errors import StoreError
from spkid.gmm import MixtureParameters, SufficientStats
from spkid.store import bank as bank_files
from spkid.store.bank_store import BankFiles
from spkid.store.checks import KIND_KEY, NAME_KEY, UBM_SHA_KEY, build_model, check_model_arrays
from spkid.store.layout import LOCK_FILE, write_error
from spkid.store.locking import writer_lock
from spkid.store.records import (
    cohort_arrays,
    compact_stats,
    has_stats,
    read_cohort_stats,
    read_stats,
    stats_arrays,
)
from spkid.store.score_files import SpeakerCohortStats

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = ["SpeakerFiles"]

logger = logging.getLogger("spkid.store.bank")


class SpeakerFiles(BankFiles):
    """Speaker files and the bank (mixed into :class:`spkid.store.ModelStore`)."""

    path: Path
    cohort_stats: dict[str, SpeakerCohortStats]
    enroll_config: dict[str, Any]
    ubm_shape: tuple[int, int]
    #: Set once this store swept the speakers' directory for a killed writer's temporary files: one scan
    #: per store, not per speaker written (a scan is linear in the speakers enrolled).
    _speakers_swept: bool = False

    def speaker_path(self, name: str) -> Path: ...

    def _check_not_recreated(self) -> None: ...

    def _check_ubm_fingerprint(self, arrays: Any, file: Path) -> None: ...

    def _stored_name(self, file: Path) -> str: ...

    def save_speaker(
        self,
        name: str,
        model: MixtureParameters | DiagonalGMM,
        *,
        replace: bool = False,
        cohort_stats: SpeakerCohortStats | None = None,
    ) -> Path:
        """Store a speaker model's parameters atomically (a speaker that cannot grow: prefer
        :meth:`save_speaker_stats`), with its cohort statistics when given; returns its file.

        Raises
        ------
        StoreError
            Invalid name, the name is enrolled and ``replace`` is false, a model whose shape does not
            match the UBM or with non-finite / non-positive parameters, or the directory cannot be written.
        """
        arrays = to_arrays(model.to_dict(), what=f"speaker {name!r}")
        check_model_arrays(arrays, self.speaker_path(name), f"speaker {name!r}", self.ubm_shape)
        return self._write_speaker(name, arrays, replace=replace, cohort_stats=cohort_stats)

    def save_speaker_stats(
        self,
        name: str,
        stats: SufficientStats,
        *,
        replace: bool = False,
        cohort_stats: SpeakerCohortStats | None = None,
    ) -> Path:
        """Store a speaker as its MAP statistics under the UBM (float32), atomically; returns its file.

        The model is derived from them with the stored enrollment settings (:meth:`speaker_model`), and
        statistics of new recordings add to them (``spkid enroll --add``).
        """
        second_order = "variances" in self.enroll_config.get("adapt", ())
        arrays = stats_arrays(compact_stats(stats, second_order=second_order), second_order=second_order)
        read_stats(arrays, self.speaker_path(name), self.ubm_shape)  # shape and finiteness
        return self._write_speaker(name, arrays, replace=replace, cohort_stats=cohort_stats)

    def speaker_model(self, stats: SufficientStats) -> MixtureParameters:
        """The model of a speaker with statistics ``stats``, rounded as stored, with the stored settings."""
        from spkid.ubm import map_from_stats

        settings = self.enroll_config
        second_order = "variances" in settings.get("adapt", ())
        return map_from_stats(
            self.load_ubm(),
            compact_stats(stats, second_order=second_order),
            relevance_factor=float(settings.get("relevance_factor", 4.0)),
            adapt=list(settings.get("adapt", ["means"])),
        ).sharing(self.load_ubm())

    def load_speaker_stats(self, name: str) -> SufficientStats:
        """The stored MAP statistics of speaker ``name``.

        Raises
        ------
        StoreError
            Not enrolled, or enrolled by an spkid that stored the model only (re-enroll with ``--replace``).
        """
        file, arrays = self._speaker_arrays(name)
        if not has_stats(arrays):
            raise StoreError(
                f"{file}: speaker {name!r} was enrolled by an older spkid that kept no statistics, so it "
                "cannot grow; re-enroll it from all its recordings with --replace"
            )
        return read_stats(arrays, file, self.ubm_shape)

    def load_speaker(self, name: str) -> MixtureParameters:
        """Load and validate one speaker model."""
        file, arrays = self._speaker_arrays(name)
        stored_cohort = read_cohort_stats(arrays, file)
        if stored_cohort is not None:
            self.cohort_stats[name] = SpeakerCohortStats(*stored_cohort)
        if has_stats(arrays):
            return self.speaker_model(read_stats(arrays, file, self.ubm_shape))
        model = build_model(arrays, file, f"speaker {name!r}", self.ubm_shape, kind="speaker")
        return model.sharing(self.load_ubm())  # mean-only models: one copy of the UBM's arrays

    def load_speakers(self) -> dict[str, MixtureParameters]:
        """Load every enrolled speaker, ``{name: model}`` in sorted name order."""
        return {name: self.load_speaker(name) for name in self.speakers()}

    def remove_speaker(self, name: str) -> None:
        """Delete an enrolled speaker (StoreError if not enrolled); the bank drops it too."""
        target = self.speaker_path(name)
        try:
            with writer_lock(self.path / LOCK_FILE):
                if not target.is_file():
                    raise StoreError(f"speaker {name!r} is not enrolled in {self.path}")
                with contextlib.ExitStack() as stack:
                    try:  # deleting needs no space, but the journal and the bank do: they may fail
                        self._ensure_bank()
                        pending = stack.enter_context(bank_files.journal(self.path, [name]))
                    except (OSError, StoreError):
                        pending = None
                    os.unlink(target)
                    fsync_directory(target.parent)
                    try:
                        if pending is None:
                            raise OSError("no journal")
                        self._sync_bank([name])
                        bank_files.drop_journal(pending)
                    except (
                        OSError,
                        StoreError,
                    ):  # the bank is stale now: its next reader rebuilds it, with a warning
                        logger.warning(
                            "%s: speaker bank not updated; it is rebuilt when next read", self.path
                        )
        except OSError as exc:
            raise write_error(self.path, exc) from None

    # ----------------------------------------------------------------------------- helpers
    def _write_speaker(
        self,
        name: str,
        arrays: dict[str, np.ndarray],
        *,
        replace: bool,
        cohort_stats: SpeakerCohortStats | None,
    ) -> Path:
        target = self.speaker_path(name)
        arrays.update(
            {
                KIND_KEY: np.asarray("speaker"),
                NAME_KEY: np.asarray(name),
                UBM_SHA_KEY: np.asarray(self._ubm_sha256),
            }
        )
        if cohort_stats is not None:
            arrays.update(cohort_arrays(cohort_stats))
        data = encode_npz(arrays)
        try:
            with writer_lock(self.path / LOCK_FILE):
                self._check_not_recreated()
                if not self._speakers_swept:
                    remove_stale_temp_files(target.parent)
                    self._speakers_swept = True
                if target.exists():
                    try:
                        stored = self._stored_name(target)
                    except StoreError:  # an unreadable file under this name goes only with replace=True
                        stored = name
                    if stored != name:
                        raise StoreError(
                            f"speaker name {name!r} collides with enrolled speaker {stored!r} on this file "
                            "system (names differing only in case?)"
                        )
                    if not replace:
                        raise StoreError(
                            f"speaker {name!r} is already enrolled in {self.path}; "
                            "pass replace=True (--replace) to re-enroll"
                        )
                if self._journal_depth:  # inside bank_batch: the batch syncs the bank at its end
                    atomic_write_bytes(target, data)
                else:
                    self._ensure_bank()
                    with bank_files.journal(self.path, [name]) as pending:
                        atomic_write_bytes(target, data)
                        self._sync_bank([name])
                        bank_files.drop_journal(pending)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        return target

    def _speaker_arrays(self, name: str) -> tuple[Path, dict[str, np.ndarray]]:
        file = self.speaker_path(name)
        if not file.is_file():
            raise StoreError(f"speaker {name!r} is not enrolled in {self.path}")
        arrays = read_npz(file, what="speaker")
        stored = to_python(arrays.get(NAME_KEY, np.asarray("")))
        if stored != name:
            raise StoreError(f"{file}: holds speaker {stored!r}, expected {name!r}")
        self._check_ubm_fingerprint(arrays, file)
        if to_python(arrays.get(KIND_KEY, np.asarray(""))) != "speaker":
            raise StoreError(f"{file}: not a speaker model file")
        return file, arrays

    def _load_for_bank(self, name: str) -> tuple[MixtureParameters, tuple | None] | None:
        """A speaker's model and cohort statistics for the bank, or None when its file is gone."""
        if not self.speaker_path(name).is_file():
            return None
        model = self.load_speaker(name)
        cohort = self.cohort_stats.get(name)
        return model, None if cohort is None else tuple(cohort)
