"""The model directory's ``manifest.json``: what it holds, how a new one is built, how one is read back.

The manifest names the format and the spkid version that wrote it, the four config sections the model was
built with, the UBM's shape and the SHA-256 of ``ubm.npz``. Reading refuses anything another format or
spkid major version wrote, with a one-line :class:`~spkid.errors.StoreError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import spkid
from spkid.errors import StoreError
from spkid.store.checks import FORMAT_VERSION, check_version, config_differences, json_normalise

MANIFEST_FORMAT = "spkid-model"
CONFIG_SECTIONS = ("feature_config", "ubm_config", "enroll_config", "score_config")
REQUIRED_KEYS = (*CONFIG_SECTIONS, "ubm_shape", "files")


def new_manifest(
    configs: Mapping[str, Mapping[str, Any]], ubm_shape: tuple[int, int], files: Mapping[str, str]
) -> dict[str, Any]:
    """The manifest of a freshly created model.

    Parameters
    ----------
    configs : mapping of str to mapping
        One plain dict per name of :data:`CONFIG_SECTIONS`.
    ubm_shape : tuple of int
        ``(n_components, n_features)`` of the UBM.
    files : mapping of str to str
        File name to SHA-256 hex digest (the UBM's).

    Raises
    ------
    StoreError
        A config section is missing or cannot be stored as JSON.
    """
    missing = [name for name in CONFIG_SECTIONS if name not in configs]
    if missing:
        raise StoreError(f"model manifest: config section {missing[0]!r} is missing")
    return {
        "format": MANIFEST_FORMAT,
        "format_version": FORMAT_VERSION,
        "spkid_version": spkid.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{name: json_normalise(configs[name]) for name in CONFIG_SECTIONS},
        "ubm_shape": list(ubm_shape),
        "files": dict(files),
    }


def encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` (indented JSON, trailing newline)."""
    return json.dumps(manifest, indent=2).encode() + b"\n"


def read_manifest(manifest_path: Path, model_dir: Path) -> dict[str, Any]:
    """Read and check ``manifest_path`` of the model directory ``model_dir``.

    Raises
    ------
    StoreError
        No manifest (no model at ``model_dir``), unreadable JSON, not a spkid manifest, a model from another
        spkid major/format version, or a required key missing.
    """
    if not manifest_path.is_file():
        raise StoreError(f"no model at {model_dir}; run spkid train-ubm first")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{manifest_path}: unreadable model manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise StoreError(f"{manifest_path}: not a spkid model manifest")
    check_version(manifest, manifest_path)
    for key in REQUIRED_KEYS:
        if key not in manifest:
            raise StoreError(f"{manifest_path}: manifest lacks {key!r}")
    return manifest


class ManifestContents:
    """What a model's manifest says, read from ``self.manifest`` (the part of :class:`~spkid.store.ModelStore`
    that needs no file)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def feature_config(self) -> dict[str, Any]:
        """The feature config the UBM was trained with (a dict)."""
        return dict(self.manifest["feature_config"])

    @property
    def ubm_config(self) -> dict[str, Any]:
        """The UBM training config (a dict)."""
        return dict(self.manifest["ubm_config"])

    @property
    def enroll_config(self) -> dict[str, Any]:
        """The enrollment (MAP adaptation) config (a dict)."""
        return dict(self.manifest["enroll_config"])

    @property
    def score_config(self) -> dict[str, Any]:
        """The scoring config (a dict)."""
        return dict(self.manifest["score_config"])

    @property
    def ubm_shape(self) -> tuple[int, int]:
        """``(n_components, n_features)`` of the UBM."""
        n_components, n_features = self.manifest["ubm_shape"]
        return int(n_components), int(n_features)

    def check_feature_config(
        self, current: Mapping[str, Any], *, missing_as: Mapping[str, Any] | None = None
    ) -> None:
        """Raise :class:`StoreError` listing every key where ``current`` differs from the stored features.

        ``missing_as`` gives the values of settings a model made before they existed is read with.
        """
        differences = config_differences({**(missing_as or {}), **self.manifest["feature_config"]}, current)
        if differences:
            raise StoreError(
                f"{self.path}: features differ from those the model was trained with: "
                + "; ".join(differences)
                + " (drop the feature overrides, or retrain with spkid train-ubm)"
            )
