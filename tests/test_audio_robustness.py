"""Property-based robustness of audio decoding (hypothesis): any bytes given as an audio file decode to a
finite waveform or raise AudioError, never another exception."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import PROPERTY, RATE_HZ, wav_bytes
from hypothesis import given
from hypothesis import strategies as st

from spkid.audio import load
from spkid.errors import AudioError, FeatureError
from spkid.features import FeatureConfig, extract

GOOD_WAV = wav_bytes(0.3 * np.sin(np.arange(4000) * 0.2))
FLOAT_WAV = wav_bytes(0.3 * np.sin(np.arange(4000) * 0.2), subtype="FLOAT")
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
    path.write_bytes(wav_bytes(samples, subtype="FLOAT"))
    with pytest.raises(AudioError, match=r"nan.wav: 2 NaN/Inf samples"):
        load(path)


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
