"""On-disk feature store: one float32 ``.npy`` file per utterance plus a JSON index, read memory-mapped.

The utterance files are the entries of :func:`spkid.features.extract_many`'s cache (same folder, same names),
so extraction and training share one copy. An index lists the utterances of one file list (id, source audio,
frame count, feature file); it is written once, atomically, and re-used while every source file and feature
file is unchanged. Training reads the files memory-mapped, a bounded batch of rows at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spkid.atomic import atomic_write_bytes
from spkid.errors import SpkidError, StoreError
from spkid.features.batch import extract_many
from spkid.features.cache import CACHE_VERSION, cache_file, cache_settings, write_cached
from spkid.features.config import FeatureConfig
from spkid.features.files import FeatureFile, SkippedFile, StoredFeatures
from spkid.progress import Progress

if TYPE_CHECKING:
    from spkid.features.normalization import GlobalStats

__all__ = ["FeatureFile", "FeatureStore", "StoredFeatures"]

INDEX_FORMAT, INDEX_VERSION = "spkid-feature-index", 1
INDEX_FOLDER = "index"
# extract_many is called on this many files at a time, so the arrays it returns stay few in memory.
BUILD_BATCH_FILES = 256


class FeatureStore:
    """A folder of per-utterance feature files and the indexes that list them.

    Parameters
    ----------
    root : path
        The folder (created when needed); pass the same folder as ``extract_many(cache_dir=...)`` to share
        its cache. For a Dask cluster it must be on a filesystem the workers see at the same path.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from spkid.corpora.synthetic import make_speakers
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = make_speakers(folder, n_speakers=1, n_utterances=2, duration_s=1.0)["spk01"]
    ...     store = FeatureStore(Path(folder, "features"))
    ...     stored = store.build(files, utterance_ids=["spk01-1", "spk01-2"])
    ...     again = store.build(files, utterance_ids=["spk01-1", "spk01-2"])  # the index, nothing extracted
    >>> stored.utterance_ids, stored.n_frames, again.files == stored.files
    (['spk01-1', 'spk01-2'], 196, True)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def build(
        self,
        paths: Iterable[str | os.PathLike[str]],
        config: FeatureConfig | None = None,
        *,
        utterance_ids: Sequence[str] | None = None,
        n_jobs: int = 1,
        progress: bool = False,
        skip_bad: bool = False,
        skip_unusable: bool = False,
        stats: GlobalStats | None = None,
    ) -> StoredFeatures:
        """Extract the features of ``paths`` into the store once; later calls re-use the index.

        Parameters
        ----------
        paths : iterable of path
            Audio files.
        config : FeatureConfig, optional
            The default settings when None.
        utterance_ids : sequence of str, optional
            One id per path (default: the path as given).
        n_jobs, progress, skip_bad, skip_unusable, stats
            As for :func:`spkid.features.extract_many`.

        Returns
        -------
        StoredFeatures

        Raises
        ------
        SpkidError
            A bad audio file (unless ``skip_bad``). StoreError when the store cannot be written.
        """
        config = FeatureConfig() if config is None else config
        paths = [Path(path) for path in paths]
        ids = [str(path) for path in paths] if utterance_ids is None else [str(u) for u in utterance_ids]
        if len(ids) != len(paths):
            raise StoreError(f"{self.root}: {len(ids)} utterance ids for {len(paths)} files")
        settings = cache_settings(config, frontend_version=CACHE_VERSION, stats=stats)  # extract_many's, too
        sources = [str(path.absolute()) for path in paths]
        key = json.dumps({"settings": settings, "sources": sources, "ids": ids}, sort_keys=True)
        name = "audio-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
        try:
            existing = self._read_index(name)
        except StoreError:
            existing = None  # a damaged index is rebuilt
        if existing is not None and existing[1] == settings:
            if self._still_valid(existing[0], settings, skip_bad, skip_unusable):
                return existing[0]
        files: dict[int, FeatureFile] = {}
        skipped: dict[int, SkippedFile] = {}
        with Progress(len(paths), enabled=progress) as bar:
            todo = []
            for position, path in enumerate(paths):
                try:
                    target = cache_file(self.root, path, settings)
                except SpkidError as error:
                    if not skip_bad:
                        raise
                    skipped[position] = SkippedFile(path, str(error))
                    bar.advance()
                    continue
                found = _valid_entry(target, config.n_features)
                if found is None:
                    todo.append((position, target))
                else:
                    files[position] = found
                    bar.advance()
            for start in range(0, len(todo), BUILD_BATCH_FILES):
                batch = todo[start : start + BUILD_BATCH_FILES]
                result = extract_many(
                    [paths[p] for p, _ in batch],
                    config,
                    n_jobs=n_jobs,
                    cache_dir=self.root,
                    skip_bad=skip_bad,
                    skip_unusable=skip_unusable,
                    stats=stats,
                )
                bad = {item.path: item for item in result.skipped}
                extracted = dict(zip(result.paths, result, strict=True))
                for position, target in batch:
                    if paths[position] in bad:
                        skipped[position] = bad[paths[position]]
                    else:
                        files[position] = self._settle(target, extracted[paths[position]], config.n_features)
                bar.advance(len(batch))
        kept = sorted(files)
        stored = StoredFeatures(
            [files[p] for p in kept],
            [ids[p] for p in kept],
            [paths[p] for p in kept],
            [skipped[p] for p in sorted(skipped)],
        )
        self._write_index(name, stored, settings)
        return stored

    def write(self, name: str, items: Iterable[tuple[str, np.ndarray]]) -> StoredFeatures:
        """Store precomputed features under index ``name`` (overwriting it), one ``.npy`` file per utterance.

        Parameters
        ----------
        name : str
            Index name: letters, digits, ``-``, ``_`` and ``.``.
        items : iterable of (utterance id, ndarray of shape (n_frames, n_features))
            Consumed one at a time: only one array needs to be in memory.
        """
        self._check_name(name)
        files, ids = [], []
        for utterance_id, frames in items:
            frames = np.ascontiguousarray(frames, dtype=np.float32)
            if frames.ndim != 2:
                raise StoreError(
                    f"{self.root}: utterance {utterance_id!r} has shape {frames.shape}, "
                    "expected (n_frames, n_features)"
                )
            digest = hashlib.sha256(f"{name}\0{utterance_id}".encode()).hexdigest()
            target = self.root / "arrays" / digest[:2] / f"{digest}.npy"
            files.append(self._settle(target, frames, frames.shape[1], rewrite=True))
            ids.append(str(utterance_id))
        stored = StoredFeatures(files, ids, [Path(i) for i in ids], [])
        self._write_index(name, stored, None)
        return stored

    def load(self, name: str) -> StoredFeatures:
        """The utterances of index ``name`` (written by :meth:`write`), checked to be all present.

        Raises
        ------
        StoreError
            No such index, or a feature file listed in it is missing or has changed size.
        """
        self._check_name(name)
        found = self._read_index(name)
        if found is None:
            raise StoreError(f"{self._index_path(name)}: no such feature index")
        stored = found[0]
        for item in stored.files:
            if _expected_size(item) != _size_or_none(item.path):
                raise StoreError(
                    f"{item.path}: missing or changed since {self._index_path(name)} was written"
                )
        return stored

    # ------------------------------------------------------------------------------------------ internals
    def _index_path(self, name: str) -> Path:
        return self.root / INDEX_FOLDER / f"{name}.json"

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith("."):
            raise StoreError(f"feature index name {name!r}: use letters, digits, '-', '_' and '.'")

    def _settle(
        self, target: Path, frames: np.ndarray, n_features: int, *, rewrite: bool = False
    ) -> FeatureFile:
        """``target`` as a FeatureFile, writing ``frames`` there first when it is absent (or ``rewrite``)."""
        found = None if rewrite else _valid_entry(target, n_features)
        if found is None:
            try:
                write_cached(target, frames)
            except OSError as error:
                raise StoreError(f"{target}: cannot write features ({error.strerror or error})") from None
            found = FeatureFile.of_npy(target)
        return found

    def _write_index(self, name: str, stored: StoredFeatures, settings: dict | None) -> None:
        rows = [
            [
                uid,
                str(path),
                item.n_frames,
                item.n_features,
                os.path.relpath(item.path, self.root),
                item.offset_bytes,
                item.dtype,
            ]
            for uid, path, item in zip(stored.utterance_ids, stored.paths, stored.files, strict=True)
        ]
        payload = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "settings": settings,
            "columns": ["utterance_id", "source", "n_frames", "n_features", "file", "offset_bytes", "dtype"],
            "utterances": rows,
            "skipped": [[str(s.path), s.reason, s.unusable] for s in stored.skipped],
        }
        try:
            self._index_path(name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self._index_path(name), json.dumps(payload).encode("utf-8"))
        except OSError as error:
            raise StoreError(f"{self._index_path(name)}: cannot write ({error.strerror or error})") from None

    def _read_index(self, name: str) -> tuple[StoredFeatures, dict | None] | None:
        """Index ``name`` and its feature settings, None when absent; StoreError when it is malformed."""
        path = self._index_path(name)
        if not path.is_file():
            return None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("format") != INDEX_FORMAT or payload.get("version") != INDEX_VERSION:
                raise ValueError(f"not a version {INDEX_VERSION} {INDEX_FORMAT}")
            files = [
                FeatureFile(str(self.root / file), int(n), int(d), int(offset), str(dtype))
                for _, _, n, d, file, offset, dtype in payload["utterances"]
            ]
            stored = StoredFeatures(
                files,
                [str(row[0]) for row in payload["utterances"]],
                [Path(row[1]) for row in payload["utterances"]],
                [
                    SkippedFile(Path(row[0]), str(row[1]), bool(row[2:3] and row[2]))
                    for row in payload["skipped"]
                ],
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(f"{path}: unreadable feature index ({error})") from None
        return stored, payload.get("settings")

    def _still_valid(
        self, stored: StoredFeatures, settings: dict, skip_bad: bool, skip_unusable: bool
    ) -> bool:
        """Skipped files only as now allowed, and every source and feature file unchanged."""
        allowed = skip_bad or (skip_unusable and all(item.unusable for item in stored.skipped))
        if stored.skipped and not allowed:
            return False
        for source, item in zip(stored.paths, stored.files, strict=True):
            try:
                unchanged = cache_file(self.root, source, settings) == Path(item.path)
            except SpkidError:
                return False
            if not unchanged or _expected_size(item) != _size_or_none(item.path):
                return False
        return True


def _valid_entry(path: Path, n_features: int) -> FeatureFile | None:
    """The cache entry at ``path`` if it is a complete float32 ``(n, n_features)`` array, else None."""
    try:
        found = FeatureFile.of_npy(path)
    except StoreError:
        return None
    return found if found.n_features == n_features and np.dtype(found.dtype) == np.float32 else None


def _expected_size(item: FeatureFile) -> int:
    return item.offset_bytes + item.n_frames * item.n_features * np.dtype(item.dtype).itemsize


def _size_or_none(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
