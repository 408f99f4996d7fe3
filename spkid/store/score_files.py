"""The score side of a model directory: the normalisation cohort, the calibration, speakers' cohort stats.

:class:`ScoreFiles` is the part of :class:`spkid.store.ModelStore` that reads and writes ``cohort.npz``
(impostor segments and models) and ``calibration.json`` (what ``spkid calibrate`` fitted). Models made before
the calibration had a file of its own kept it in the cohort file, under :data:`LEGACY_CALIBRATION_KEY`;
they are still read.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from spkid.atomic import atomic_write_bytes, encode_npz, read_npz, remove_stale_temp_files, to_python
from spkid.errors import StoreError
from spkid.store.checks import KIND_KEY, UBM_SHA_KEY, check_cohort_arrays
from spkid.store.layout import CALIBRATION_FILE, COHORT_FILE, LOCK_FILE, write_error
from spkid.store.locking import writer_lock

__all__ = ["CALIBRATION_FORMAT", "LEGACY_CALIBRATION_KEY", "ScoreFiles", "SpeakerCohortStats"]

CALIBRATION_FORMAT = "spkid-calibration"
#: The cohort array that held ``[scale, offset, p_effective]`` before the calibration had its own file.
LEGACY_CALIBRATION_KEY = "calibration"
_CALIBRATION_KEYS = ("scale", "offset", "p_effective")


class SpeakerCohortStats(NamedTuple):
    """A speaker's raw scores on the cohort's impostor segments: their mean and standard deviation.

    ``top_c`` is the scoring setting they were computed with (None: exact); they are valid only for it.
    ``top_k`` says which scores they summarise: None, all of them (Z-norm, S-norm and the raw thresholds);
    k, the k highest (adaptive S-norm's model side, ``score.asnorm_top_k``).

    Examples
    --------
    >>> stats = SpeakerCohortStats(mean=-1.5, std=0.5, top_c=10)
    >>> stats.top_c == 10, stats.top_k is None, (0.5 - stats.mean) / stats.std  # Z-norm of a raw 0.5
    (True, True, 4.0)
    """

    mean: float
    std: float
    top_c: int | None
    top_k: int | None = None


class ScoreFiles:
    """Cohort and calibration files of a model directory (mixed into :class:`spkid.store.ModelStore`)."""

    path: Path

    # Provided by ModelStore.
    _ubm_sha256: str

    def _check_ubm_fingerprint(self, arrays: Mapping[str, np.ndarray], file: Path) -> None: ...

    def _check_not_recreated(self) -> None: ...

    # ----------------------------------------------------------------------------- cohort
    def has_cohort(self) -> bool:
        """Whether a score-normalisation cohort has been saved."""
        return (self.path / COHORT_FILE).is_file()

    def save_cohort(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Store the score-normalisation cohort: named finite numeric arrays (replaces any earlier cohort)."""
        file = self.path / COHORT_FILE
        content = check_cohort_arrays(arrays, file)
        content.update({KIND_KEY: np.asarray("cohort"), UBM_SHA_KEY: np.asarray(self._ubm_sha256)})
        self._write(file, encode_npz(content))

    def load_cohort(self) -> dict[str, np.ndarray]:
        """Load the score-normalisation cohort saved by :meth:`save_cohort`."""
        file = self.path / COHORT_FILE
        if not file.is_file():
            raise StoreError(f"{file}: no score-normalisation cohort saved in this model")
        arrays = read_npz(file, what="cohort")
        if to_python(arrays.pop(KIND_KEY, np.asarray(""))) != "cohort":
            raise StoreError(f"{file}: not a cohort file")
        self._check_ubm_fingerprint(arrays, file)
        arrays.pop(UBM_SHA_KEY)
        return check_cohort_arrays(arrays, file)

    # ----------------------------------------------------------------------------- calibration
    def save_calibration(self, calibration: Mapping[str, float]) -> None:
        """Store a calibration (``{"scale", "offset", "p_effective"}``), replacing any earlier one."""
        file = self.path / CALIBRATION_FILE
        try:
            values = {key: float(calibration[key]) for key in _CALIBRATION_KEYS}
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"{file}: a calibration needs numbers {', '.join(_CALIBRATION_KEYS)} ({exc})"
            ) from None
        if not all(np.isfinite(value) for value in values.values()):
            raise StoreError(f"{file}: non-finite calibration {values}")
        document = {"format": CALIBRATION_FORMAT, **values, "ubm_sha256": self._ubm_sha256}
        self._write(file, json.dumps(document, indent=2).encode() + b"\n")

    def load_calibration(self) -> dict[str, float] | None:
        """The stored calibration ``{"scale", "offset", "p_effective"}``, or None when there is none."""
        file = self.path / CALIBRATION_FILE
        if not file.is_file():
            legacy = (
                self.load_cohort().get(LEGACY_CALIBRATION_KEY)
                if self._may_hold_legacy_calibration()
                else None
            )
            if legacy is None:
                return None
            values = np.asarray(legacy, dtype=np.float64).ravel().tolist()
            if len(values) != len(_CALIBRATION_KEYS):
                raise StoreError(f"{self.path / COHORT_FILE}: calibration holds {len(values)} numbers, not 3")
            return dict(zip(_CALIBRATION_KEYS, values, strict=True))
        try:
            document: Any = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or document.get("format") != CALIBRATION_FORMAT:
                raise ValueError("not a spkid calibration")
            values = {key: float(document[key]) for key in _CALIBRATION_KEYS}
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{file}: unreadable calibration ({exc})") from None
        if document.get("ubm_sha256") != self._ubm_sha256:
            raise StoreError(f"{file}: made for a different UBM than this model's; run spkid calibrate again")
        return values

    def _may_hold_legacy_calibration(self) -> bool:
        """Whether the cohort file may hold :data:`LEGACY_CALIBRATION_KEY`: its archive's member list (read
        without the arrays) names it, or the file cannot be listed (:meth:`load_cohort` then says why)."""
        if not self.has_cohort():
            return False
        try:
            with zipfile.ZipFile(self.path / COHORT_FILE) as archive:
                return f"{LEGACY_CALIBRATION_KEY}.npy" in archive.namelist()
        except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError):
            return True

    # ----------------------------------------------------------------------------- helpers
    def _write(self, file: Path, data: bytes) -> None:
        try:
            with writer_lock(self.path / LOCK_FILE):
                self._check_not_recreated()
                remove_stale_temp_files(self.path)
                atomic_write_bytes(file, data)
        except OSError as exc:
            raise write_error(self.path, exc) from None
