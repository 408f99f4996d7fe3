"""Reading audio: any format libsndfile decodes, downmixed to mono float32 and resampled with soxr.

Also finds the audio files under folders, the way every command that takes folders expects them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from spkid.errors import AudioError

logger = logging.getLogger(__name__)

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

# A sample at or beyond CLIPPED_LEVEL of full scale counts as clipped; more than CLIPPED_WARN_FRACTION of
# them and load() logs a warning (a recording clipped that often was made too loud, not a stray peak).
CLIPPED_LEVEL = 0.999
CLIPPED_WARN_FRACTION = 0.01
# Encodings whose largest code decodes below CLIPPED_LEVEL: their full scale is that code.
_FULL_SCALE_BY_SUBTYPE: dict[str, float] = {
    "PCM_S8": 127 / 128,
    "PCM_U8": 127 / 128,
    "ULAW": 32124 / 32768,
    "ALAW": 32256 / 32768,
}


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


#: Suffixes libsndfile hands to libmpg123, which writes notes on a damaged file straight to file descriptor 2.
_MPEG_SUFFIXES = frozenset({".mp1", ".mp2", ".mp3", ".mpa", ".mpeg", ".mpga"})
#: What libsndfile says of a regular file with an MPEG suffix that is not MPEG audio.
_MPEG_MISLEADING = "File does not exist or is not a regular file"


@contextlib.contextmanager
def _quiet_decoder(path: Path) -> Iterator[None]:
    """Silence file descriptor 2 while libsndfile decodes an MPEG file, in the main thread.

    libmpg123 prints "Note: Illegal Audio-MPEG-Header ..." lines of its own on a damaged MP3, before spkid's
    one-line error. A service's other threads write their log to the same descriptor, so it is left alone
    outside the main thread (worker processes read in their main thread).
    """
    if path.suffix.lower() not in _MPEG_SUFFIXES or threading.current_thread() is not threading.main_thread():
        yield
        return
    if sys.stderr is not None:
        sys.stderr.flush()  # what Python has buffered goes out before the descriptor is silenced
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decode_error(path: Path, error: Exception) -> AudioError:
    if isinstance(error, PermissionError):
        return AudioError(path, "permission denied")
    if path.is_file() and path.stat().st_size == 0:
        return AudioError(path, "not a readable audio file (empty: 0 bytes)")
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    # libsndfile says "Error opening '<path>': <reason>"; the path is already in front of the message.
    detail = detail.replace(str(path), "").replace("Error opening '':", "").strip(" :'\"")
    if detail.startswith(_MPEG_MISLEADING) and path.is_file():  # libsndfile's words for a file that is no MP3
        detail = "Format not recognised."
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
        with _quiet_decoder(path):
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
    """Resample a mono signal with soxr's high-quality anti-aliasing resampler.

    The same samples as ``librosa.resample(signal, orig_sr=..., target_sr=..., res_type="soxr_hq")``, which
    calls soxr the same way, without importing librosa (a second of start-up).

    Parameters
    ----------
    signal : ndarray of shape (n_samples,)
    orig_rate_hz, target_rate_hz : int

    Returns
    -------
    ndarray of shape (ceil(n_samples * target_rate_hz / orig_rate_hz),), float32
    """
    signal = np.asarray(signal, dtype=np.float32)
    if orig_rate_hz == target_rate_hz:
        return signal
    import soxr

    n_samples = int(np.ceil(signal.shape[0] * float(target_rate_hz) / orig_rate_hz))
    resampled = np.asarray(soxr.resample(signal, orig_rate_hz, target_rate_hz, quality="soxr_hq"), np.float32)
    if resampled.shape[0] >= n_samples:  # soxr's length can differ from the exact ratio by a sample
        return np.ascontiguousarray(resampled[:n_samples])
    return np.concatenate([resampled, np.zeros(n_samples - resampled.shape[0], dtype=np.float32)])


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

    Notes
    -----
    Clipped recordings are accepted, but when more than 1% (``CLIPPED_WARN_FRACTION``) of the samples of
    all channels sit at full scale (``|x| >= 0.999`` as float in [-1, 1], before resampling; for 8-bit,
    mu-law and A-law files the largest code) a warning naming the file and the clipped share is logged on
    the ``spkid.audio`` logger. The returned waveform is the same either way.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise AudioError(path, f"sample_rate must be a positive number of Hz, got {sample_rate}")
    _check_readable_file(path)
    try:
        with _quiet_decoder(path), soundfile.SoundFile(str(path)) as handle:
            samples = handle.read(dtype="float32", always_2d=True)
            native_rate_hz, subtype = handle.samplerate, handle.subtype
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as error:
        raise _decode_error(path, error) from error
    if samples.size == 0:
        raise AudioError(path, "empty: the file holds no audio samples")
    signal = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    highest, lowest = float(signal.max()), float(signal.min())  # NaN and Inf propagate: no extra pass
    if not (math.isfinite(highest) and math.isfinite(lowest)):
        n_bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise AudioError(path, f"{n_bad} NaN/Inf samples")
    # A downmix can hide one clipped channel, so only a mono peak can rule clipping out without a pass.
    full_scale = min(CLIPPED_LEVEL, _FULL_SCALE_BY_SUBTYPE.get(subtype, 1.0))
    if samples.shape[1] > 1 or max(highest, -lowest) >= full_scale:
        _warn_if_clipped(path, samples, full_scale)
    if native_rate_hz < sample_rate:
        logger.warning(
            "%s: recorded at %d Hz, below the front-end's %d Hz: resampled up, with an empty top band "
            "(scores are less reliable)",
            path,
            native_rate_hz,
            sample_rate,
            extra={
                "spkid_kind": f"were recorded below the front-end's {sample_rate} Hz (resampled up, "
                "with an empty top band: scores are less reliable)",
                "spkid_path": str(path),
            },
        )
    signal = resample(signal, int(native_rate_hz), int(sample_rate))
    if signal.size == 0:
        raise AudioError(path, "empty after resampling: too few samples")
    if max(highest, -lowest) > 1.0 or native_rate_hz != sample_rate:
        np.clip(signal, -1.0, 1.0, out=signal)
    return np.ascontiguousarray(signal, dtype=np.float32)


def _warn_if_clipped(path: Path, samples: np.ndarray, full_scale: float) -> None:
    """Log a warning when more than ``CLIPPED_WARN_FRACTION`` of ``samples`` reach ``full_scale``.

    ``samples`` is the decoded ``(n_samples, n_channels)`` float array, every channel counted.
    """
    n_clipped = int(np.count_nonzero(np.abs(samples) >= np.float32(full_scale)))
    share = n_clipped / samples.size
    if share > CLIPPED_WARN_FRACTION:
        logger.warning(
            "%s: clipped audio: %.1f%% of the samples are at full scale (recorded too loud); "
            "its scores may be less reliable",
            path,
            100.0 * share,
            extra={
                "spkid_kind": f"have clipped audio (over {100 * CLIPPED_WARN_FRACTION:g}% of the samples "
                "at full scale: scores may be less reliable)",
                "spkid_path": str(path),
            },
        )


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
