"""Property-based robustness of the front-end (hypothesis): any finite waveform gives finite features, or a
FeatureError saying it is too short, silent or speechless."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROPERTY, RATE_HZ
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spkid.errors import FeatureError
from spkid.features import FeatureConfig, extract

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
