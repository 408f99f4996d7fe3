"""Tests of the MFCC front-end against librosa/scipy references, VAD, CMVN, extract and extract_many."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spkid.audio import load, resample
from spkid.corpora.synthetic import make_utterance
from spkid.errors import AudioError, ConfigError, FeatureError
from spkid.features import (
    ExtractResult,
    FeatureConfig,
    cmvn,
    deltas,
    energy_vad,
    extract,
    extract_many,
    extraction,
    filterbanks,
    frame_energy_db,
    frame_signal,
    log_mel,
    mel_filterbank,
    mfcc,
    power_spectrum,
    pre_emphasis,
    sliding_cmvn,
    window_function,
    with_deltas,
)
from spkid.features.frontend import projected_power

RAW = FeatureConfig(vad="none", cmvn="none")
SPEECH_ONLY = FeatureConfig(vad="energy")  # the energy VAD: speech frames only


# -- FeatureConfig ---------------------------------------------------------------------------------------
def test_config_defaults_and_derived_sizes() -> None:
    config = FeatureConfig()
    assert (config.frame_length, config.frame_shift, config.fft_size) == (400, 160, 512)
    assert config.n_features == 60
    assert FeatureConfig(delta_order=0).n_features == 20
    assert FeatureConfig(sample_rate=8000, f_max_hz=7600.0).f_max_effective_hz == 4000.0  # clipped to Nyquist
    assert FeatureConfig(sample_rate=8000).fft_size == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_mels = 20  # type: ignore[misc]


def test_config_dict_round_trip_and_yaml_like_values() -> None:
    config = FeatureConfig(n_mels=30, cmvn="sliding", n_fft=1024)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    coerced = FeatureConfig.from_dict({"n_mels": 30.0, "f_min_hz": 0, "window": "HANN"})
    assert coerced.n_mels == 30 and isinstance(coerced.n_mels, int)
    assert isinstance(coerced.f_min_hz, float) and coerced.window == "hann"


def test_config_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'n_mel' \(did you mean 'n_mels'\?\)"):
        FeatureConfig.from_dict({"n_mel": 40})
    with pytest.raises(ConfigError, match="unknown setting 'zzz'$"):
        FeatureConfig.from_dict({"zzz": 1})


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"frame_shift_ms": 30.0}, "frame_shift_ms"),
        ({"frame_length_ms": 0.0}, "frame_length_ms"),
        ({"sample_rate": -16000}, "sample_rate"),
        ({"n_ceps": 41}, "n_ceps"),
        ({"f_min_hz": 8000.0}, "f_min_hz"),
        ({"sample_rate": 8000, "f_min_hz": 4000.0}, "f_min_hz"),
        ({"n_fft": 256}, "n_fft"),
        ({"pre_emphasis": 1.0}, "pre_emphasis"),
        ({"cmvn": "warp"}, "cmvn"),
        ({"sample_rate": "automatic"}, "sample_rate"),
        ({"frontend_version": 1}, "frontend_version"),
        ({"cmvn_relevance_frames": -1.0}, "cmvn_relevance_frames"),
        ({"window": "hamm"}, "window"),
        ({"vad": "webrtc"}, "vad"),
        ({"delta_order": 3}, "delta_order"),
        ({"lifter": -1.0}, "lifter"),
        ({"vad_threshold_fraction": 1.5}, "vad_threshold_fraction"),
        ({"n_mels": "40"}, "n_mels"),
        ({"n_mels": 40.5}, "n_mels"),
        ({"cmvn_variance": "yes"}, "cmvn_variance"),
        ({"f_max_hz": float("nan")}, "f_max_hz"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(settings: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^features\.{field}="):
        FeatureConfig(**settings)


def test_config_error_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="did you mean 'hamming'"):
        FeatureConfig(window="hamming_")


# -- stages against references ----------------------------------------------------------------------------
def test_frame_signal_is_a_strided_view_matching_a_loop() -> None:
    signal = np.arange(1000, dtype=np.float32)
    frames = frame_signal(signal, 400, 160)
    assert frames.shape == (1 + (1000 - 400) // 160, 400)
    assert np.shares_memory(frames, signal)
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, signal[index * 160 : index * 160 + 400])
    assert frame_signal(signal[:399], 400, 160).shape == (0, 400)


def test_pre_emphasis_matches_lfilter() -> None:
    signal = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    expected = scipy.signal.lfilter([1.0, -0.97], [1.0], signal)
    emphasized = pre_emphasis(signal, 0.97)
    np.testing.assert_allclose(emphasized[1:], expected[1:], rtol=1e-5, atol=1e-6)
    assert emphasized[0] == pytest.approx(signal[0] * 0.03)
    np.testing.assert_array_equal(pre_emphasis(signal, 0.0), signal)


def test_power_spectrum_matches_numpy_fft() -> None:
    frames = np.random.default_rng(1).standard_normal((7, 400)).astype(np.float32)
    window = window_function("hamming", 400)
    expected = np.abs(np.fft.rfft(frames.astype(np.float64) * window, n=512, axis=1)) ** 2
    power = power_spectrum(frames, window, 512)
    assert power.dtype == np.float32 and power.shape == (7, 257)
    np.testing.assert_allclose(power, expected, rtol=1e-4, atol=1e-4 * expected.max())


@pytest.mark.parametrize("block_frames", [1, 7, 256])
def test_projected_power_equals_power_spectrum_times_weights(block_frames: int) -> None:
    frames = np.random.default_rng(7).standard_normal((40, 400)).astype(np.float32)
    window = window_function("hann", 400)
    weights = np.random.default_rng(8).random((257, 5)).astype(np.float32)
    expected = power_spectrum(frames, window, 512).astype(np.float64) @ weights
    projected = projected_power(frames, window, 512, weights, block_frames=block_frames)
    assert projected.dtype == np.float32
    np.testing.assert_allclose(projected, expected, rtol=1e-4)


@pytest.mark.parametrize("n_samples", [200, 400, 551])
def test_windows_match_scipy(n_samples: int) -> None:
    for name in ("hann", "hamming", "blackman"):
        expected = scipy.signal.get_window(name, n_samples, fftbins=True)
        np.testing.assert_allclose(window_function(name, n_samples), expected, atol=1e-7)
        np.testing.assert_allclose(filterbanks.window(name, n_samples), expected, rtol=0, atol=1e-12)
    povey = scipy.signal.get_window("hann", n_samples, fftbins=False) ** 0.85
    np.testing.assert_allclose(window_function("povey", n_samples), povey, atol=1e-6)
    np.testing.assert_array_equal(window_function("rectangular", n_samples), np.ones(n_samples))
    with pytest.raises(ValueError, match="window 'kaiser'"):
        filterbanks.window("kaiser", n_samples)


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "n_mels", "f_min_hz", "f_max_hz"),
    [
        (16000, 512, 40, 20.0, 7600.0),
        (8000, 256, 23, 20.0, 3800.0),
        (16000, 400, 80, 0.0, 8000.0),
        (44100, 2048, 128, 0.0, 22050.0),
        (22050, 1024, 40, 300.0, 8000.0),
        (8000, 200, 30, 100.0, 4000.0),
    ],
)
def test_mel_filterbank_is_librosas_and_cached(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz) -> None:
    filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa warns about empty low bands at small n_fft
        expected = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min_hz, fmax=f_max_hz, dtype=np.float32
        )
    np.testing.assert_allclose(filters, expected, rtol=1e-6, atol=1e-9)
    assert mel_filterbank(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz) is filters
    assert not filters.flags.writeable
    mels = np.linspace(0.0, 60.0, 121)
    np.testing.assert_allclose(filterbanks.hz_to_mel(filterbanks.mel_to_hz(mels)), mels, atol=1e-9)
    np.testing.assert_allclose(
        filterbanks.hz_to_mel([100.0, 1000.0, 4000.0]), librosa.hz_to_mel([100.0, 1000.0, 4000.0]), rtol=1e-12
    )


def test_log_mel_matches_power_to_db() -> None:
    mel = np.random.default_rng(2).exponential(size=(50, 40)) * np.logspace(-12, 0, 40)
    expected = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(log_mel(mel, range_db=80.0), expected, rtol=1e-5, atol=1e-3)


def test_mfcc_from_a_power_spectrum_matches_librosa() -> None:
    """Same filters, DCT and lifter: spkid's chain equals librosa.feature.mfcc(S=power_to_db(mel))."""
    signal = make_utterance(0, 0, duration_s=1.0)
    config = FeatureConfig()
    power = power_spectrum(
        frame_signal(pre_emphasis(signal), config.frame_length, config.frame_shift),
        window_function("hann", config.frame_length),
        config.fft_size,
    )
    filters = mel_filterbank(16000, 512, 40, 20.0, 7600.0)
    ours = mfcc(log_mel(power @ filters.T, range_db=80.0), 20, lifter=22.0)

    mel_reference = librosa.feature.melspectrogram(
        S=power.T.astype(np.float64), sr=16000, n_fft=512, n_mels=40, fmin=20.0, fmax=7600.0
    )
    reference = librosa.feature.mfcc(
        S=librosa.power_to_db(mel_reference, top_db=80.0), n_mfcc=20, lifter=22
    ).T
    assert ours.shape == reference.shape == (power.shape[0], 20)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize(("width_frames", "order"), [(2, 1), (2, 2), (1, 1), (4, 2)])
