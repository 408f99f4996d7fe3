"""Crash-safe, pickle-free file I/O for the model store.

A file is replaced atomically: the new bytes go to a temporary file in the same directory, are flushed and
fsync'ed, renamed over the target with :func:`os.replace`, and the directory entry is fsync'ed, so a reader
sees the old file or the new one, never a torn mix, even after SIGKILL. Arrays are kept in ``.npz`` files
that embed ``__sha256__`` (a hash of their names, dtypes, shapes and bytes), so each file checks itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spkid.errors import StoreError

TEMP_PREFIX = ".tmp-"
HASH_KEY = "__sha256__"


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory's entries (a rename or unlink inside it) to disk.

    Platforms that cannot open a directory (Windows) skip this: there the rename is already as durable as
    the platform allows.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_temp_file(directory: str | Path, data: bytes, *, suffix: str = "") -> Path:
    """Write ``data`` to a new, fsync'ed temporary file in ``directory`` and return its path.

    The caller renames it into place with :func:`os.replace` (or deletes it). On failure nothing is left.

    Raises
    ------
    OSError
        The file cannot be created, written or synced (read-only directory, disk full, ...).
    """
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return Path(temp_name)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Parameters
    ----------
    path : str or Path
        Target file; its directory must exist.
    data : bytes
        The complete new contents.

    Raises
    ------
    OSError
        When the temporary file cannot be created, written, synced or renamed (read-only directory, disk
        full, ...). The target is then untouched and the temporary file removed.

    Notes
    -----
    A target that exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a named pipe) is written
    through, not replaced: renaming over it would put a regular file where the device or pipe was.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:  # no such file yet (or unreachable: the rename below says why)
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        with open(path, "wb") as stream:
            stream.write(data)
        return
    temp = write_temp_file(path.parent, data, suffix=path.suffix)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete temporary files left by a writer killed mid-write; call only while holding the writer lock.

    Every live writer holds the lock while its temporary file exists, so any temporary file seen under the
    lock is stale.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for entry in Path(directory).glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def payload_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """Return the SHA-256 hex digest of a dict of arrays, independent of key order and file layout.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        The arrays to hash (a ``__sha256__`` entry is skipped).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    digest = hashlib.sha256()
    for key in sorted(arrays):
        if key == HASH_KEY:
            continue
        array = np.ascontiguousarray(arrays[key])
        header = f"{key}\0{array.dtype.str}\0{array.shape}\0".encode()
        digest.update(len(header).to_bytes(8, "little"))
        digest.update(header)
        digest.update(array.data)  # the bytes of array.tobytes(), without copying them
    return digest.hexdigest()


def to_arrays(values: Mapping[str, Any], *, what: str) -> dict[str, np.ndarray]:
    """Convert a flat dict of arrays, numbers, strings and bools to plain (non-object) numpy arrays.

    Parameters
    ----------
    values : mapping of str to array-like or scalar
        What to store. ``None`` values are dropped (``.npz`` cannot hold them without pickle).
    what : str
        Names the thing being saved, for error messages.

    Raises
    ------
    StoreError
        When a value would need pickle (nested dicts, ragged lists, arbitrary objects).
    """
    arrays = {}
    for key, value in values.items():
        if value is None:
            continue
        array = np.asarray(value)
        if array.dtype.kind in "OV":
            raise StoreError(
                f"{what}: value of {key!r} ({type(value).__name__}) cannot be stored without pickle; "
                "use numbers, strings or numeric arrays"
            )
        arrays[str(key)] = array
    return arrays


def encode_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays to the bytes of an uncompressed ``.npz`` embedding their :func:`payload_sha256`."""
    content = dict(arrays)
    content[HASH_KEY] = np.asarray(payload_sha256(content))
    buffer = io.BytesIO()
    np.savez(buffer, **content)
    return buffer.getvalue()


def read_npz(path: str | Path, *, what: str, data: bytes | None = None) -> dict[str, np.ndarray]:
    """Read an ``.npz`` written by :func:`encode_npz`, never unpickling, and check its embedded hash.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        Names the thing being loaded, for error messages (e.g. ``"speaker"``).
    data : bytes, optional
        The file's bytes when the caller has already read them (e.g. to hash them); ``path`` then only
        names the file in messages.

    Returns
    -------
    dict of str to ndarray
        Every array except ``__sha256__``.

    Raises
    ------
    StoreError
        Missing or unreadable file, not an ``.npz``, an array that would need pickle, or contents that do
        not match the embedded hash (tampered or corrupt file).
    """
    try:
        loaded = np.load(path if data is None else io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise StoreError(f"{path}: {what} file is not an .npz archive")
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except FileNotFoundError:
        raise StoreError(f"{path}: {what} file is missing") from None
    except ValueError as exc:
        # numpy raises ValueError for object arrays when pickle is disallowed, and for bad .npy headers.
        raise StoreError(f"{path}: {what} file refused: {exc}") from None
    # A corrupted zip header can also claim a newer zip version or an unknown compression method
    # (NotImplementedError), encryption (RuntimeError), or deflate over bytes that are not (zlib.error).
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise StoreError(f"{path}: {what} file is unreadable or not an .npz archive ({exc})") from None
    stored_hash = arrays.pop(HASH_KEY, None)
    if stored_hash is None or stored_hash.shape != () or stored_hash.dtype.kind != "U":
        raise StoreError(f"{path}: {what} file has no content hash, so it was not written by spkid")
    if str(stored_hash) != payload_sha256(arrays):
        raise StoreError(f"{path}: {what} file contents do not match their stored SHA-256 (tampered/corrupt)")
    return arrays


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_python(array: np.ndarray) -> Any:
    """Return a 0-d array as a Python scalar and any other array unchanged."""
    return array.item() if array.shape == () else array
