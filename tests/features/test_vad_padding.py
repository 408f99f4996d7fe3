"""The energy VAD keeps the same speech frames whether or not seconds of near-silence surround a recording.

Front-end 3 reads the noise floor and the peak between the first and last loud run of frames, so padding
changes no decision; front-end 2 (older models) read them over every frame, and padding lowered its noise
floor. The padding is a whole number of frame shifts, so every original frame is still a frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import librispeech_subset

from spkid.audio import load
from spkid.features import FeatureConfig, extract

PAD_FRAMES = 300  # 3 s on each side at 10 ms per frame


def _whole_frames(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``signal`` cut so that every sample belongs to a frame (padding then adds no view of new samples)."""
    n_frames = 1 + (len(signal) - config.frame_length) // config.frame_shift
    return signal[: config.frame_length + (n_frames - 1) * config.frame_shift]


def _padded(signal: np.ndarray, config: FeatureConfig, level_dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_pad = PAD_FRAMES * config.frame_shift
    noise = [(rng.normal(size=n_pad) * 10 ** (level_dbfs / 20)).astype(np.float32) for _ in range(2)]
    return np.concatenate([noise[0], signal, noise[1]])


def _real_speech(names: list[str]) -> list[np.ndarray]:
    subset = librispeech_subset("test-other")
    return [load(next(subset.rglob(f"{name}.flac")), 16000) for name in names]


# Utterances whose first and last frames hold no speech: a frame overlapping a recording's edge and the
# padding sees the edge samples its own frames weighed lightly, which only matters when speech touches it.
REAL_UTTERANCES = ["1688-142285-0000", "1688-142285-0002", "1688-142285-0004"]


@pytest.mark.realdata
@pytest.mark.parametrize("level_dbfs", [-80.0, -60.0])
def test_padding_leaves_the_speech_frames_of_real_speech_unchanged(level_dbfs: float) -> None:
    config = FeatureConfig(vad="energy")
    for signal in _real_speech(REAL_UTTERANCES):
        signal = _whole_frames(signal, config)
        alone, padded = extract(signal, config), extract(_padded(signal, config, level_dbfs), config)
        assert padded.shape == alone.shape
        np.testing.assert_allclose(padded, alone, atol=1e-5)


@pytest.mark.realdata
def test_front_end_2_was_not_padding_invariant() -> None:
    """The same check fails for the old front-end (so the test above can fail), which old models keep."""
    config = FeatureConfig(vad="energy", frontend_version=2)
    (signal,) = _real_speech(["1688-142285-0004"])
    signal = _whole_frames(signal, config)
    assert len(extract(_padded(signal, config, -80.0), config)) > len(extract(signal, config))


@pytest.mark.parametrize("level_dbfs", [-80.0, -60.0])
def test_padding_leaves_the_speech_frames_of_synthetic_speech_unchanged(
    synthetic_corpus: Path, level_dbfs: float
) -> None:
    config = FeatureConfig(vad="energy")
    rng = np.random.default_rng(1)
    for path in sorted(synthetic_corpus.rglob("*.wav"))[:4]:
        speech = load(path, 16000)
        speech *= 10 ** (-25 / 20) / np.sqrt(np.mean(np.square(speech)))  # speech level, -25 dBFS RMS
        # A recording with pauses at its edges, as real ones have: 0.5 s of background 50 dB below the speech.
        background = [
            rng.normal(size=8000).astype(np.float32) * np.std(speech) * 10 ** (-50 / 20) for _ in "ab"
        ]
        signal = _whole_frames(np.concatenate([background[0], speech, background[1]]), config)
        alone, padded = extract(signal, config), extract(_padded(signal, config, level_dbfs), config)
        assert padded.shape == alone.shape, path.name
        np.testing.assert_allclose(padded, alone, atol=1e-5)