def test_deltas_match_librosa(width_frames: int, order: int) -> None:
    features = np.random.default_rng(3).standard_normal((60, 13)).astype(np.float32)
    expected = librosa.feature.delta(features.T, width=2 * width_frames + 1, order=order).T
    np.testing.assert_allclose(deltas(features, width_frames=width_frames, order=order), expected, atol=1e-5)
    with pytest.raises(FeatureError, match="too short for deltas"):
        deltas(features[:4], width_frames=2)


def test_with_deltas_stacks_static_delta_and_delta_delta() -> None:
    cepstra = np.random.default_rng(9).standard_normal((30, 4)).astype(np.float32)
    stacked = with_deltas(cepstra, width_frames=2, order=2)
    expected = np.hstack(
        [
            cepstra,
            librosa.feature.delta(cepstra.T, width=5).T,
            librosa.feature.delta(cepstra.T, width=5, order=2).T,
        ]
    )
    np.testing.assert_allclose(stacked, expected, atol=1e-5)
    np.testing.assert_array_equal(with_deltas(cepstra, order=0), cepstra)


def test_cmvn_zero_mean_unit_variance() -> None:
    rng = np.random.default_rng(4)
    features = (rng.standard_normal((500, 6)) * [1, 10, 100, 0.1, 5, 2] + [50, -3, 0, 1e3, 7, 0]).astype(
        np.float32
    )
    features[:, 5] = 3.0  # a constant dimension
    normalised = cmvn(features)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised[:, :5].std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(normalised[:, 5], 0.0)
    centred = cmvn(features, variance=False)
    np.testing.assert_allclose(centred.std(axis=0), features.std(axis=0), rtol=1e-4)


