"""Energy voice-activity detection relative to each utterance's own levels.

The threshold sits between the utterance's noise floor (a low percentile of frame energies) and its peak,
so neither recording gain nor a stationary noise floor moves it; short clips keep at least a minimum of
their loudest frames so a single word is never thrown away.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from spkid.feature_config import FeatureConfig
from spkid.frontend import ENERGY_FLOOR, band_weights

VAD_BAND_HZ = (100.0, 4000.0)  # voiced speech energy sits here; above hum, below the noise-dominated top
PEAK_PERCENTILE = 99.0  # the "peak" ignores the loudest 1% of frames, so one click cannot set it


def energy_vad(
    frame_energy_db: np.ndarray,
    *,
    threshold_fraction: float = 0.2,
    range_db: float = 40.0,
    noise_percentile: float = 10.0,
    silence_dbfs: float = -80.0,
    context_frames: int = 2,
    min_frames: int = 0,
) -> np.ndarray:
    """Mark speech frames from their log energies.

    A frame is speech when its energy is at least
    ``max(noise + threshold_fraction * (peak - noise), peak - range_db, silence_dbfs)``, where ``peak`` is
    the 99th and ``noise`` the ``noise_percentile``-th percentile of the utterance's frame energies; the
    decision is then smoothed by a majority vote over ``±context_frames`` frames.

    Parameters
    ----------
    frame_energy_db : ndarray of shape (n_frames,)
        Frame energies in dB re full scale (see :func:`frame_energy_db`).
    threshold_fraction : float, default 0.2
    range_db : float, default 40
    noise_percentile : float, default 10
    silence_dbfs : float, default -80
        Frames below this are never speech; if the peak is below it, no frame is.
    context_frames : int, default 2
        0 disables smoothing.
    min_frames : int, default 0
        When fewer frames pass, the ``min_frames`` loudest frames above ``silence_dbfs`` are kept instead
        (a short, tightly cut word has no pause to set a noise floor against).

    Returns
    -------
    ndarray of shape (n_frames,), bool
    """
    energy = np.asarray(frame_energy_db, dtype=np.float64)
    n_frames = energy.shape[0]
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    peak, noise = np.percentile(energy, [PEAK_PERCENTILE, noise_percentile])
    if peak < silence_dbfs:
        return np.zeros(n_frames, dtype=bool)
    hard_floor = max(peak - range_db, silence_dbfs)
    threshold = max(noise + threshold_fraction * (peak - noise), hard_floor)
    speech = energy >= threshold
    if context_frames > 0 and n_frames > 1:
        votes = uniform_filter1d(speech.astype(np.float32), size=2 * context_frames + 1, mode="nearest")
        # Majority vote, but never a frame far below the peak (a gap of digital silence inside speech).
        speech = (votes > 0.5) & (energy >= hard_floor)
    if speech.sum() < min_frames:
        audible = np.flatnonzero(energy >= silence_dbfs)
        loudest = audible[np.argsort(energy[audible], kind="stable")[::-1][:min_frames]]
        speech = np.zeros(n_frames, dtype=bool)
        speech[loudest] = True
    return speech


def energy_band_weights(config: FeatureConfig) -> np.ndarray:
    """Power-spectrum weights giving the speech-band energy the VAD uses (see :func:`frame_energy_db`)."""
    low_hz = max(VAD_BAND_HZ[0], config.f_min_hz)
    high_hz = min(VAD_BAND_HZ[1], config.f_max_effective_hz)
    if low_hz >= high_hz:  # a mel range entirely outside the speech band: use all of it
        low_hz, high_hz = config.f_min_hz, config.f_max_effective_hz
    return band_weights(
        config.sample_rate,
        config.fft_size,
        config.window,
        config.frame_length,
        (low_hz, high_hz),
        config.pre_emphasis,
    )


def frame_energy_db(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Each frame's speech-band energy in dB re full scale, as recorded (pre-emphasis undone).

    The band is ``VAD_BAND_HZ`` (100-4000 Hz) within the mel range: where voiced speech has most of its
    energy, above mains hum and below the band that broadband noise dominates.

    Parameters
    ----------
    power : ndarray of shape (n_frames, n_fft // 2 + 1)
        From :func:`power_spectrum` of the pre-emphasised frames.
    config : FeatureConfig

    Returns
    -------
    ndarray of shape (n_frames,), float32
    """
    return to_db(power @ energy_band_weights(config))


def to_db(energy: np.ndarray) -> np.ndarray:
    """Mean-square energies to dB, in place (float32), floored at ``ENERGY_FLOOR``."""
    energy += np.float32(ENERGY_FLOOR)
    np.log10(energy, out=energy)
    energy *= np.float32(10.0)
    return energy
