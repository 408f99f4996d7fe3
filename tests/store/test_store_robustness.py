"""Property-based robustness tests (hypothesis): whatever arrives, spkid answers or raises its own error.

- any finite waveform gives finite features, or a FeatureError saying it is too short, silent or speechless;
- any bytes given as an audio file decode to a finite waveform or raise AudioError, never another exception;
- EM and MAP adaptation on degenerate frames (duplicates, constant dimensions, fewer frames than components)
  return a valid model or raise ModelError, never NaN;
- tampered model files are rejected with StoreError (and one ``error:`` line from the CLI), never unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

from spkid.atomic import encode_npz
from spkid.audio import load
from spkid.cli import app
from spkid.errors import AudioError, FeatureError, ModelError, SpkidError, StoreError
from spkid.features import FeatureConfig, extract
from spkid.gmm import DiagonalGMM
from spkid.score import ScoreConfig
from spkid.store import ModelStore
from spkid.ubm import EnrollConfig, UBMConfig, map_adapt, train_ubm

# SPKID_HYPOTHESIS_EXAMPLES=1000 for a deeper local search; CI keeps it short.
PROPERTY = settings(
    max_examples=int(os.environ.get("SPKID_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
RATE_HZ = 16000
CONFIGS = {
    "default": FeatureConfig(),
    "raw": FeatureConfig(vad="none", cmvn="none", delta_order=0),
    "sliding": FeatureConfig(cmvn="sliding", cmvn_window_frames=20, n_ceps=13, delta_order=1),
    "8k-no-variance": FeatureConfig(sample_rate=8000, cmvn_variance=False, window="povey"),
}
FEATURE_REASONS = ("too short", "silent", "no speech")


def check_features(signal: np.ndarray, config: FeatureConfig, sample_rate: int | None = None) -> None:
    """The property: finite ``(n, n_features)`` float32 features, or a one-line FeatureError with a reason."""
    try:
        features = extract(signal, config, sample_rate=sample_rate)
    except FeatureError as error:
        message = str(error)
        assert "\n" not in message and any(reason in message for reason in FEATURE_REASONS), message
        return
    assert features.dtype == np.float32 and features.ndim == 2
    assert features.shape[1] == config.n_features and features.shape[0] >= 1
    assert np.all(np.isfinite(features)), "non-finite features"


# ------------------------------------------------------------------------------------------------ features
any_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@PROPERTY
@given(
    signal=arrays(np.float32, st.integers(0, 8000), elements=any_float32),
    config=st.sampled_from(sorted(CONFIGS)),
)
def test_any_finite_float_signal_gives_finite_features_or_a_clear_error(signal, config):
    check_features(signal, CONFIGS[config])


@st.composite
def speechlike_signals(draw) -> tuple[np.ndarray, int]:
    """Tones, noise bursts, DC, silence and clicks at levels from -200 dBFS to far beyond full scale."""
    rate_hz = draw(st.sampled_from([RATE_HZ, 8000, 44100]))
    n_samples = draw(st.integers(0, int(1.5 * rate_hz)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    time_s = np.arange(n_samples) / rate_hz
    signal = np.zeros(n_samples)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["tone", "noise", "dc", "click", "square"]))
        level = 10.0 ** (draw(st.floats(-10.0, 6.0)))
        start = draw(st.integers(0, max(n_samples - 1, 0)))
        stop = draw(st.integers(start, n_samples))
        part = slice(start, stop)
        if kind == "tone":
            signal[part] += level * np.sin(2 * np.pi * draw(st.floats(20.0, rate_hz / 2)) * time_s[part])
        elif kind == "noise":
            signal[part] += level * rng.standard_normal(stop - start)
        elif kind == "dc":
            signal[part] += level
        elif kind == "click":
            signal[start : start + 1] += level
        else:
            signal[part] += level * np.sign(np.sin(2 * np.pi * 100.0 * time_s[part]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16]))
    if dtype is np.int16:
        signal = np.clip(np.round(signal * 32767), -32768, 32767)
    return signal.astype(dtype), rate_hz


@PROPERTY
@given(drawn=speechlike_signals(), config=st.sampled_from(sorted(CONFIGS)))
def test_any_structured_signal_at_any_level_and_rate_gives_finite_features_or_a_clear_error(drawn, config):
    signal, rate_hz = drawn
    check_features(signal, CONFIGS[config], sample_rate=rate_hz)


def test_non_finite_or_misshapen_waveforms_are_feature_errors():
    good = np.sin(np.arange(RATE_HZ) * 0.3).astype(np.float32)
    for bad, reason in [
        (np.where(np.arange(RATE_HZ) == 5, np.nan, good), "1 NaN/Inf samples"),
        (np.where(np.arange(RATE_HZ) % 2 == 0, np.inf, good), "8000 NaN/Inf samples"),
        (np.stack([good, good]), "expected a mono waveform"),
        (good.astype(complex), "expected a numeric waveform"),
    ]:
        with pytest.raises(FeatureError, match=reason):
            extract(bad)


# ------------------------------------------------------------------------------------------------ audio bytes
def _wav_bytes(samples: np.ndarray, subtype: str = "PCM_16") -> bytes:
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE_HZ, format="WAV", subtype=subtype)
    return buffer.getvalue()


GOOD_WAV = _wav_bytes(0.3 * np.sin(np.arange(4000) * 0.2))
FLOAT_WAV = _wav_bytes(0.3 * np.sin(np.arange(4000) * 0.2), subtype="FLOAT")
MAGIC = [
    b"",
    b"RIFF\x00\x10\x00\x00WAVEfmt ",
    b"RIFF\xff\xff\xff\xffWAVE",
    b"fLaC",
    b"OggS\x00\x02",
    b"ID3\x03",
    b"\xff\xfb\x90\x64",
    b"FORM\x00\x00\x10\x00AIFF",
    b".snd\x00\x00\x00\x18",
    b"NIST_1A\n   1024\n",
    b"caff\x00\x01\x00\x00",
    GOOD_WAV[:44],
    FLOAT_WAV[:58],
]


@st.composite
def audio_file_bytes(draw) -> bytes:
    """Random bytes, random bytes behind a real format's magic, or a real WAV with corrupted bytes."""
    style = draw(st.sampled_from(["random", "magic", "mutated", "truncated"]))
    if style == "random":
        return draw(st.binary(max_size=4096))
    if style == "magic":
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from([GOOD_WAV, FLOAT_WAV])))
    if style == "truncated":
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([64, len(data) - 1])))))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("robustness_audio")


