"""Analysis windows and the Slaney mel filterbank in plain numpy, for a quick start of every command.

The same arrays as ``scipy.signal.get_window`` (periodic windows) and ``librosa.filters.mel`` (Slaney mel
scale, Slaney area normalisation), which the tests check to float32 precision. Importing either library
costs 1-2 s, paid by every ``spkid identify`` call for a handful of cached numbers; these formulas take
microseconds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WINDOWS", "hz_to_mel", "mel_to_hz", "slaney_mel_filterbank", "window"]

#: The analysis windows :func:`window` computes (``features.window`` takes one of these).
WINDOWS: tuple[str, ...] = ("hamming", "hann", "povey", "blackman", "rectangular")

# Slaney's mel scale (Auditory Toolbox): linear below 1 kHz (3 mels per 200/3 Hz), logarithmic above.
_HZ_PER_MEL_LINEAR = 200.0 / 3.0
_LOG_BREAK_HZ = 1000.0
_LOG_BREAK_MEL = _LOG_BREAK_HZ / _HZ_PER_MEL_LINEAR
_LOG_STEP = np.log(6.4) / 27.0


def window(name: str, n_samples: int) -> np.ndarray:
    """Analysis window of ``n_samples`` samples, float64, shape (n_samples,).

    "hann", "hamming" and "blackman" are periodic (the FFT convention of ``scipy.signal.get_window`` and
    librosa); "povey" is Kaldi's symmetric Hann window raised to 0.85; "rectangular" is all ones.

    Raises
    ------
    ValueError
        An unknown window name.
    """
    if name == "rectangular":
        return np.ones(n_samples)
    if name == "povey":  # symmetric: the cosine spans n_samples - 1 intervals
        phase = 2.0 * np.pi * np.arange(n_samples) / max(n_samples - 1, 1)
        return (0.5 - 0.5 * np.cos(phase)) ** 0.85
    phase = 2.0 * np.pi * np.arange(n_samples) / n_samples  # periodic: n_samples intervals
    if name == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if name == "blackman":
        return 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    raise ValueError(f"window {name!r}: expected one of {', '.join(WINDOWS)}")


def hz_to_mel(frequencies_hz: np.ndarray) -> np.ndarray:
    """Slaney mels of frequencies in Hz (any shape), float64."""
    frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
    linear = frequencies_hz / _HZ_PER_MEL_LINEAR
    above = frequencies_hz >= _LOG_BREAK_HZ
    octaves = np.log(np.maximum(frequencies_hz, _LOG_BREAK_HZ) / _LOG_BREAK_HZ)
    logarithmic = _LOG_BREAK_MEL + octaves / _LOG_STEP
    return np.where(above, logarithmic, linear)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Frequencies in Hz of Slaney mels (any shape), float64; the inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    linear = mels * _HZ_PER_MEL_LINEAR
    logarithmic = _LOG_BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mels, _LOG_BREAK_MEL) - _LOG_BREAK_MEL))
    return np.where(mels >= _LOG_BREAK_MEL, logarithmic, linear)


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float, f_max_hz: float
) -> np.ndarray:
    """Triangular filters evenly spaced in Slaney mels, each scaled to unit area in Hz (times 2).

    Parameters
    ----------
    sample_rate : int
    n_fft : int
        FFT size: the filters weight its ``n_fft // 2 + 1`` non-negative frequency bins.
    n_mels : int
    f_min_hz, f_max_hz : float
        Lower edge of the first filter and upper edge of the last.

    Returns
    -------
    ndarray of shape (n_mels, n_fft // 2 + 1), float32
        Filters too narrow to span a bin (low bands at small ``n_fft``) are all zeros.
    """
    bin_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2))
    widths_hz = np.diff(edges_hz)
    offsets = edges_hz[:, None] - bin_hz[None, :]  # (n_mels + 2, n_bins)
    rising = -offsets[:-2] / widths_hz[:-1, None]
    falling = offsets[2:] / widths_hz[1:, None]
    # Rounded to float32 before the area scaling, as librosa does, so the two agree to the last bit or two.
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area_scale = 2.0 / (edges_hz[2:] - edges_hz[:-2])
    return (triangles * area_scale[:, None]).astype(np.float32)
