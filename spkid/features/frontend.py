"""The spectral stages of the MFCC front-end as separate functions on float32 arrays.

Framing, pre-emphasis, windowed power spectrum (and its cache-blocked projection on mel filters),
mel filterbank, log-mel and DCT-II cepstra; deltas are in :mod:`spkid.features.derivatives`.
Arrays are ``(n_frames, n_dims)``: librosa's ``(n_dims, t)`` is transposed once, at the edge.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from spkid.errors import FeatureError
from spkid.features import filterbanks

ENERGY_FLOOR = 1e-12  # added to mean-square frame energies before log10: -120 dB, below any real signal
POWER_FLOOR = 1e-10  # absolute floor of mel energies before log10, librosa's ``amin``


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)  # cached arrays are shared between calls
    return array


def frame_signal(signal: np.ndarray, frame_length: int, frame_shift: int) -> np.ndarray:
    """Cut a signal into overlapping frames without copying (a strided view).

    Parameters
    ----------
    signal : ndarray of shape (n_samples,)
    frame_length, frame_shift : int
        In samples. Frames start at ``0, frame_shift, ...`` and only whole frames are kept (Kaldi's
        ``snip_edges``), so ``n_frames = 1 + (n_samples - frame_length) // frame_shift``.

    Returns
    -------
    ndarray of shape (n_frames, frame_length)
        A read-only view of ``signal``; ``n_frames`` is 0 when the signal is shorter than one frame.

    Examples
    --------
    >>> import numpy as np
    >>> frames = frame_signal(np.arange(10.0), frame_length=4, frame_shift=3)
    >>> frames.shape, frames[1].tolist()
    ((3, 4), [3.0, 4.0, 5.0, 6.0])
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise FeatureError(f"expected a 1-D signal, got shape {signal.shape}")
    if signal.shape[0] < frame_length:
        return np.empty((0, frame_length), dtype=signal.dtype)
    return np.lib.stride_tricks.sliding_window_view(signal, frame_length)[::frame_shift]


def pre_emphasis(signal: np.ndarray, coefficient: float = 0.97) -> np.ndarray:
    """First-order high-pass ``y[n] = x[n] - coefficient * x[n-1]`` (with ``x[-1] = x[0]``).

    Parameters
    ----------
    signal : ndarray of shape (n_samples,)
    coefficient : float, default 0.97

    Returns
    -------
    ndarray of shape (n_samples,), float32

    Examples
    --------
    >>> import numpy as np
    >>> pre_emphasis(np.array([1.0, 1.0, 1.0, 2.0]), 0.5).tolist()  # a constant is damped, a step kept
    [0.5, 0.5, 0.5, 1.5]
    """
    signal = np.asarray(signal, dtype=np.float32)
    if coefficient == 0.0 or signal.size == 0:
        return signal.copy()
    emphasized = np.empty_like(signal)
    emphasized[0] = signal[0] * (1.0 - coefficient)
    np.multiply(signal[:-1], np.float32(-coefficient), out=emphasized[1:])
    emphasized[1:] += signal[1:]
    return emphasized


@lru_cache(maxsize=32)
def window_function(name: str, frame_length: int) -> np.ndarray:
    """Analysis window of ``frame_length`` samples, float32, read-only (see
    :func:`spkid.features.filterbanks.window`).

    ``"povey"`` is Kaldi's ``hann ** 0.85``; the others are scipy's periodic (FFT) windows, as librosa uses.

    Examples
    --------
    >>> window = window_function("hann", 400)
    >>> window.shape, window.dtype, float(window[0]), float(window[200])
    ((400,), dtype('float32'), 0.0, 1.0)
    """
    return _read_only(np.asarray(filterbanks.window(name, frame_length), dtype=np.float32))


