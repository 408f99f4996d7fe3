"""The files of a model directory, and writing a new one in their place.

Layout of ``MODEL_DIR``::

    manifest.json          versions, creation time, the four config sections, SHA-256 of ubm.npz
    ubm.npz                the universal background model
    frontend.npz           the UBM pool's feature statistics, for cmvn "adaptive"/"global" (optional)
    speakers/<name>.npz    one self-describing file per speaker (name, UBM fingerprint, MAP statistics)
    bank/                  the speaker bank derived from the speaker files (:mod:`spkid.store.bank`)
    cohort.npz             named float arrays for score normalisation (optional)
    calibration.json       the score calibration ``spkid calibrate`` fitted (optional)
    .lock                  flock'ed by writers so concurrent enrolls serialise

:func:`write_model_directory` is the crash-safe part of :meth:`spkid.store.ModelStore.create`: under the
writer lock it writes the new files to temporary names first (a full disk or read-only directory fails
before anything old is deleted), removes the manifest so the directory reads as "no model" until the
rebuild completes, replaces the files, and writes the manifest last. :func:`file_stamps` tells a reader
holding files open when they changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spkid.atomic import atomic_write_bytes, fsync_directory, remove_stale_temp_files, write_temp_file
from spkid.errors import StoreError
from spkid.store.locking import writer_lock
from spkid.store.manifest import encode_manifest

__all__ = [
    "BANK_DIR",
    "CALIBRATION_FILE",
    "COHORT_FILE",
    "FRONTEND_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "SPEAKERS_DIR",
    "UBM_FILE",
    "file_stamps",
    "write_error",
    "write_model_directory",
]

MANIFEST_FILE = "manifest.json"
UBM_FILE = "ubm.npz"
SPEAKERS_DIR = "speakers"
COHORT_FILE = "cohort.npz"
CALIBRATION_FILE = "calibration.json"
FRONTEND_FILE = "frontend.npz"
LOCK_FILE = ".lock"
BANK_DIR = "bank"


def file_stamps(*files: Path) -> tuple:
    """``(mtime_ns, size, inode)`` of each of ``files`` (None for one that cannot be stat'ed): what changes
    when a writer replaces or rewrites them, in a few stat calls.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     file_stamps(Path(folder, "absent.json"))
    (None,)
    """
    stamps = []
    for file in files:
        try:
            status = os.stat(file)
            stamps.append((status.st_mtime_ns, status.st_size, status.st_ino))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def write_error(path: Path, exc: OSError) -> StoreError:
    reason = exc.strerror or str(exc)
    return StoreError(f"{path}: cannot write to the model directory ({reason}); the stored model is intact")


def write_model_directory(
    path: Path, contents: Mapping[str, bytes], manifest: Mapping[str, Any], *, overwrite: bool
) -> None:
    """Replace the model at ``path`` (or create one) with the files ``contents`` (name -> bytes) and
    ``manifest``, deleting the old speakers, cohort and feature statistics.

    Raises
    ------
    StoreError
        A model exists and ``overwrite`` is false, or the directory cannot be written.
    """
    try:
        (path / SPEAKERS_DIR).mkdir(parents=True, exist_ok=True)
        with writer_lock(path / LOCK_FILE):
            if (path / MANIFEST_FILE).exists() and not overwrite:
                raise StoreError(
                    f"{path}: a model already exists here; pass overwrite=True (--overwrite) to "
                    "replace it and its enrolled speakers"
                )
            remove_stale_temp_files(path / SPEAKERS_DIR)
            remove_stale_temp_files(path)
            # Write the new files first, so a full disk or read-only directory fails before anything
            # old is deleted.
            written = {name: write_temp_file(path, data, suffix=".npz") for name, data in contents.items()}
            try:
                # Without a manifest the directory reads as "no model" until the rebuild completes.
                (path / MANIFEST_FILE).unlink(missing_ok=True)
                fsync_directory(path)
                stale = [
                    *(path / SPEAKERS_DIR).glob("*.npz"),
                    *(path / BANK_DIR).glob("*"),
                    path / COHORT_FILE,
                    path / FRONTEND_FILE,
                    path / CALIBRATION_FILE,
                ]
                for old in stale:
                    old.unlink(missing_ok=True)
                for name, temporary in written.items():
                    os.replace(temporary, path / name)
            finally:
                for temporary in written.values():
                    temporary.unlink(missing_ok=True)
            atomic_write_bytes(path / MANIFEST_FILE, encode_manifest(manifest))
    except OSError as exc:
        raise StoreError(f"{path}: cannot write the model directory ({exc.strerror or exc})") from None
