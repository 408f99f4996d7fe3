"""Checks behind the model store: speaker names and their file names, versions, config and model validity.

Every check raises :class:`~spkid.errors.StoreError` with a one-line message naming the file or name at
fault and the rule it breaks.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

import spkid
from spkid.atomic import to_python
from spkid.errors import ModelError, StoreError
from spkid.gmm import MixtureParameters

#: The model directory format this spkid writes; 2 added the front-end generation to the feature settings
#: and the optional ``frontend.npz`` (pool statistics); 3 stores speakers as float32 MAP statistics and adds
#: the speaker bank (``bank/``). Every version in READABLE_FORMATS is read.
FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
MAX_NAME_LENGTH = 200
_MAX_PLAIN_FILE_STEM = 180  # longer encoded names get a hashed stem, keeping file names under 255 bytes
KIND_KEY, NAME_KEY, UBM_SHA_KEY = "__kind__", "__name__", "__ubm_sha256__"


def validate_speaker_name(name: str) -> str:
    """Return ``name`` if it is a valid speaker name, else raise :class:`StoreError` naming the rule broken.

    A name is 1 to 200 characters with no path separator, no ``..``, no leading ``.``, no control
    character, and no leading or trailing whitespace.

    Examples
    --------
    >>> validate_speaker_name("Anne Marie")
    'Anne Marie'
    >>> validate_speaker_name(".hidden")
    Traceback (most recent call last):
        ...
    spkid.errors.StoreError: speaker name '.hidden': must not start with '.' (hidden names are refused)
    """
    shown = repr(name) if len(str(name)) <= 60 else repr(str(name)[:40] + "...")
    if not isinstance(name, str):
        raise StoreError(f"speaker name {shown}: must be a string, got {type(name).__name__}")
    rules = [
        (name == "", "must not be empty"),
        (len(name) > MAX_NAME_LENGTH, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"),
        ("/" in name or "\\" in name, "must not contain a path separator ('/' or '\\')"),
        (".." in name, "must not contain '..'"),
        (name.startswith("."), "must not start with '.' (hidden names are refused)"),
        (
            any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name),
            "must not contain control characters",
        ),
        (name != name.strip(), "must not start or end with whitespace"),
    ]
    for broken, rule in rules:
        if broken:
            raise StoreError(f"speaker name {shown}: {rule}")
    return name


def speaker_file_name(name: str) -> str:
    """Map a valid speaker name to its file name in ``speakers/`` (injective, portable, < 255 bytes).

    Letters, digits and ``_.-~`` are kept; every other character is percent-encoded (UTF-8). Very long
    encodings are cut and suffixed with ``+`` and a hash of the name (``+`` never occurs in the plain form).

    Examples
    --------
    >>> speaker_file_name("Anne Marie"), speaker_file_name("josé")
    ('Anne%20Marie.npz', 'jos%C3%A9.npz')
    """
    stem = quote(validate_speaker_name(name), safe="")
    if len(stem) > _MAX_PLAIN_FILE_STEM:
        stem = stem[:100] + "+" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return stem + ".npz"


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """List the keys whose values differ between two config dicts, as ``"key (model X, now Y)"``.

    Values are compared after a JSON round trip, so tuples equal lists.

    Examples
    --------
    >>> config_differences({"top_c": 10, "normalization": "none"}, {"top_c": 5, "normalization": "none"})
    ['top_c (model 10, now 5)']
    >>> config_differences({"adapt": ("means",)}, {"adapt": ["means"], "top_c": 5})  # tuples equal lists
    ['top_c (model unset, now 5)']
    """
    stored, current = json_normalise(stored), json_normalise(current)
    missing = object()
    differences = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, missing), current.get(key, missing)
        if old != new:
            old_text = "unset" if old is missing else json.dumps(old)
            new_text = "unset" if new is missing else json.dumps(new)
            differences.append(f"{key} (model {old_text}, now {new_text})")
    return differences


def json_normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict as it reads back from JSON (tuples become lists); StoreError if JSON cannot hold it."""
    try:
        return json.loads(json.dumps(dict(config), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"config cannot be stored as JSON: {exc}") from None


def check_version(manifest: Mapping[str, Any], manifest_path: Path) -> None:
    """Refuse a manifest from another model format or another spkid major version."""
    written_by = str(manifest.get("spkid_version", "unknown"))
    format_version = manifest.get("format_version")
    same_major = written_by.split(".")[0] == spkid.__version__.split(".")[0]
    if format_version not in READABLE_FORMATS or not same_major:
        advice = (
            "upgrade spkid"
            if isinstance(format_version, int) and format_version > FORMAT_VERSION
            else ("retrain it with spkid train-ubm")
        )
        raise StoreError(
            f"{manifest_path}: model written by spkid {written_by} (model format {format_version}); this is "
            f"spkid {spkid.__version__} (model format {FORMAT_VERSION}); {advice}"
        )


def build_model(
    arrays: dict[str, np.ndarray], file: Path, what: str, shape: tuple[int, int] | None, *, kind: str | None
) -> MixtureParameters:
    """Validate stored model arrays and make them :class:`MixtureParameters` (StoreError naming ``file``)."""
    if kind is not None and to_python(arrays.get(KIND_KEY, np.asarray(""))) != kind:
        raise StoreError(f"{file}: not a {kind} model file")
    # Fit summaries (e.g. a lower bound of NaN before any EM) may be non-finite; the parameters are
    # checked below, after MixtureParameters has read them.
    fields = {key: value for key, value in arrays.items() if not key.startswith("__")}
    try:
        model = MixtureParameters.from_dict({key: to_python(value) for key, value in fields.items()})
    except (ModelError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{file}: invalid {what}: {exc}") from None
    n_components, n_features = shape_of(model)
    weights, means, variances = model.weights_, model.means_, model.variances_
    problems = [
        (
            weights.shape != (n_components,) or variances.shape != means.shape,
            f"inconsistent shapes weights {weights.shape}, means {means.shape}, variances {variances.shape}",
        ),
        (
            shape is not None and (n_components, n_features) != tuple(shape),
            f"has {n_components} components x {n_features} features but the UBM has {_shape_text(shape)}",
        ),
        (
            not (
                np.all(np.isfinite(means)) and np.all(np.isfinite(variances)) and np.all(np.isfinite(weights))
            ),
            "holds NaN or infinite parameters",
        ),
        (np.any(variances <= 0), "has non-positive variances"),
        (np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6), "weights do not sum to 1"),
    ]
    for broken, reason in problems:
        if broken:
            raise StoreError(f"{file}: invalid {what}: {reason}")
    return model


def check_cohort_arrays(
    arrays: Mapping[str, Any], file: Path, *, what: str = "cohort"
) -> dict[str, np.ndarray]:
    """Named arrays of a store file (the cohort, the feature statistics) as ``{name: ndarray}``: non-empty
    names without a leading ``__``, finite integer or float values (StoreError naming ``file`` and the
    array otherwise)."""
    checked = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or key.startswith("__"):
            raise StoreError(
                f"{file}: {what} array name {key!r} must be a non-empty string without a leading '__'"
            )
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            raise StoreError(f"{file}: {what} array {key!r} has dtype {array.dtype}; expected numbers")
        if not np.all(np.isfinite(array)):
            raise StoreError(f"{file}: {what} array {key!r} holds NaN or infinite values")
        checked[key] = array
    return checked


def _shape_text(shape: tuple[int, int] | None) -> str:
    return "" if shape is None else f"{shape[0]} x {shape[1]}"


def shape_of(model: MixtureParameters) -> tuple[int, int]:
    """``(n_components, n_features)`` of a fitted model."""
    means = np.asarray(getattr(model, "means_", None))
    if means.ndim != 2:
        raise StoreError(f"model is not fitted or has means of shape {means.shape}; expected (K, D)")
    return int(means.shape[0]), int(means.shape[1])


def check_model_arrays(
    arrays: Mapping[str, np.ndarray], file: Path, what: str, shape: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Check a model's arrays are finite and build it, returning ``(n_components, n_features)``."""
    return shape_of(build_model(dict(arrays), file, what, shape, kind=None))
