"""The writer lock of a model directory: an exclusive ``flock`` on a lock file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX advisory locks; spkid's supported platforms (Linux, macOS) all have fcntl.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def writer_lock(lock_path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` for the duration of the ``with`` block.

    Writers of the same directory, in this process or others, are serialised; a writer killed while
    holding the lock releases it automatically (the kernel drops ``flock`` locks with the process).

    Parameters
    ----------
    lock_path : str or Path
        The lock file; created if missing. Its contents are never read.

    Raises
    ------
    OSError
        When the lock file cannot be created or opened (e.g. a read-only directory).
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)