def power_spectrum(frames: np.ndarray, window: np.ndarray, n_fft: int) -> np.ndarray:
    """Power spectrum ``|rfft(frame * window, n_fft)|**2`` of each frame.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, frame_length)
    window : ndarray of shape (frame_length,)
    n_fft : int
        FFT length >= frame_length; frames are zero-padded.

    Returns
    -------
    ndarray of shape (n_frames, n_fft // 2 + 1), float32

    Examples
    --------
    >>> import numpy as np
    >>> tone = np.sin(2 * np.pi * 1000.0 * np.arange(400) / 16000)  # 1 kHz at 16 kHz
    >>> power = power_spectrum(tone[None, :], window_function("hann", 400), n_fft=512)
    >>> power.shape, int(power[0].argmax())  # bin 32 of 31.25 Hz each
    ((1, 257), 32)
    """
    n_frames, frame_length = frames.shape
    padded = np.zeros((n_frames, n_fft), dtype=np.float32)
    np.multiply(frames, window, out=padded[:, :frame_length], casting="unsafe")
    spectrum = scipy.fft.rfft(padded, axis=1, workers=1, overwrite_x=True)
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    return power


def projected_power(
    frames: np.ndarray, window: np.ndarray, n_fft: int, weights: np.ndarray, *, block_frames: int = 256
) -> np.ndarray:
    """``power_spectrum(frames, window, n_fft) @ weights`` without holding the whole power spectrum.

    Frames go through in blocks that stay in cache, reusing the padded input and power buffers: the
    cost is the FFT itself, not memory traffic and page faults.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, frame_length)
    window : ndarray of shape (frame_length,)
    n_fft : int
    weights : ndarray of shape (n_fft // 2 + 1, k), float32
        E.g. a mel filterbank transposed, with extra columns for band energies.
    block_frames : int, default 256

    Returns
    -------
    ndarray of shape (n_frames, k), float32
    """
    n_frames, frame_length = frames.shape
    projected = np.empty((n_frames, weights.shape[1]), dtype=np.float32)
    block_size = max(1, min(block_frames, n_frames))
    padded = np.zeros((block_size, n_fft), dtype=np.float32)  # the padding columns stay zero
    power = np.empty((block_size, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, n_frames, block_frames):
        stop = min(start + block_frames, n_frames)
        block, block_power = padded[: stop - start], power[: stop - start]
        np.multiply(frames[start:stop], window, out=block[:, :frame_length], casting="unsafe")
        spectrum = scipy.fft.rfft(block, axis=1, workers=1)
        np.square(spectrum.real, out=block_power)
        block_power += np.square(spectrum.imag)
        np.matmul(block_power, weights, out=projected[start:stop])
    return projected


@lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float, f_max_hz: float) -> np.ndarray:
    """Slaney-style mel filterbank, ``librosa.filters.mel``'s, cached, float32, read-only.

    Computed by :func:`spkid.features.filterbanks.slaney_mel_filterbank` (importing librosa would cost a
    second or two of every command's start-up).

    Returns
    -------
    ndarray of shape (n_mels, n_fft // 2 + 1)

    Examples
    --------
    >>> mel_filterbank(16000, 512, 40, 20.0, 3800.0).shape
    (40, 257)
    """
    filters = filterbanks.slaney_mel_filterbank(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz)
    return _read_only(np.ascontiguousarray(filters, dtype=np.float32))


@lru_cache(maxsize=32)
def band_weights(
    sample_rate: int,
    n_fft: int,
    window_name: str,
    frame_length: int,
    band_hz: tuple[float, float],
    pre_emphasis: float = 0.0,
) -> np.ndarray:
    """Weights turning a power spectrum into the frame's mean-square energy in a band, before pre-emphasis.

    By Parseval, ``power_spectrum(frames, window, n_fft) @ weights`` is the in-band mean square of the
    frame (a full-scale sine gives 0.5), so levels read in dB re full scale whatever the FFT size and
    window. Dividing by the pre-emphasis response ``|1 - a e^{-iw}|^2`` undoes it, so the energy is that of
    the signal as recorded, where voiced speech dominates broadband noise.

    Parameters
    ----------
    sample_rate, n_fft, window_name, frame_length
        As used for the power spectrum.
    band_hz : (float, float)
        Lower and upper band edges in Hz.
    pre_emphasis : float, default 0
        Coefficient applied before the power spectrum, to undo.

    Returns
    -------
    ndarray of shape (n_fft // 2 + 1,), float32, read-only
    """
    window = window_function(window_name, frame_length).astype(np.float64)
    frequencies_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    weights = np.full(frequencies_hz.shape, 2.0)
    weights[0] = 1.0
    if n_fft % 2 == 0:
        weights[-1] = 1.0
    weights[(frequencies_hz < band_hz[0]) | (frequencies_hz > band_hz[1])] = 0.0
    angle = 2.0 * np.pi * frequencies_hz / sample_rate
    emphasis_gain = 1.0 + pre_emphasis**2 - 2.0 * pre_emphasis * np.cos(angle)
    weights /= n_fft * float(np.sum(window**2)) * np.maximum(emphasis_gain, 1e-6)
    return _read_only(weights.astype(np.float32))