@PROPERTY
@given(
    data=audio_file_bytes(),
    suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".aiff", ".au", ".sph", ".caf", ".bin"]),
)
def test_any_bytes_as_an_audio_file_decode_or_raise_audio_error(scratch: Path, data: bytes, suffix: str):
    path = scratch / f"input{suffix}"
    path.write_bytes(data)
    try:
        signal = load(path, RATE_HZ)
    except AudioError as error:
        assert error.path == path and str(error).startswith(f"{path}: ") and "\n" not in str(error)
        return
    # Corrupted but decodable (e.g. a flipped sample byte): a valid waveform, never NaN or out of range.
    assert signal.dtype == np.float32 and signal.ndim == 1 and signal.size > 0
    assert np.all(np.isfinite(signal)) and np.max(np.abs(signal)) <= 1.0
    try:
        features = extract(path, FeatureConfig())
    except (AudioError, FeatureError) as error:
        assert str(path) in str(error)
    else:
        assert np.all(np.isfinite(features))


def test_float_wav_with_nan_is_an_audio_error(scratch: Path):
    samples = np.sin(np.arange(4000) * 0.2).astype(np.float32)
    samples[[7, 8]] = [np.nan, -np.inf]
    path = scratch / "nan.wav"
    path.write_bytes(_wav_bytes(samples, subtype="FLOAT"))
    with pytest.raises(AudioError, match=r"nan.wav: 2 NaN/Inf samples"):
        load(path)


# ------------------------------------------------------------------------------------------------ EM
def check_model(model: DiagonalGMM, X: np.ndarray) -> None:
    """A valid fitted model: finite parameters, weights summing to 1, positive variances, finite scores."""
    assert np.all(np.isfinite(model.weights_)) and np.all(model.weights_ >= 0)
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.variances_))
    assert np.all(model.variances_ > 0)
    assert all(np.isfinite(value) for value in model.history_)
    assert np.all(np.isfinite(model.score_samples(X)))


