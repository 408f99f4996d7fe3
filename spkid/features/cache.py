"""On-disk cache of extracted features, shared by :func:`spkid.features.extract_many` and the feature store.

A cache entry is one float32 ``.npy`` file named by a hash of the audio file's identity (absolute path,
size, modification time in ns), the feature settings and the front-end's code version; it is written to a
temporary file and renamed into place, so a crash or a concurrent run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spkid.errors import AudioError

if TYPE_CHECKING:
    from spkid.features.config import FeatureConfig
    from spkid.features.normalization import GlobalStats

#: Part of every cache key: bump when the numbers extract() produces for some config change. (Which
#: generation of the front-end a config reproduces is its own ``frontend_version`` setting.)
CACHE_VERSION = 3


def cache_settings(
    config: FeatureConfig, *, frontend_version: int, stats: GlobalStats | None = None
) -> dict[str, Any]:
    """The settings part of a cache key: the feature config and the front-end's code version.

    :func:`spkid.features.extract_many` and :meth:`spkid.features.store.FeatureStore.build` both key their
    entries with this, so they find each other's files.

    Parameters
    ----------
    config : FeatureConfig
    frontend_version : int
        :data:`CACHE_VERSION`, the code version of the front-end.
    stats : GlobalStats, optional
        Pool statistics the features are normalised with; their digest joins the key.

    Returns
    -------
    dict
        ``{"frontend_version": ..., "features": config.to_dict()}`` (and ``"global_stats": digest`` with
        ``stats``) as JSON reads it back (lists, not tuples), so it compares equal to a copy stored in a JSON
        index; :func:`cache_file` keys are the same either way.
    """
    # ``bands`` picks which front-ends a model holds; each extracts as its other settings say.
    extraction = {name: value for name, value in config.to_dict().items() if name != "bands"}
    settings: dict[str, Any] = {"frontend_version": frontend_version, "features": extraction}
    if stats is not None:
        settings["global_stats"] = stats.digest()
    return json.loads(json.dumps(settings))


def cache_file(cache_dir: str | Path, audio_path: str | Path, settings: dict[str, Any]) -> Path:
    """Where the features of ``audio_path`` computed with ``settings`` are cached.

    Parameters
    ----------
    cache_dir : str or Path
    audio_path : str or Path
    settings : dict
        Everything the features depend on besides the file (feature config and code version).

    Raises
    ------
    AudioError
        The audio file does not exist.
    """
    audio_path = Path(audio_path).absolute()
    try:
        status = audio_path.stat()
    except FileNotFoundError as error:
        raise AudioError(audio_path, "no such file or directory") from error
    except OSError as error:
        raise AudioError(audio_path, f"cannot stat ({error.strerror})") from error
    identity = {"path": str(audio_path), "size": status.st_size, "mtime_ns": status.st_mtime_ns, **settings}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return Path(cache_dir) / digest[:2] / f"{digest}.npy"


def read_cached(path: Path, n_features: int) -> np.ndarray | None:
    """The cached array at ``path``, or None when absent or unreadable (it is then recomputed)."""
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if features.dtype != np.float32 or features.ndim != 2 or features.shape[1] != n_features:
        return None
    return features


def write_cached(path: Path, features: np.ndarray) -> None:
    """Write ``features`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.save(handle, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
