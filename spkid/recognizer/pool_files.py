"""What ``train-ubm`` does with a pool's unusable files: the share of them that stops it, the error when no
file is usable, and the list of those left out, written into the model directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spkid.atomic import atomic_write_bytes
from spkid.errors import DataError, StoreError
from spkid.features import SkippedFile

__all__ = ["SKIPPED_LIST_FILE", "check_unusable_share", "no_usable_audio", "write_skipped_list"]

#: Where train-ubm lists the pool files it left out (one ``path<TAB>reason`` line each).
SKIPPED_LIST_FILE = "skipped_files.txt"


def no_usable_audio(n_files: int, skipped: Sequence[SkippedFile]) -> DataError:
    """The error of a pool none of whose ``n_files`` files could be used (the first reason named).

    Examples
    --------
    >>> print(no_usable_audio(2, [SkippedFile("a.wav", "a.wav: silent")]))
    no usable audio: all 2 files were skipped; first: a.wav: silent
    """
    first = f"; first: {skipped[0].reason}" if skipped else ""
    return DataError(f"no usable audio: all {n_files} files were skipped{first}")


def check_unusable_share(n_files: int, skipped: Sequence[SkippedFile], max_fraction: float) -> None:
    """DataError when more than ``max_fraction`` of the pool holds too little speech to use.

    Examples
    --------
    >>> check_unusable_share(10, [], 0.5)  # nothing unusable: no error
    """
    unusable = [item for item in skipped if item.unusable]
    if n_files and len(unusable) > max_fraction * n_files:
        raise DataError(
            f"UBM pool: {len(unusable)} of {n_files} files ({len(unusable) / n_files:.0%}) hold too little "
            f"speech, more than ubm.max_unusable_fraction={max_fraction:g}; check the pool "
            f"(first: {unusable[0].reason})"
        )


def write_skipped_list(model_dir: Path, skipped: Sequence[SkippedFile]) -> None:
    """:data:`SKIPPED_LIST_FILE` in ``model_dir``: one ``path<TAB>reason`` line per skipped file (removed when
    none was skipped); StoreError when it cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_skipped_list(Path(folder), [SkippedFile("a.wav", "a.wav: silent")])
    ...     (Path(folder) / SKIPPED_LIST_FILE).read_text().splitlines()[0].split(chr(9))  # tab-separated
    ['a.wav', 'a.wav: silent']
    """
    target = model_dir / SKIPPED_LIST_FILE
    if not skipped:
        target.unlink(missing_ok=True)
        return
    lines = "".join(f"{item.path}\t{' '.join(item.reason.split())}\n" for item in skipped)
    try:
        atomic_write_bytes(target, lines.encode("utf-8"))
    except OSError as exc:
        raise StoreError(f"{target}: cannot write ({exc.strerror or exc})") from None
