"""Energy voice-activity detection relative to each utterance's own levels.

The threshold sits between the utterance's noise floor (a low percentile of frame energies) and its peak,
so neither recording gain nor a stationary noise floor moves it; short clips keep at least a minimum of
their loudest frames so a single word is never thrown away.
"""

from __future__ import annotations

import numpy as np

from spkid.features.config import FeatureConfig
from spkid.features.frontend import ENERGY_FLOOR, band_weights

VAD_BAND_HZ = (100.0, 4000.0)  # voiced speech energy sits here; above hum, below the noise-dominated top
PEAK_PERCENTILE = 99.0  # the "peak" ignores the loudest 1% of frames, so one click cannot set it
#: Front-end 3: the levels are read between the first and last frame within SPAN_DB of the recording's
#: REFERENCE_FRAMES-th loudest frame, so silence added around the speech (padding, a long lead-in) changes
#: neither the noise floor nor the peak, and so no decision.
SPAN_DB = 30.0
REFERENCE_FRAMES = 10


def energy_vad(
    frame_energy_db: np.ndarray,
    *,
    threshold_fraction: float = 0.2,
    range_db: float = 40.0,
    noise_percentile: float = 10.0,
    silence_dbfs: float = -80.0,
    context_frames: int = 2,
    min_frames: int = 0,
    padding_invariant: bool = True,
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
    padding_invariant : bool, default True
        Read the percentiles only between the first and last frame within :data:`SPAN_DB` of the
        :data:`REFERENCE_FRAMES`-th loudest frame, and count frames beyond the ends as silence in the vote,
        so seconds of quieter audio around a recording leave its decisions unchanged (front-end 3). False
        reads them over every frame, with the ends repeated in the vote (front-end 2).

    Returns
    -------
    ndarray of shape (n_frames,), bool

    Examples
    --------
    >>> import numpy as np
    >>> levels = np.array([-70.0] * 5 + [-20.0] * 10 + [-70.0] * 5)
    >>> np.flatnonzero(energy_vad(levels)).tolist() == list(range(5, 15))
    True
    """
    energy = np.asarray(frame_energy_db, dtype=np.float64)
    n_frames = energy.shape[0]
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    levels = _span(energy, silence_dbfs) if padding_invariant else energy
    peak, noise = np.percentile(levels, [PEAK_PERCENTILE, noise_percentile])
    if peak < silence_dbfs:
        return np.zeros(n_frames, dtype=bool)
    hard_floor = max(peak - range_db, silence_dbfs)
    threshold = max(noise + threshold_fraction * (peak - noise), hard_floor)
    speech = energy >= threshold
    if context_frames > 0 and n_frames > 1:
        from scipy.ndimage import uniform_filter1d  # here: identify with vad none skips its import (~0.05 s)

        edges = {"mode": "constant", "cval": 0.0} if padding_invariant else {"mode": "nearest"}
        votes = uniform_filter1d(speech.astype(np.float32), size=2 * context_frames + 1, **edges)
        # Majority vote, but never a frame far below the peak (a gap of digital silence inside speech).
        speech = (votes > 0.5) & (energy >= hard_floor)
    if speech.sum() < min_frames:
        audible = np.flatnonzero(energy >= silence_dbfs)
        loudest = audible[np.argsort(energy[audible], kind="stable")[::-1][:min_frames]]
        speech = np.zeros(n_frames, dtype=bool)
        speech[loudest] = True
    return speech


def _span(energy: np.ndarray, silence_dbfs: float) -> np.ndarray:
    """The frames from the first to the last run of 3 within SPAN_DB of the REFERENCE_FRAMES-th loudest.

    Runs, not single frames: a frame that overlaps the recording's edge and added silence can catch a
    transient that the recording's own edge frames weighed lightly; alone it must not move the span.
    """
    k = min(REFERENCE_FRAMES, energy.size)
    reference = np.partition(energy, -k)[-k]
    loud = np.zeros(energy.size + 2, dtype=bool)
    loud[1:-1] = energy >= max(reference - SPAN_DB, silence_dbfs)
    centres = np.flatnonzero(loud[:-2] & loud[1:-1] & loud[2:])  # index of each 3-run's first frame
    if centres.size == 0:
        return energy
    return energy[centres[0] : centres[-1] + 2]


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

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.features.frontend import frame_signal, power_spectrum, pre_emphasis, window_function
    >>> config = FeatureConfig()
    >>> tone = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(16000) / 16000)  # mean square 0.125: -9 dB
    >>> frames = frame_signal(pre_emphasis(tone, 0.97), config.frame_length, config.frame_shift)
    >>> power = power_spectrum(frames, window_function(config.window, config.frame_length), config.fft_size)
    >>> levels = frame_energy_db(power, config)
    >>> levels.shape, round(float(np.median(levels)), 1)
    ((98,), -9.0)
    """
    return to_db(power @ energy_band_weights(config))


def to_db(energy: np.ndarray) -> np.ndarray:
    """Mean-square energies to dB, in place (float32), floored at ``ENERGY_FLOOR``."""
    energy += np.float32(ENERGY_FLOOR)
    np.log10(energy, out=energy)
    energy *= np.float32(10.0)
    return energy
