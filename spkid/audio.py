"""Reading audio: any format libsndfile decodes, downmixed to mono float32 and resampled with soxr.

Also finds the audio files under folders, the way every command that takes folders expects them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from spkid.errors import AudioError

AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".aifc",
    ".au",
    ".snd",
    ".sph",
    ".nist",
    ".caf",
    ".w64",
    ".rf64",
)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, without decoding the samples.

    Attributes
    ----------
    path : Path
    sample_rate_hz : int
        Native sampling rate of the file.
    n_channels : int
    n_samples : int
        Samples per channel.
    duration_s : float
    format : str
        libsndfile's container name (``"WAV"``, ``"FLAC"``, ...).
    subtype : str
        libsndfile's sample encoding (``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ...).
    """

    path: Path
    sample_rate_hz: int
    n_channels: int
    n_samples: int
    duration_s: float
    format: str
    subtype: str


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "no such file or directory")
    if path.is_dir():
        raise AudioError(path, "is a directory, expected an audio file")


def _decode_error(path: Path, error: Exception) -> AudioError:
    if isinstance(error, PermissionError):
        return AudioError(path, "permission denied")
    if path.is_file() and path.stat().st_size == 0:
        return AudioError(path, "not a readable audio file (empty: 0 bytes)")
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    # libsndfile says "Error opening '<path>': <reason>"; the path is already in front of the message.
    detail = detail.replace(str(path), "").replace("Error opening '':", "").strip(" :'\"")
    return AudioError(path, f"not a readable audio file ({detail or type(error).__name__})")


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of an audio file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        The file is missing, a directory or not audio libsndfile can read.
    """
    path = Path(path)
    _check_readable_file(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        raise _decode_error(path, error) from error
    return AudioInfo(
        path=path,
        sample_rate_hz=int(info.samplerate),
        n_channels=int(info.channels),
        n_samples=int(info.frames),
        duration_s=float(info.frames) / float(info.samplerate) if info.samplerate else 0.0,
        format=str(info.format),
        subtype=str(info.subtype),
    )


def resample(signal: np.ndarray, orig_rate_hz: int, target_rate_hz: int) -> np.ndarray:
    """Resample a mono signal with soxr's high-quality anti-aliasing resampler (through librosa).

    Parameters
    ----------
    signal : ndarray of shape (n_samples,)
    orig_rate_hz, target_rate_hz : int

    Returns
    -------
    ndarray of shape (round(n_samples * target_rate_hz / orig_rate_hz),), float32
    """
    signal = np.asarray(signal, dtype=np.float32)
    if orig_rate_hz == target_rate_hz:
        return signal
    import librosa  # imported here: it costs seconds at start-up and most corpora need no resampling

    resampled = librosa.resample(signal, orig_sr=orig_rate_hz, target_sr=target_rate_hz, res_type="soxr_hq")
    return np.asarray(resampled, dtype=np.float32)


def load(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform at ``sample_rate``.

    Parameters
    ----------
    path : str or Path
        Any file libsndfile decodes: WAV (PCM 8/16/24/32-bit, float), FLAC, OGG/Vorbis, MP3, AIFF, AU,
        NIST SPHERE (uncompressed), ...
    sample_rate : int, default 16000
        Rate of the returned waveform in Hz; other rates are resampled with soxr.

    Returns
    -------
    ndarray of shape (n_samples,), float32
        Channels averaged; values clipped to [-1, 1] (float files and resampling may overshoot slightly).

    Raises
    ------
    AudioError
        Missing file, a directory, not audio / unsupported codec, no samples, or NaN/Inf samples.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise AudioError(path, f"sample_rate must be a positive number of Hz, got {sample_rate}")
    _check_readable_file(path)
    try:
        samples, native_rate_hz = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as error:
        raise _decode_error(path, error) from error
    if samples.size == 0:
        raise AudioError(path, "empty: the file holds no audio samples")
    signal = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    highest, lowest = float(signal.max()), float(signal.min())  # NaN and Inf propagate: no extra pass
    if not (math.isfinite(highest) and math.isfinite(lowest)):
        n_bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise AudioError(path, f"{n_bad} NaN/Inf samples")
    signal = resample(signal, int(native_rate_hz), int(sample_rate))
    if signal.size == 0:
        raise AudioError(path, "empty after resampling: too few samples")
    if max(highest, -lowest) > 1.0 or native_rate_hz != sample_rate:
        np.clip(signal, -1.0, 1.0, out=signal)
    return np.ascontiguousarray(signal, dtype=np.float32)


def _is_hidden(path: Path, root: Path) -> bool:
    # macOS "._name.wav" resource forks and ".git"-style folders inside corpora are not audio.
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_audio_files(
    paths: Iterable[str | Path] | str | Path, *, extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Path]:
    """List the audio files named by files and folders.

    Parameters
    ----------
    paths : path or iterable of paths
        A file is taken as is, whatever its extension; a folder is searched recursively for files whose
        extension (case-insensitive) is in ``extensions``, skipping hidden files and folders.
    extensions : iterable of str, default AUDIO_EXTENSIONS
        Extensions with their dot, e.g. ``(".wav", ".flac")``.

    Returns
    -------
    list of Path
        In argument order, each folder's files sorted; a file named twice is listed once.

    Raises
    ------
    AudioError
        A path does not exist, or a folder holds no audio file.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    wanted = tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    found: list[Path] = []
    for entry in map(Path, paths):
        if not entry.exists():
            raise AudioError(entry, "no such file or directory")
        if not entry.is_dir():
            found.append(entry)
            continue
        in_folder = sorted(
            candidate
            for candidate in entry.rglob("*")
            if candidate.suffix.lower() in wanted and candidate.is_file() and not _is_hidden(candidate, entry)
        )
        if not in_folder:
            raise AudioError(entry, f"no audio files (looked for {', '.join(wanted)})")
        found.extend(in_folder)
    return list(dict.fromkeys(found))
