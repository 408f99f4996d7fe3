"""Tests of spkid.audio: formats libsndfile writes, downmix, resampling, errors, finding files."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from spkid.audio import AUDIO_EXTENSIONS, audio_info, find_audio_files, load, resample
from spkid.errors import AudioError, SpkidError

RATE_HZ = 16000


def tone(
    frequency_hz: float, duration_s: float = 0.5, rate_hz: int = RATE_HZ, amplitude: float = 0.5
) -> np.ndarray:
    time_s = np.arange(int(duration_s * rate_hz)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * frequency_hz * time_s)).astype(np.float32)


def dominant_frequency_hz(signal: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return float(np.fft.rfftfreq(signal.size, 1.0 / rate_hz)[np.argmax(spectrum)])


@pytest.mark.parametrize(
    ("extension", "subtype", "tolerance"),
    [
        (".wav", "PCM_U8", 1 / 64),
        (".wav", "PCM_16", 1e-4),
        (".wav", "PCM_24", 1e-6),
        (".wav", "PCM_32", 1e-6),
        (".wav", "FLOAT", 1e-7),
        (".wav", "DOUBLE", 1e-7),
        (".flac", "PCM_16", 1e-4),
        (".flac", "PCM_24", 1e-6),
        (".aiff", "PCM_16", 1e-4),
        (".au", "PCM_16", 1e-4),
    ],
)
def test_lossless_formats_round_trip(tmp_path: Path, extension: str, subtype: str, tolerance: float) -> None:
    original = tone(440.0)
    path = tmp_path / f"tone{extension}"
    soundfile.write(str(path), original, RATE_HZ, subtype=subtype)
    loaded = load(path)
    assert loaded.dtype == np.float32
    assert loaded.shape == original.shape
    np.testing.assert_allclose(loaded, original, atol=tolerance)


@pytest.mark.parametrize(("extension", "subtype"), [(".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_lossy_formats_keep_the_tone(tmp_path: Path, extension: str, subtype: str) -> None:
    path = tmp_path / f"tone{extension}"
    try:
        soundfile.write(str(path), tone(440.0, duration_s=1.0), RATE_HZ, subtype=subtype)
    except (soundfile.LibsndfileError, TypeError, ValueError) as error:
        pytest.skip(f"this libsndfile cannot write {subtype}: {error}")
    loaded = load(path)
    assert abs(loaded.size - RATE_HZ) < 0.1 * RATE_HZ  # codecs may pad a little
    assert abs(dominant_frequency_hz(loaded, RATE_HZ) - 440.0) < 5.0
    assert 0.25 < np.max(np.abs(loaded)) <= 1.0


def test_multichannel_is_averaged(tmp_path: Path) -> None:
    left, right = tone(300.0, amplitude=0.6), tone(700.0, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right, np.zeros_like(left)], axis=1), RATE_HZ, subtype="FLOAT")
    np.testing.assert_allclose(load(path), (left + right) / 3.0, atol=1e-6)


def test_resampling_8k_to_16k_keeps_a_1khz_tone_at_1khz(tmp_path: Path) -> None:
    path = tmp_path / "narrowband.wav"
    soundfile.write(str(path), tone(1000.0, duration_s=1.0, rate_hz=8000), 8000, subtype="PCM_16")
    loaded = load(path, sample_rate=16000)
    assert loaded.size == 16000
    assert abs(dominant_frequency_hz(loaded, 16000) - 1000.0) <= 1.0
    # A proper anti-imaging filter: no mirror image at 8000 - 1000 = 7 kHz.
    spectrum = np.abs(np.fft.rfft(loaded[1000:-1000] * np.hanning(14000))) ** 2
    frequencies_hz = np.fft.rfftfreq(14000, 1 / 16000)
    image = spectrum[np.abs(frequencies_hz - 7000.0) < 50].max()
    assert 10 * np.log10(image / spectrum.max()) < -60.0


@pytest.mark.parametrize(
    ("orig_rate_hz", "target_rate_hz"),
    [(8000, 16000), (44100, 16000), (16000, 8000), (11025, 16000), (96000, 16000)],
)
@pytest.mark.parametrize("n_samples", [1, 7, 16001, 88203])
def test_resample_gives_librosas_samples(orig_rate_hz: int, target_rate_hz: int, n_samples: int) -> None:
    """soxr called directly, as librosa.resample(res_type="soxr_hq") calls it: the same samples."""
    import librosa

    signal = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32)
    expected = librosa.resample(signal, orig_sr=orig_rate_hz, target_sr=target_rate_hz, res_type="soxr_hq")
    np.testing.assert_array_equal(resample(signal, orig_rate_hz, target_rate_hz), expected.astype(np.float32))


def test_resample_downsamples_without_aliasing() -> None:
    high = tone(6000.0, duration_s=1.0)  # above the 4 kHz Nyquist of 8 kHz: must vanish, not alias to 2 kHz
    low = tone(1000.0, duration_s=1.0)
    resampled = resample(high + low, 16000, 8000)
    assert resampled.size == 8000
    spectrum = np.abs(np.fft.rfft(resampled * np.hanning(8000))) ** 2
    frequencies_hz = np.fft.rfftfreq(8000, 1 / 8000)
    alias = spectrum[np.abs(frequencies_hz - 2000.0) < 20].max()
    assert 10 * np.log10(alias / spectrum.max()) < -60.0


def with_full_scale_samples(n_clipped: int, n_samples: int = RATE_HZ) -> np.ndarray:
    """A quiet tone with ``n_clipped`` samples, spread evenly, pinned at +1 or -1 (full scale)."""
    signal = tone(440.0, duration_s=n_samples / RATE_HZ, amplitude=0.3)
    where = np.linspace(0, n_samples - 1, n_clipped).astype(int)
    signal[where] = np.where(np.arange(n_clipped) % 2 == 0, 1.0, -1.0)
    return signal


def clipping_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "spkid.audio" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_U8", "FLOAT"])
def test_a_clipped_recording_logs_a_warning_and_loads_unchanged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, subtype: str
) -> None:
    caplog.set_level(logging.WARNING, logger="spkid.audio")
    path = tmp_path / f"clipped_{subtype}.wav"
    soundfile.write(str(path), with_full_scale_samples(480), RATE_HZ, subtype=subtype)  # 3% of 16000
    loaded = load(path)
    (record,) = clipping_warnings(caplog)
    message = record.getMessage()
    assert str(path) in message and "clipped" in message
    assert float(re.search(r"([0-9.]+)% of the samples", message).group(1)) == pytest.approx(3.0)
    # Only a warning: the waveform is what soundfile decodes.
    np.testing.assert_array_equal(loaded, soundfile.read(str(path), dtype="float32")[0])


def test_float_samples_beyond_full_scale_count_as_clipped(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="spkid.audio")
    path = tmp_path / "overshoot.wav"
    signal = tone(440.0, amplitude=0.3)
    signal[::20] = 1.7  # 5%
    soundfile.write(str(path), signal, RATE_HZ, subtype="FLOAT")
    load(path)
    (record,) = clipping_warnings(caplog)
    assert str(path) in record.getMessage() and "5.0% of the samples" in record.getMessage()


def test_one_clipped_channel_of_a_stereo_file_is_noticed(tmp_path: Path, caplog) -> None:
    # The downmix peaks near 0.65, so only counting each channel's samples finds the clipping.
    caplog.set_level(logging.WARNING, logger="spkid.audio")
    path = tmp_path / "stereo.wav"
    stereo = np.stack([tone(440.0, 1.0, amplitude=0.3), with_full_scale_samples(800)], axis=1)  # 5% of one
    soundfile.write(str(path), stereo, RATE_HZ, subtype="PCM_16")
    assert np.abs(load(path)).max() < 0.999
    (record,) = clipping_warnings(caplog)
    assert str(path) in record.getMessage() and "2.5% of the samples" in record.getMessage()


@pytest.mark.parametrize("n_clipped", [0, 150])  # none, and a few stray peaks (0.94%): below the 1% limit
def test_a_clean_recording_logs_no_clipping_warning(tmp_path: Path, caplog, n_clipped: int) -> None:
    caplog.set_level(logging.DEBUG, logger="spkid.audio")
    path = tmp_path / "clean.wav"
    soundfile.write(str(path), with_full_scale_samples(n_clipped), RATE_HZ, subtype="PCM_16")
    load(path)
    load(path, 8000)  # resampling overshoot is not the recording's clipping
    assert clipping_warnings(caplog) == []


def test_float_overshoot_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    soundfile.write(
        str(path), np.array([0.0, 1.5, -2.0, 0.5] * 100, dtype=np.float32), RATE_HZ, subtype="FLOAT"
    )
    loaded = load(path)
    assert loaded.max() == 1.0 and loaded.min() == -1.0
    assert loaded[3] == pytest.approx(0.5)


def test_audio_info_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "info.flac"
    soundfile.write(str(path), np.zeros((8000, 2), dtype=np.float32), 8000, subtype="PCM_16")
    info = audio_info(path)
    assert (info.sample_rate_hz, info.n_channels, info.n_samples) == (8000, 2, 8000)
    assert info.duration_s == pytest.approx(1.0)
    assert info.format == "FLAC"


def write_text(path: Path, text: str = "this is not audio\n") -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("loader", [load, audio_info])
def test_errors_name_the_file_and_the_reason(tmp_path: Path, loader) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        loader(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        loader(tmp_path)
    with pytest.raises(AudioError, match=r"fake\.wav: not a readable audio file") as caught:
        loader(write_text(tmp_path / "fake.wav"))
    assert caught.value.path == tmp_path / "fake.wav"
    assert "\n" not in str(caught.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros(0, dtype=np.float32), RATE_HZ, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty"):
        load(path)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load(write_text(tmp_path / "zero_bytes.wav", ""))


def test_corrupt_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.flac"
    soundfile.write(str(path), tone(440.0), RATE_HZ, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(AudioError, match=r"truncated\.flac"):
        load(path)


@pytest.mark.parametrize("loader", ["audio_info", "load"])
def test_a_damaged_mp3_is_one_line_that_says_what_is_wrong(tmp_path: Path, loader: str) -> None:
    """libsndfile called a regular file with an .mp3 suffix that is no MP3 "File does not exist or is not a
    regular file", and libmpg123 wrote notes of its own on file descriptor 2 (out of pytest's reach, hence a
    child process)."""
    path = write_text(tmp_path / "damaged.mp3", "garbage")
    script = (
        "import sys\n"
        f"from spkid.audio import {loader}\n"
        "from spkid.errors import AudioError\n"
        "try:\n"
        f"    {loader}(sys.argv[1])\n"
        "except AudioError as error:\n"
        "    print(error)\n"
    )
    command = [sys.executable, "-c", script, str(path)]
    child = subprocess.run(command, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == f"{path}: not a readable audio file (Format not recognised.)"
    assert child.stderr == ""


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_samples_are_an_error(tmp_path: Path, bad_value: float) -> None:
    samples = tone(440.0)
    samples[100] = bad_value
    path = tmp_path / "nan.wav"
    soundfile.write(str(path), samples, RATE_HZ, subtype="FLOAT")
    with pytest.raises(AudioError, match="1 NaN/Inf samples"):
        load(path)


def test_audio_errors_are_spkid_errors() -> None:
    assert issubclass(AudioError, SpkidError)
    with pytest.raises(AudioError, match="sample_rate"):
        load("whatever.wav", sample_rate=0)


def make_tree(root: Path) -> None:
    for relative in [
        "b/2.wav",
        "b/1.FLAC",
        "a/x.ogg",
        "a/deep/y.wav",
        "a/notes.txt",
        "a/.hidden.wav",
        ".git/z.wav",
        "a/._resource.wav",
    ]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")


def test_find_audio_files_recursive_sorted_case_insensitive(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = find_audio_files([tmp_path])
    assert found == [
        tmp_path / "a/deep/y.wav",
        tmp_path / "a/x.ogg",
        tmp_path / "b/1.FLAC",
        tmp_path / "b/2.wav",
    ]
    assert find_audio_files(tmp_path / "b", extensions=["wav"]) == [tmp_path / "b/2.wav"]


def test_find_audio_files_takes_files_as_given_and_dedupes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    notes = tmp_path / "a/notes.txt"
    found = find_audio_files([notes, tmp_path / "b", tmp_path / "b/2.wav"])
    assert found == [notes, tmp_path / "b/1.FLAC", tmp_path / "b/2.wav"]


def test_find_audio_files_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file or directory"):
        find_audio_files([tmp_path / "nowhere"])
    (tmp_path / "texts").mkdir()
    write_text(tmp_path / "texts" / "readme.txt")
    with pytest.raises(AudioError, match=r"texts: no audio files \(looked for \.wav, \.flac"):
        find_audio_files([tmp_path / "texts"])
    assert ".wav" in AUDIO_EXTENSIONS and ".flac" in AUDIO_EXTENSIONS