@st.composite
def degenerate_frames(draw) -> tuple[np.ndarray, int]:
    """Frames with duplicated rows, constant dimensions, and/or far fewer rows than components."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 6))
    n_components = draw(st.sampled_from([1, 2, 4, 8, 16]))
    n_distinct = draw(st.integers(1, 60))
    scale = draw(st.sampled_from([1e-4, 1.0, 1e4]))
    offset = draw(st.sampled_from([0.0, 1.0, -1e3]))
    distinct = offset + scale * rng.standard_normal((n_distinct, n_features))
    repeats = draw(st.integers(1, 50))
    X = np.repeat(distinct, repeats, axis=0)
    for dim in draw(st.sets(st.integers(0, n_features - 1))):
        X[:, dim] = draw(st.sampled_from([0.0, 3.5, -1e3]))
    if draw(st.booleans()):  # a few rows copied many times among the others
        X = np.concatenate([X, np.repeat(X[:1], draw(st.integers(1, 200)), axis=0)])
    return rng.permutation(X).astype(draw(st.sampled_from([np.float32, np.float64]))), n_components


@PROPERTY
@given(
    drawn=degenerate_frames(),
    init=st.sampled_from(["kmeans++", "split"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_em_on_degenerate_frames_returns_a_valid_model_or_raises_model_error(drawn, init, dtype):
    X, n_components = drawn
    try:
        model = DiagonalGMM(n_components, max_iter=5, init=init, random_state=0, dtype=dtype).fit(X)
    except ModelError as error:
        assert "\n" not in str(error)
        return
    check_model(model, X)


@PROPERTY
@given(drawn=degenerate_frames(), n_utterances=st.integers(1, 3))
def test_ubm_training_and_map_adaptation_on_degenerate_frames(drawn, n_utterances):
    X, n_components = drawn
    utterances = [part for part in np.array_split(X, n_utterances) if len(part)]
    config = UBMConfig(n_components=n_components, max_iter=3, min_frames_per_component=2)
    try:
        ubm = train_ubm(utterances, config)
    except ModelError as error:
        assert "\n" not in str(error)
        return
    check_model(ubm, X)
    for adapt in ("means", ("means", "weights", "variances")):
        check_model(map_adapt(ubm, utterances[:1], adapt=adapt), X)
        check_model(map_adapt(ubm, X[:1], relevance_factor=0.0, adapt=adapt), X)  # one frame, no prior


def test_far_fewer_frames_than_components_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ModelError, match=r"5 frames is too few for 16 components"):
        DiagonalGMM(16).fit(X)
    with pytest.raises(ModelError, match=r"5 frames cannot train even 2 components"):
        train_ubm([X], UBMConfig(n_components=16))


# ------------------------------------------------------------------------------------------------ model files
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
    wav.write_bytes(_wav_bytes(0.3 * np.sin(np.arange(RATE_HZ) * 0.2) * np.hanning(RATE_HZ)))
    result = CliRunner().invoke(app, ["identify", str(model), str(wav)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.stderr.splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith(f"error: {file}: invalid speaker 'bob'") and "NaN" in lines[0]
    )
    assert isinstance(
        CliRunner().invoke(app, ["--debug", "identify", str(model), str(wav)]).exception, SpkidError
    )


def test_wav_header_fields_beyond_reason_are_audio_errors(scratch: Path):
    """Hand-made headers with absurd fields (0 Hz, 0 channels, 0-bit samples) are refused, not divided by."""
    data = b"\x00\x01" * 100
    for rate_hz, channels, bits in [(0, 1, 16), (RATE_HZ, 0, 16), (RATE_HZ, 1, 0), (RATE_HZ, 1, 13)]:
        fmt = struct.pack(
            "<HHIIHH",
            1,
            channels,
            rate_hz,
            rate_hz * channels * bits // 8,
            max(channels * bits // 8, 1),
            bits,
        )
        chunks = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
        path = scratch / f"odd_{rate_hz}_{channels}_{bits}.wav"
        path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
        try:
            signal = load(path)
        except AudioError:
            continue
        assert np.all(np.isfinite(signal)) and signal.size > 0
