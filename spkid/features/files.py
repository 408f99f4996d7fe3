"""Utterance features on disk as cheap descriptors: rows of a ``.npy`` file, memory-mapped when used.

:class:`FeatureFile` is what shards carry to worker processes instead of frames; :class:`StoredFeatures` is
the lazily mapped sequence a :class:`spkid.features.store.FeatureStore` index returns. Light on imports, so
workers load it quickly.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spkid.errors import StoreError

__all__ = ["FeatureFile", "SkippedFile", "StoredFeatures"]


class SkippedFile(NamedTuple):
    """A file :func:`~spkid.features.extract_many` skipped, the one-line reason, and whether it decoded
    but held too little speech (``unusable``: too short, silent, no speech after VAD) rather than being
    unreadable.

    Examples
    --------
    >>> from pathlib import Path
    >>> path, reason, unusable = SkippedFile(Path("a.wav"), "silent: peak level -95 dBFS", unusable=True)
    >>> path.name, unusable
    ('a.wav', True)
    """

    path: Path
    reason: str
    unusable: bool = False


@dataclass(frozen=True)
class FeatureFile:
    """One utterance's frames on disk: ``n_frames`` rows of a C-ordered array at ``offset_bytes`` in ``path``.

    Cheap to pickle: this, not the frames, is what travels to worker processes, which memory-map the rows.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     np.save(Path(folder, "utt.npy"), np.zeros((100, 60), dtype=np.float32))
    ...     item = FeatureFile.of_npy(Path(folder, "utt.npy"))
    ...     rows = item.open(10, 20)  # read-only memory map of frames 10 to 19
    >>> item.n_frames, item.n_features, rows.shape, rows.flags.writeable
    (100, 60, (10, 60), False)
    """

    path: str
    n_frames: int
    n_features: int
    offset_bytes: int
    dtype: str = "float32"

    @classmethod
    def of_npy(cls, path: str | os.PathLike[str]) -> FeatureFile:
        """Describe a 2-D ``.npy`` file from its header (the data is not read).

        Raises
        ------
        StoreError
            Missing, unreadable, not a 2-D C-ordered float array, or shorter than its header says.
        """
        path = Path(path).absolute()
        try:
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran_order, dtype = read_header(handle)
                offset = handle.tell()
            size = path.stat().st_size
        except (OSError, ValueError) as error:
            raise StoreError(f"{path}: not a readable .npy feature file ({error})") from None
        if len(shape) != 2 or fortran_order or dtype.kind != "f":
            raise StoreError(f"{path}: expected a 2-D C-ordered float array, got shape {shape} dtype {dtype}")
        if size < offset + shape[0] * shape[1] * dtype.itemsize:
            raise StoreError(f"{path}: truncated ({size} bytes for shape {shape})")
        return cls(str(path), int(shape[0]), int(shape[1]), offset, dtype.str)

    @classmethod
    def of_memmap(cls, array: np.ndarray) -> FeatureFile | None:
        """Describe a read-only memory-mapped 2-D array with contiguous rows; None for any other array."""
        if not (
            isinstance(array, np.memmap)
            and array.filename
            and array.mode == "r"
            and array.ndim == 2
            and array.flags.c_contiguous
            and array.size
        ):
            return None
        mapping = array.base
        while mapping is not None and not isinstance(mapping, mmap.mmap):
            mapping = mapping.base
        if mapping is None or mapping.closed:
            return None
        mapping_start = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY  # as numpy maps it
        position = mapping_start + array.ctypes.data - np.frombuffer(mapping, dtype=np.uint8).ctypes.data
        return cls(str(array.filename), array.shape[0], array.shape[1], int(position), array.dtype.str)

    def open(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` as a read-only memory map, ndarray of shape (stop - start, n_features).

        Raises
        ------
        StoreError
            The file has gone (for instance, it is not on a filesystem this worker shares).
        """
        stop = self.n_frames if stop is None else stop
        dtype = np.dtype(self.dtype)
        if stop <= start:
            return np.empty((0, self.n_features), dtype=dtype)
        try:
            return np.memmap(
                self.path,
                dtype=dtype,
                mode="r",
                shape=(stop - start, self.n_features),
                offset=self.offset_bytes + start * self.n_features * dtype.itemsize,
            )
        except (OSError, ValueError) as error:
            raise StoreError(
                f"{self.path}: cannot memory-map features ({error}); workers must see the "
                "feature store at the same path (a shared filesystem)"
            ) from None


class StoredFeatures(Sequence[np.ndarray]):
    """The utterances of a store index: a sequence of arrays memory-mapped when accessed.

    Used where :func:`~spkid.features.extract_many`'s result is: items are ``(n_frames_i, n_features)``
    float32 arrays, ``paths`` the source of each, ``skipped`` the files left out. Nothing is read until an
    item is accessed, and :func:`spkid.ubm.train_ubm` reads the ``files`` chunk by chunk.

    Attributes
    ----------
    files : list of FeatureFile
    utterance_ids : list of str
    paths : list of Path
    skipped : list of SkippedFile

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from spkid.features import FeatureStore
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     utterances = [("a", np.zeros((30, 60))), ("b", np.ones((50, 60)))]
    ...     stored = FeatureStore(folder).write("pool", utterances)
    ...     second = stored[1]  # mapped from disk now
    >>> len(stored), stored.n_frames, stored.utterance_ids, second.shape, second.dtype
    (2, 80, ['a', 'b'], (50, 60), dtype('float32'))
    """

    def __init__(
        self,
        files: list[FeatureFile],
        utterance_ids: list[str],
        paths: list[Path],
        skipped: list[SkippedFile],
    ) -> None:
        self.files, self.utterance_ids, self.paths, self.skipped = files, utterance_ids, paths, skipped

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.files[i].open() for i in range(*index.indices(len(self.files)))]
        return self.files[index].open()

    def __iter__(self) -> Iterator[np.ndarray]:
        return (item.open() for item in self.files)

    @property
    def n_frames(self) -> int:
        """Total frames over all utterances."""
        return sum(item.n_frames for item in self.files)
