"""The on-disk model directory: a UBM, one file per enrolled speaker, a score-normalisation cohort.

There is no central speaker list to lose: the enrolled speakers are the speaker files present, each of which
is written atomically and embeds its own content hash and the SHA-256 of the UBM it was adapted from. A
writer killed at any point therefore leaves every earlier speaker intact and the interrupted one either
complete or absent. Nothing is ever unpickled. The files are listed in :mod:`spkid.store.layout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from spkid.atomic import (
    encode_npz,
    read_npz,
    to_arrays,
    to_python,
)
from spkid.errors import StoreError
from spkid.gmm import MixtureParameters
from spkid.store.checks import (
    KIND_KEY,
    NAME_KEY,
    UBM_SHA_KEY,
    build_model,
    check_cohort_arrays,
    check_model_arrays,
    speaker_file_name,
)
from spkid.store.layout import (
    FRONTEND_FILE,
    MANIFEST_FILE,
    SPEAKERS_DIR,
    UBM_FILE,
    write_model_directory,
)
from spkid.store.manifest import ManifestContents, new_manifest, read_manifest
from spkid.store.score_files import ScoreFiles, SpeakerCohortStats
from spkid.store.speaker_files import SpeakerFiles

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = ["ModelStore", "SpeakerCohortStats"]


class ModelStore(ManifestContents, ScoreFiles, SpeakerFiles):
    """A model directory opened for reading and writing; build with :meth:`create` or :meth:`open`.

    Attributes
    ----------
    path : Path
    manifest : dict
    cohort_stats : dict of str to SpeakerCohortStats
        The cohort statistics stored with each speaker loaded so far (speakers enrolled before they were
        stored have none).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> ubm = MixtureParameters(np.full(2, 0.5), np.zeros((2, 3)), np.ones((2, 3)))
    >>> alice = MixtureParameters(ubm.weights_, ubm.means_ + 1.0, ubm.variances_)  # MAP-adapted, in practice
    >>> configs = {"feature_config": {}, "ubm_config": {}, "enroll_config": {}, "score_config": {"top_c": 10}}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = ModelStore.create(folder, ubm=ubm, **configs).save_speaker("alice", alice)
    ...     store = ModelStore.open(folder)
    ...     print(store.speakers(), store.ubm_shape, store.load_speaker("alice").means_[0].tolist())
    ['alice'] (2, 3) [1.0, 1.0, 1.0]
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._ubm: MixtureParameters | None = None
        self.cohort_stats: dict[str, SpeakerCohortStats] = {}

    # ----------------------------------------------------------------------------- creation and opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        feature_config: Mapping[str, Any],
        ubm_config: Mapping[str, Any],
        enroll_config: Mapping[str, Any],
        score_config: Mapping[str, Any],
        ubm: MixtureParameters | DiagonalGMM,
        feature_stats: Mapping[str, np.ndarray] | None = None,
        overwrite: bool = False,
    ) -> ModelStore:
        """Write a new model directory holding ``ubm`` and no speakers.

        Parameters
        ----------
        path : str or Path
            The model directory (created if missing).
        feature_config, ubm_config, enroll_config, score_config : mapping
            The config sections as plain dicts (``to_dict()`` of the config objects).
        ubm : DiagonalGMM or MixtureParameters
            The fitted universal background model.
        feature_stats : mapping of str to ndarray, optional
            The UBM pool's feature statistics (:meth:`spkid.features.GlobalStats.to_arrays`), stored in
            ``frontend.npz`` for the normalisations that need them.
        overwrite : bool
            Replace an existing model, deleting its enrolled speakers and cohort (they belong to the old UBM).

        Raises
        ------
        StoreError
            A model already exists and ``overwrite`` is false, the UBM is invalid, or the directory cannot
            be written.
        """
        path = Path(path)
        ubm_arrays = to_arrays(ubm.to_dict(), what=f"{path / UBM_FILE}")
        shape = check_model_arrays(ubm_arrays, path / UBM_FILE, "UBM")
        ubm_arrays[KIND_KEY] = np.asarray("ubm")
        ubm_bytes = encode_npz(ubm_arrays)
        contents = {UBM_FILE: ubm_bytes}
        if feature_stats is not None:
            stats_arrays = check_cohort_arrays(feature_stats, path / FRONTEND_FILE, what="feature statistics")
            stats_arrays[KIND_KEY] = np.asarray("frontend")
            contents[FRONTEND_FILE] = encode_npz(stats_arrays)
        configs = {
            "feature_config": feature_config,
            "ubm_config": ubm_config,
            "enroll_config": enroll_config,
            "score_config": score_config,
        }
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
        manifest = new_manifest(configs, shape, hashes)
        write_model_directory(path, contents, manifest, overwrite=overwrite)
        return cls(path, manifest)

    @classmethod
    def open(cls, path: str | Path) -> ModelStore:
        """Open an existing model directory, checking that this spkid version can read it.

        Raises
        ------
        StoreError
            No model at ``path``, an unreadable manifest, or a model from another spkid major/format version.
        """
        path = Path(path)
        manifest = read_manifest(path / MANIFEST_FILE, path)
        return cls(path, manifest)

    # ----------------------------------------------------------------------------- UBM
    def load_ubm(self) -> MixtureParameters:
        """Load the UBM, checking its SHA-256 against the manifest."""
        if self._ubm is None:
            ubm_path = self.path / UBM_FILE
            data = self._verified_bytes(UBM_FILE, "the UBM")
            arrays = read_npz(ubm_path, what="UBM", data=data)
            self._ubm = build_model(arrays, ubm_path, "UBM", self.ubm_shape, kind="ubm")
        return self._ubm

    def load_feature_stats(self) -> dict[str, np.ndarray] | None:
        """The UBM pool's feature statistics stored at creation (``frontend.npz``), or None when absent."""
        digest = self.manifest["files"].get(FRONTEND_FILE)
        if digest is None:
            return None
        file = self.path / FRONTEND_FILE
        data = self._verified_bytes(FRONTEND_FILE, "the feature statistics")
        arrays = read_npz(file, what="feature statistics", data=data)
        if to_python(arrays.pop(KIND_KEY, np.asarray(""))) != "frontend":
            raise StoreError(f"{file}: not a feature statistics file")
        return check_cohort_arrays(arrays, file, what="feature statistics")

    # ----------------------------------------------------------------------------- speakers
    def speaker_path(self, name: str) -> Path:
        """The file that holds (or would hold) speaker ``name``."""
        return self.path / SPEAKERS_DIR / speaker_file_name(name)

    def speakers(self) -> list[str]:
        """Sorted names of the enrolled speakers (the speaker files present)."""
        names = []
        for file in (self.path / SPEAKERS_DIR).glob("*.npz"):
            if file.name.startswith("."):
                continue
            stem = file.name[: -len(".npz")]
            name = unquote(stem) if "+" not in stem else self._stored_name(file)
            try:
                canonical = speaker_file_name(name) == file.name
            except StoreError:
                canonical = False
            if not canonical:
                raise StoreError(f"{file}: not a speaker file written by spkid (unexpected name); remove it")
            names.append(name)
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.speaker_path(name).is_file()

    # ----------------------------------------------------------------------------- helpers
    def _verified_bytes(self, name: str, what: str) -> bytes:
        """The bytes of the file ``name``, checked against the SHA-256 the manifest lists for it."""
        file = self.path / name
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise StoreError(f"{file}: cannot read {what} ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != self.manifest["files"].get(name):
            raise StoreError(f"{file}: SHA-256 does not match the manifest (tampered or replaced)")
        return data

    @property
    def _ubm_sha256(self) -> str:
        return str(self.manifest["files"][UBM_FILE])

    def _stored_name(self, file: Path) -> str:
        return str(to_python(read_npz(file, what="speaker").get(NAME_KEY, np.asarray(""))))

    def _check_ubm_fingerprint(self, arrays: Mapping[str, np.ndarray], file: Path) -> None:
        if to_python(arrays.get(UBM_SHA_KEY, np.asarray(""))) != self._ubm_sha256:
            raise StoreError(f"{file}: made with a different UBM than {self.path / UBM_FILE}; re-enroll it")

    def _check_not_recreated(self) -> None:
        """Refuse to write beside a UBM replaced (``create(overwrite=True)``) since this store was opened."""
        current = ModelStore.open(self.path)
        if current.manifest["files"].get(UBM_FILE) != self._ubm_sha256:
            raise StoreError(f"{self.path}: the model was re-created since it was opened; open it again")