def naive_sliding_cmvn(features: np.ndarray, window: int, variance: bool) -> np.ndarray:
    n_frames = features.shape[0]
    output = np.empty_like(features, dtype=np.float64)
    for frame in range(n_frames):
        start = min(max(frame - window // 2, 0), max(n_frames - window, 0))
        block = features[start : start + window].astype(np.float64)
        output[frame] = features[frame] - block.mean(axis=0)
        if variance:
            output[frame] /= np.maximum(block.std(axis=0), 1e-5)
    return output


@pytest.mark.parametrize("variance", [True, False])
def test_sliding_cmvn_matches_a_naive_loop(variance: bool) -> None:
    features = np.random.default_rng(5).standard_normal((40, 3)).astype(np.float32) + 10
    features[:, 0] += np.linspace(0, 20, 40, dtype=np.float32)  # a drifting channel
    expected = naive_sliding_cmvn(features, 9, variance)
    np.testing.assert_allclose(
        sliding_cmvn(features, window_frames=9, variance=variance), expected, atol=1e-4
    )
    np.testing.assert_allclose(sliding_cmvn(features, window_frames=100), cmvn(features), atol=1e-6)


# -- VAD ---------------------------------------------------------------------------------------------------
def vad_mask(signal: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    frames = frame_signal(pre_emphasis(signal, config.pre_emphasis), config.frame_length, config.frame_shift)
    power = power_spectrum(frames, window_function(config.window, config.frame_length), config.fft_size)
    return energy_vad(frame_energy_db(power, config), min_frames=config.min_speech_frames)


def frame_centres_s(n_frames: int) -> np.ndarray:
    return (np.arange(n_frames) * 160 + 200) / 16000


@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_vad_keeps_speech_and_drops_silence_of_known_segments(snr_db: float | None) -> None:
    signal, intervals = make_utterance(2, 3, duration_s=4.0, return_speech_intervals=True)
    if snr_db is not None:
        noise = np.random.default_rng(6).standard_normal(signal.size).astype(np.float32)
        signal = signal + noise * np.sqrt(np.mean(signal**2) / 10 ** (snr_db / 10))
    speech = vad_mask(signal)
    centres = frame_centres_s(speech.size)
    inside = np.zeros(speech.size, bool)
    near = np.zeros(speech.size, bool)
    for start_s, end_s in intervals:
        inside |= (centres > start_s + 0.03) & (centres < end_s - 0.03)
        near |= (centres > start_s - 0.04) & (centres < end_s + 0.04)
    assert inside.sum() > 100 and (~near).sum() > 50
    assert speech[inside].mean() > (0.97 if snr_db is None else 0.7)
    assert (~speech[~near]).mean() > 0.97


@pytest.mark.parametrize("gain", [0.05, 4.0])
def test_vad_is_gain_invariant(gain: float) -> None:
    signal = make_utterance(1, 0)
    assert (vad_mask(signal) == vad_mask(signal * np.float32(gain))).mean() > 0.98


def test_vad_keeps_a_short_word_without_pauses() -> None:
    signal, intervals = make_utterance(3, 1, duration_s=3.0, return_speech_intervals=True)
    start_s, end_s = max(intervals, key=lambda interval: interval[1] - interval[0])
    word = signal[int(start_s * 16000) : int(end_s * 16000)][:4800]  # at most 0.3 s, no pause at all
    n_frames = 1 + (word.size - 400) // 160
    assert vad_mask(word).sum() >= min(10, n_frames)
    features = extract(word)
    assert features.shape[0] >= 0.5 * n_frames


def test_vad_min_frames_fallback_keeps_the_loudest() -> None:
    energy = np.full(50, -90.0)
    energy[[3, 17, 40]] = [-20.0, -30.0, -25.0]
    energy[20:30] = -70.0
    # Front-end 2 reads its levels over every frame: the clicks set the peak, the vote drops them as
    # isolated, and the fallback keeps the 5 loudest audible frames.
    mask = energy_vad(energy, context_frames=2, min_frames=5, padding_invariant=False)
    assert mask.sum() == 5
    assert mask[[3, 17, 40]].all()
    assert not energy_vad(np.full(20, -120.0), min_frames=5).any()
    # Front-end 3 reads them over the span of sustained sound (3-frame runs): the clicks are not speech,
    # the 10 sustained frames are, with no fallback needed.
    assert np.flatnonzero(energy_vad(energy, context_frames=2, min_frames=5)).tolist() == list(range(20, 30))


# -- extract -----------------------------------------------------------------------------------------------
def test_extract_shapes_normalisation_and_frame_count() -> None:
    signal = make_utterance(0, 2)
    features = extract(signal, SPEECH_ONLY)
    assert features.dtype == np.float32 and features.shape[1] == 60
    np.testing.assert_allclose(features.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1.0, rtol=1e-3)
    raw = extract(signal, RAW)
    assert raw.shape == (1 + (signal.size - 400) // 160, 60)
    assert 0.3 * raw.shape[0] < features.shape[0] < raw.shape[0]
    assert extract(signal, FeatureConfig(delta_order=1, n_ceps=13)).shape[1] == 26
    sliding = extract(signal, FeatureConfig(vad="energy", cmvn="sliding", cmvn_window_frames=50))
    assert sliding.shape == features.shape and np.isfinite(sliding).all()


def test_extract_resamples_and_reads_integer_pcm() -> None:
    signal = make_utterance(1, 1, sample_rate=8000)
    at_8k = extract(signal, SPEECH_ONLY, sample_rate=8000)
    expected = extract(resample(signal, 8000, 16000), SPEECH_ONLY)
    np.testing.assert_allclose(at_8k, expected, atol=1e-5)
    pcm = np.round(signal * 32767).astype(np.int16)
    from_pcm = extract(pcm, SPEECH_ONLY, sample_rate=8000)  # speech frames: pauses are 16-bit noise
    assert from_pcm.shape == at_8k.shape
    assert np.abs(from_pcm - at_8k).mean() < 0.01  # only 16-bit rounding differs


def test_narrowband_audio_at_16k_gives_finite_features(tmp_path: Path) -> None:
    """8 kHz telephone audio loaded at 16 kHz: the empty bands above 4 kHz become constant, not noise."""
    path = tmp_path / "telephone.wav"
    soundfile.write(str(path), make_utterance(4, 0, sample_rate=8000), 8000, subtype="PCM_16")
    features = extract(path)
    assert np.isfinite(features).all() and np.abs(features).max() < 30
    signal = load(path, 16000)
    power = power_spectrum(frame_signal(pre_emphasis(signal), 400, 160), window_function("hann", 400), 512)
    bands = log_mel(power @ mel_filterbank(16000, 512, 40, 20.0, 7600.0).T, range_db=80.0)
    speech = vad_mask(signal)
    centres_hz = librosa.mel_frequencies(42, fmin=20.0, fmax=7600.0)[1:-1]
    assert bands[speech][:, centres_hz > 4600].std(axis=0).max() < 0.5
    assert bands[speech][:, centres_hz < 3000].std(axis=0).min() > 3.0


def test_extract_errors() -> None:
    with pytest.raises(FeatureError, match="too short: 50 ms"):
        extract(np.ones(800, dtype=np.float32))
    with pytest.raises(FeatureError, match="silent"):
        extract(np.zeros(16000, dtype=np.float32))
    with pytest.raises(FeatureError, match="1 NaN/Inf"):
        extract(np.where(np.arange(16000) == 5, np.nan, 0.1).astype(np.float32))
    with pytest.raises(FeatureError, match="mono waveform"):
        extract(np.zeros((16000, 2), dtype=np.float32))


def test_extract_from_path_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(FeatureError, match=r"silence\.wav: silent"):
        extract(path)
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        extract(tmp_path / "nope.wav")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    signal=arrays(
        np.float32,
        st.integers(0, 6000),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
    ),
    scale=st.sampled_from([1.0, 1e-3, 1e-6, 1e-12]),
)
def test_any_finite_signal_gives_finite_features_or_a_feature_error(signal: np.ndarray, scale: float) -> None:
    try:
        features = extract(signal * np.float32(scale))
    except FeatureError:
        return
    assert features.dtype == np.float32 and features.shape[1] == 60 and features.shape[0] >= 10
    assert np.isfinite(features).all()


# -- real audio --------------------------------------------------------------------------------------------
def test_real_librispeech_audio(librispeech_train: Path) -> None:
    paths = sorted(librispeech_train.rglob("*.flac"))[:3]
    assert paths, f"no .flac files under {librispeech_train}"
    for path in paths:
        duration_s = soundfile.info(str(path)).duration
        n_samples = soundfile.info(str(path)).frames
        raw = extract(path, RAW)
        assert raw.shape == (1 + (n_samples - 400) // 160, 60)
        assert abs(raw.shape[0] - 100 * duration_s) <= 3
        features = extract(path)
        assert features.dtype == np.float32 and np.isfinite(features).all()
        assert 0.4 * raw.shape[0] < features.shape[0] <= raw.shape[0]


# -- extract_many ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("extract_many")
    paths = []
    for index in range(6):
        path = root / f"utt{index}.wav"
        soundfile.write(str(path), make_utterance(index % 3, index, duration_s=1.5), 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def test_extract_many_matches_extract_in_order(small_corpus: list[Path]) -> None:
    result = extract_many(small_corpus)
    assert isinstance(result, ExtractResult) and result.paths == small_corpus and result.skipped == []
    for path, features in zip(small_corpus, result, strict=True):
        np.testing.assert_array_equal(features, extract(path))


def test_extract_many_two_jobs_is_identical(small_corpus: list[Path]) -> None:
    serial = extract_many(small_corpus, n_jobs=1)
    parallel = extract_many(small_corpus, n_jobs=2)
    assert len(parallel) == len(serial)
    for one, two in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one, two)


def test_extract_many_skip_bad_reports_the_skipped(tmp_path: Path, small_corpus: list[Path]) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(16000, dtype=np.float32), 16000)
    paths = [small_corpus[0], broken, small_corpus[1], silent, tmp_path / "missing.wav"]
    with pytest.raises(AudioError, match=r"broken\.wav: not a readable audio file"):
        extract_many([small_corpus[0], broken, small_corpus[1]], n_jobs=2)
    with pytest.raises(FeatureError, match=r"silent\.wav: silent"):
        extract_many([silent, small_corpus[1]])
    for n_jobs in (1, 2):
        result = extract_many(paths, skip_bad=True, n_jobs=n_jobs)
        assert result.paths == small_corpus[:2] and len(result) == 2
        assert [skipped.path for skipped in result.skipped] == [broken, silent, tmp_path / "missing.wav"]
        assert "not a readable audio file" in result.skipped[0].reason
        assert "silent" in result.skipped[1].reason


def test_extract_many_cache_hits_and_invalidation(
    tmp_path: Path, small_corpus: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    first = extract_many(small_corpus[:3], cache_dir=cache_dir, progress=True)
    entries = sorted(cache_dir.rglob("*.npy"))
    assert len(entries) == 3 and not list(cache_dir.rglob("*.tmp"))

    def no_extraction(*args, **kwargs):
        raise AssertionError("extract() called although the cache holds the features")

    monkeypatch.setattr(extraction, "extract", no_extraction)
    second = extract_many(small_corpus[:3], cache_dir=cache_dir, progress=True)
    for one, two in zip(first, second, strict=True):
        np.testing.assert_array_equal(one, two)
    monkeypatch.undo()

    extract_many(small_corpus[:3], FeatureConfig(n_ceps=13), cache_dir=cache_dir)  # new config, new entries
    assert len(list(cache_dir.rglob("*.npy"))) == 6
    changed = tmp_path / "changed.wav"
    changed.write_bytes(small_corpus[0].read_bytes())
    extract_many([changed], cache_dir=cache_dir)
    soundfile.write(str(changed), make_utterance(5, 5, duration_s=1.5), 16000, subtype="PCM_16")
    updated = extract_many([changed], cache_dir=cache_dir)[0]
    np.testing.assert_array_equal(updated, extract(changed))
    assert len(list(cache_dir.rglob("*.npy"))) == 8


def test_extract_many_recomputes_a_corrupt_cache_entry(tmp_path: Path, small_corpus: list[Path]) -> None:
    cache_dir = tmp_path / "cache"
    expected = extract_many(small_corpus[:1], cache_dir=cache_dir)[0]
    (entry,) = cache_dir.rglob("*.npy")
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(extract_many(small_corpus[:1], cache_dir=cache_dir)[0], expected)
