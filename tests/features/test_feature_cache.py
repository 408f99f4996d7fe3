"""Tests of spkid.features.cache: cache keys shared by extract_many and FeatureStore, atomic entries."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from spkid.errors import AudioError
from spkid.features import CACHE_VERSION, FeatureConfig, FeatureStore, extract_many
from spkid.features.cache import cache_file, cache_settings, read_cached, write_cached

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(n_ceps=13, n_fft=1024, window="hamming", f_max_hz=7000.0 / 3.0, cmvn="sliding"),
]


def settings_before_bands(config: FeatureConfig) -> dict:
    """The feature settings as keys held them before ``bands`` existed (it does not change extraction)."""
    settings = dataclasses.asdict(config)
    del settings["bands"]
    return settings


def key_as_written_before(cache_dir: Path, audio_path: Path, config: FeatureConfig) -> Path:
    """The entry path of the key extract_many built inline before cache_settings existed, spelt out."""
    status = audio_path.absolute().stat()
    identity = {
        "path": str(audio_path.absolute()),
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "frontend_version": CACHE_VERSION,
        "features": settings_before_bands(config),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return cache_dir / digest[:2] / f"{digest}.npy"


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "custom"])
def test_cache_settings_keep_the_keys_of_existing_caches(tmp_path: Path, config: FeatureConfig) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"not decoded: only the file's identity counts")
    settings = cache_settings(config, frontend_version=CACHE_VERSION)
    assert settings == {"frontend_version": CACHE_VERSION, "features": settings_before_bands(config)}
    inline_before = {"frontend_version": CACHE_VERSION, "features": settings_before_bands(config)}
    assert cache_file(tmp_path, audio, settings) == cache_file(tmp_path, audio, inline_before)
    assert cache_file(tmp_path, audio, settings) == key_as_written_before(tmp_path, audio, config)
    # A stored JSON copy compares equal, as FeatureStore's index check needs.
    assert json.loads(json.dumps(settings)) == settings


def test_cache_settings_change_with_the_config_and_the_version() -> None:
    default = cache_settings(FeatureConfig(), frontend_version=CACHE_VERSION)
    assert cache_settings(FeatureConfig(n_ceps=13), frontend_version=CACHE_VERSION) != default
    assert cache_settings(FeatureConfig(), frontend_version=CACHE_VERSION + 1) != default
    # which front-ends a model holds is not how one extracts: the same entries serve both
    assert cache_settings(FeatureConfig(bands="auto"), frontend_version=CACHE_VERSION) == default


def test_extract_many_and_the_feature_store_use_the_entry_of_the_old_key(
    synthetic_corpus: Path, tmp_path: Path
) -> None:
    audio = sorted(synthetic_corpus.rglob("*.wav"))[0]
    config = CONFIGS[1]
    expected = key_as_written_before(tmp_path, audio, config)
    (features,) = extract_many([audio], config, cache_dir=tmp_path)
    assert sorted(tmp_path.rglob("*.npy")) == [expected]
    np.testing.assert_array_equal(read_cached(expected, config.n_features), features)
    built = FeatureStore(tmp_path).build([audio], config)
    assert [Path(item.path) for item in built.files] == [expected]
    assert sorted(tmp_path.rglob("*.npy")) == [expected]  # found, not written again


def test_cache_file_of_a_missing_audio_file_names_it(tmp_path: Path) -> None:
    settings = cache_settings(FeatureConfig(), frontend_version=CACHE_VERSION)
    with pytest.raises(AudioError, match=r"gone\.wav: no such file"):
        cache_file(tmp_path, tmp_path / "gone.wav", settings)


def test_read_cached_rejects_entries_of_another_shape_or_type(tmp_path: Path) -> None:
    entry = tmp_path / "ab" / "entry.npy"
    write_cached(entry, np.ones((5, 3), dtype=np.float64))  # stored as float32
    assert read_cached(entry, 3).dtype == np.float32 and read_cached(entry, 3).shape == (5, 3)
    assert read_cached(entry, 4) is None
    entry.write_bytes(b"truncated")
    assert read_cached(entry, 3) is None
    assert read_cached(tmp_path / "missing.npy", 3) is None
    assert not list(tmp_path.rglob("*.tmp"))


#: Which extraction code each CACHE_VERSION caches features of: a digest of the code (docstrings and
#: comments left out) of the modules that decide the numbers extract() gives.
EXTRACTION_MODULES = (
    "spkid/audio.py",
    *(
        f"spkid/features/{name}.py"
        for name in (
            "config",
            "derivatives",
            "extraction",
            "filterbanks",
            "frontend",
            "normalization",
            "vad",
            "warping",
        )
    ),
)
EXTRACTION_CODE = {3: "fb9938734c5e2900"}


def _canonical(node: object) -> object:
    """A syntax tree as nested lists of node names and set fields (stable across Python versions, which add
    fields that are empty by default and change ``ast.dump``'s format)."""
    import ast

    if isinstance(node, ast.AST):
        fields = [(name, getattr(node, name, None)) for name in node._fields]
        return [
            type(node).__name__,
            [(name, _canonical(value)) for name, value in fields if value not in (None, [])],
        ]
    if isinstance(node, list):
        return [_canonical(item) for item in node]
    return repr(node)


def extraction_code_digest() -> str:
    """sha256 (first 16 hex digits) of the extraction modules' syntax trees without their docstrings."""
    import ast

    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for name in EXTRACTION_MODULES:
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(body, list)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        digest.update(name.encode() + repr(_canonical(tree)).encode())
    return digest.hexdigest()[:16]


def test_cache_version_moves_with_the_extraction_code():
    """Cached features are keyed by settings and CACHE_VERSION, not by the code: a change to how a setting
    extracts, without a new CACHE_VERSION, would silently reuse features of the old code."""
    found = extraction_code_digest()
    assert EXTRACTION_CODE.get(CACHE_VERSION) == found, (
        f"the feature extraction code changed (digest {found}). If extract() now gives different numbers "
        f"for some config, bump spkid.features.cache.CACHE_VERSION and pin {{new version: {found!r}}} here; "
        f"if not (a refactor), pin {found!r} under CACHE_VERSION {CACHE_VERSION}."
    )
