"""Property-based robustness of the model directory (hypothesis): tampered model files are rejected with
StoreError (and one ``error:`` line from the CLI), never unpickled.

The robustness of the other stages is tested beside them: ``tests/test_audio_robustness.py``,
``tests/features/test_features_robustness.py``, ``tests/gmm/test_gmm_robustness.py`` and
``tests/ubm/test_ubm_robustness.py``.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import PROPERTY, RATE_HZ, check_cli_error, cli_invoke, wav_bytes
from hypothesis import assume, given
from hypothesis import strategies as st

from spkid.atomic import encode_npz
from spkid.errors import SpkidError, StoreError
from spkid.features import FeatureConfig
from spkid.gmm import DiagonalGMM
from spkid.score import ScoreConfig
from spkid.store import ModelStore
from spkid.ubm import EnrollConfig, UBMConfig

N_COMPONENTS = 8
N_FEATURES = FeatureConfig().n_features


def _gmm(seed: int) -> DiagonalGMM:
    rng = np.random.default_rng(seed)
    weights = rng.random(N_COMPONENTS) + 0.1
    return DiagonalGMM.from_params(
        weights / weights.sum(),
        rng.standard_normal((N_COMPONENTS, N_FEATURES)),
        rng.random((N_COMPONENTS, N_FEATURES)) + 0.5,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory (random UBM, default feature settings) with speakers alice and bob."""
    path = tmp_path_factory.mktemp("robustness_models") / "model"
    store = ModelStore.create(
        path,
        feature_config=FeatureConfig().to_dict(),
        ubm_config=UBMConfig(n_components=N_COMPONENTS).to_dict(),
        enroll_config=EnrollConfig().to_dict(),
        score_config=ScoreConfig().to_dict(),
        ubm=_gmm(0),
    )
    store.save_speaker("alice", _gmm(1))
    store.save_speaker("bob", _gmm(2))
    return path


def _read(file: Path) -> dict[str, np.ndarray]:
    with np.load(file, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files if key != "__sha256__"}


def _tampered_arrays(arrays: dict[str, np.ndarray], kind: str, where: int) -> dict[str, np.ndarray]:
    changed = dict(arrays)
    key = ["weights", "means", "variances"][where % 3]
    value = np.array(changed[key], dtype=np.float64)
    flat = value.reshape(-1)
    if kind == "nan":
        flat[where % flat.size] = np.nan
    elif kind == "inf":
        flat[where % flat.size] = -np.inf
    elif kind == "negative":  # weights and variances must be >= 0 and > 0 (means may be anything)
        key = ["weights", "variances"][where % 2]
        value = np.array(changed[key], dtype=np.float64)
        value.reshape(-1)[where % value.size] = -1.0
    elif kind == "zero-variance":
        key, value = "variances", np.array(changed["variances"])
        value.reshape(-1)[where % value.size] = 0.0
    elif kind == "drop-row":
        value = value[:-1]
    elif kind == "transpose":
        value = value.T.copy() if value.ndim == 2 else value[None, :]
    elif kind == "wrong-dtype":
        value = np.asarray(["a"] * flat.size).reshape(value.shape)
    elif kind == "missing":
        del changed[key]
        return changed
    elif kind == "extra-key":
        changed["evil"] = np.zeros(3)
        return changed
    elif kind == "weights-sum":
        key, value = "weights", np.array(changed["weights"]) * 2.0
    changed[key] = value
    return changed


TAMPERINGS = [
    "nan",
    "inf",
    "negative",
    "zero-variance",
    "drop-row",
    "transpose",
    "wrong-dtype",
    "missing",
    "extra-key",
    "weights-sum",
]


@PROPERTY
@given(
    target=st.sampled_from(["ubm.npz", "speakers/alice.npz"]),
    kind=st.sampled_from(TAMPERINGS),
    where=st.integers(0, 10_000),
)
def test_tampered_model_arrays_with_a_valid_hash_are_rejected(
    pristine: Path, scratch: Path, target, kind, where
):
    model = scratch / "tampered"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(pristine, model)
    file = model / target
    file.write_bytes(encode_npz(_tampered_arrays(_read(file), kind, where)))
    if target == "ubm.npz":  # keep the manifest's SHA-256 in step, so only validation can catch it
        import hashlib

        manifest = json.loads((model / "manifest.json").read_text())
        manifest["files"]["ubm.npz"] = hashlib.sha256(file.read_bytes()).hexdigest()
        (model / "manifest.json").write_text(json.dumps(manifest))
    store = ModelStore.open(model)
    with pytest.raises(StoreError) as caught:
        store.load_ubm() if target == "ubm.npz" else store.load_speaker("alice")
    assert str(caught.value).startswith(str(file)) and "\n" not in str(caught.value)


@PROPERTY
@given(
    target=st.sampled_from(["ubm.npz", "speakers/alice.npz", "manifest.json"]),
    edits=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6
    ),
    truncate=st.none() | st.floats(0.0, 1.0, exclude_max=True),
)
def test_corrupted_model_file_bytes_are_rejected_or_harmless(
    pristine: Path, scratch: Path, target, edits, truncate
):
    model = scratch / "corrupted"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(pristine, model)
    file = model / target
    data = bytearray(file.read_bytes())
    for fraction, value in edits:
        data[int(fraction * len(data))] = value
    if truncate is not None:
        data = data[: int(truncate * len(data))]
    assume(bytes(data) != (pristine / target).read_bytes())
    file.write_bytes(bytes(data))
    try:
        store = ModelStore.open(model)
        models = {"ubm": store.load_ubm(), **store.load_speakers()}
    except StoreError as error:
        assert "\n" not in str(error)
        return
    # Only bytes that carry no content (zip timestamps, JSON whitespace) may change without an error.
    expected = {"ubm": _gmm(0), "alice": _gmm(1), "bob": _gmm(2)}
    assert sorted(models) == sorted(expected)
    for name, loaded in models.items():
        np.testing.assert_array_equal(loaded.means_, expected[name].means_)
        np.testing.assert_array_equal(loaded.variances_, expected[name].variances_)
        np.testing.assert_array_equal(loaded.weights_, expected[name].weights_)


def test_model_files_are_never_unpickled(pristine: Path, scratch: Path, monkeypatch):
    model = scratch / "pickled"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(pristine, model)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    arrays = {k: v for k, v in _read(model / "speakers" / "alice.npz").items()}
    arrays["means"] = np.array([{"payload": 1}], dtype=object)
    np.savez(model / "speakers" / "alice.npz", **arrays, __sha256__=np.asarray("0" * 64))
    with pytest.raises(StoreError, match=r"alice.npz: speaker file refused: .*pickle"):
        ModelStore.open(model).load_speaker("alice")


def test_tampered_model_is_one_clear_cli_error(pristine: Path, scratch: Path):
    model = scratch / "cli"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(pristine, model)
    file = model / "speakers" / "bob.npz"
    file.write_bytes(encode_npz(_tampered_arrays(_read(file), "nan", 1)))
    wav = scratch / "tone.wav"
    wav.write_bytes(wav_bytes(0.3 * np.sin(np.arange(RATE_HZ) * 0.2) * np.hanning(RATE_HZ)))
    line = check_cli_error(cli_invoke("identify", model, wav), "NaN")
    assert line.startswith(f"error: {file}: invalid speaker 'bob'")
    assert isinstance(cli_invoke("--debug", "identify", model, wav).exception, SpkidError)