def log_mel(mel_power: np.ndarray, *, range_db: float | None = 80.0) -> np.ndarray:
    """Mel energies in dB, floored, like ``librosa.power_to_db(S, ref=1, amin=1e-10, top_db=range_db)``.

    Parameters
    ----------
    mel_power : ndarray of shape (n_frames, n_mels)
    range_db : float or None, default 80
        Values more than ``range_db`` below the array's maximum are clamped to that level, so bands with
        no energy (8 kHz audio resampled to 16 kHz, digital silence) become constant rather than noise.

    Returns
    -------
    ndarray of shape (n_frames, n_mels), float32

    Examples
    --------
    >>> import numpy as np
    >>> log_mel(np.array([[1.0, 1e-3, 0.0]])).round(1).tolist()  # 0 is clamped 80 dB below the peak
    [[0.0, -30.0, -80.0]]
    """
    log_power = np.maximum(np.asarray(mel_power, dtype=np.float32), np.float32(POWER_FLOOR))
    np.log10(log_power, out=log_power)
    log_power *= np.float32(10.0)
    if range_db is not None and log_power.size:
        np.maximum(log_power, log_power.max() - np.float32(range_db), out=log_power)
    return log_power


@lru_cache(maxsize=32)
def cepstral_matrix(n_mels: int, n_ceps: int, lifter: float = 0.0) -> np.ndarray:
    """Orthonormal DCT-II (``scipy.fft.dct``) truncated to ``n_ceps`` with the sinusoidal lifter folded in.

    Returns
    -------
    ndarray of shape (n_mels, n_ceps), float32, read-only
        ``log_mel @ matrix`` gives the liftered cepstra.
    """
    basis = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_ceps]  # (n_ceps, n_mels)
    if lifter > 0:
        basis *= (1.0 + (lifter / 2.0) * np.sin(np.pi * np.arange(1, n_ceps + 1) / lifter))[:, None]
    return _read_only(np.ascontiguousarray(basis.T, dtype=np.float32))


def mfcc(log_mel_db: np.ndarray, n_ceps: int = 20, *, lifter: float = 0.0) -> np.ndarray:
    """Cepstra: orthonormal DCT-II of log-mel energies along the band axis, first ``n_ceps`` kept, liftered.

    Same as ``librosa.feature.mfcc(S=log_mel_db.T, n_mfcc=n_ceps, norm="ortho", lifter=lifter).T``.

    Parameters
    ----------
    log_mel_db : ndarray of shape (n_frames, n_mels)
    n_ceps : int, default 20
        Includes c0.
    lifter : float, default 0
        HTK lifter ``1 + (L/2) sin(pi (n+1) / L)``; 0 disables.

    Returns
    -------
    ndarray of shape (n_frames, n_ceps), float32

    Examples
    --------
    >>> import numpy as np
    >>> cepstra = mfcc(np.ones((2, 40)), n_ceps=13)  # a flat spectrum: all in c0 = sqrt(40)
    >>> cepstra.shape, round(float(cepstra[0, 0]), 3), bool(np.allclose(cepstra[:, 1:], 0.0, atol=1e-5))
    ((2, 13), 6.325, True)
    """
    log_mel_db = np.asarray(log_mel_db, dtype=np.float32)
    return log_mel_db @ cepstral_matrix(log_mel_db.shape[1], n_ceps, float(lifter))
