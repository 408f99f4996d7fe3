"""The MFCC front-end of one utterance: waveform → MFCC + Δ + ΔΔ → energy VAD → CMVN.

The stages live in :mod:`spkid.features.frontend` (spectral), :mod:`spkid.features.derivatives`,
:mod:`spkid.features.vad` and :mod:`spkid.features.normalization`; :func:`extract` chains them in float32
with no Python loop over frames. Many files at once (worker processes, the disk cache) are
:mod:`spkid.features.batch`; the settings are :class:`~spkid.features.config.FeatureConfig`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spkid.audio import load, resample
from spkid.blas import blas_threads
from spkid.errors import FeatureError
from spkid.features.config import FeatureConfig
from spkid.features.derivatives import with_deltas
from spkid.features.frontend import (
    frame_signal,
    log_mel,
    mel_filterbank,
    mfcc,
    pre_emphasis,
    projected_power,
    window_function,
)
from spkid.features.normalization import (
    GlobalStats,
    adaptive_cmvn,
    adaptive_level_cmvn,
    cmvn,
    global_cmvn,
    level_normalisation,
    sliding_cmvn,
)
from spkid.features.vad import energy_band_weights, energy_vad, to_db
from spkid.features.warping import feature_warping

__all__ = ["FileExtractor", "extract", "normalise"]


_PROJECTIONS: dict[FeatureConfig, np.ndarray] = {}  # per process; seeded in workers by FileExtractor


def _spectral_projection(config: FeatureConfig) -> np.ndarray:
    """Mel filters and the energy band as one ``(n_bins, n_mels + 1)`` matrix for ``projected_power``."""
    projection = _PROJECTIONS.get(config)
    if projection is None:
        filters = mel_filterbank(
            config.sample_rate, config.fft_size, config.n_mels, config.f_min_hz, config.f_max_effective_hz
        )
        projection = np.ascontiguousarray(
            np.column_stack([filters.T, energy_band_weights(config)]), np.float32
        )
        _remember_projection(config, projection)
    return projection


def _remember_projection(config: FeatureConfig, projection: np.ndarray) -> None:
    if len(_PROJECTIONS) >= 16:
        _PROJECTIONS.clear()
    projection.setflags(write=False)
    _PROJECTIONS[config] = projection


class FileExtractor:
    """``extract(path, config, stats=stats)`` for worker processes, carrying the projection matrix built
    here, so that workers need not build the same windowed mel projection again."""

    def __init__(self, config: FeatureConfig, stats: GlobalStats | None) -> None:
        self.config = config
        self.stats = stats
        self.projection = _spectral_projection(config)

    def __call__(self, path: Path) -> np.ndarray:
        if self.config not in _PROJECTIONS:
            _remember_projection(self.config, self.projection)
        return extract(path, self.config, stats=self.stats)


def normalise(features: np.ndarray, config: FeatureConfig, stats: GlobalStats | None = None) -> np.ndarray:
    """Apply ``config.cmvn`` to one utterance's speech frames.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_features)
        Un-normalised features (``extract`` with ``cmvn="none"``).
    config : FeatureConfig
    stats : GlobalStats, optional
        The UBM pool's statistics; required by ``cmvn`` "adaptive" and "global".

    Returns
    -------
    ndarray of shape (n_frames, n_features), float32

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> normalise(frames, FeatureConfig(cmvn="utterance")).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    method = config.cmvn
    if method == "auto":
        raise FeatureError(
            "features.cmvn='auto' is settled by train-ubm and the enrollment; extract with a model's "
            "stored settings or name a method"
        )
    if config.needs_global_stats:
        if stats is None:
            raise FeatureError(f"cmvn={method!r} needs the UBM pool's statistics (stored by train-ubm)")
        if stats.mean.shape[0] != features.shape[1]:
            raise FeatureError(
                f"global statistics have {stats.mean.shape[0]} dimensions, the features {features.shape[1]}"
            )
        if method == "global":
            return global_cmvn(features, stats, variance=config.cmvn_variance)
        adapt = adaptive_level_cmvn if method == "adaptive_level" else adaptive_cmvn
        return adapt(
            features, stats, relevance_frames=config.cmvn_relevance_frames, variance=config.cmvn_variance
        )
    if method == "utterance":
        return cmvn(features, variance=config.cmvn_variance)
    if method == "sliding":
        return sliding_cmvn(features, window_frames=config.cmvn_window_frames, variance=config.cmvn_variance)
    if method == "warping":
        return feature_warping(features, window_frames=config.cmvn_window_frames)
    if method == "level":
        return level_normalisation(features)
    return np.ascontiguousarray(features, dtype=np.float32)


def _signal_features(signal: np.ndarray, config: FeatureConfig, stats: GlobalStats | None) -> np.ndarray:
    # One BLAS thread: the same features, bit for bit, here and in extract_many's worker processes.
    with blas_threads(1):
        features, speech = _single_threaded_features(signal, config)
        if config.cmvn_frames == "all":  # the whole recording's statistics, then its speech (Kaldi's order)
            return np.ascontiguousarray(normalise(features, config, stats)[speech])
        return normalise(features[speech], config, stats)


def _single_threaded_features(signal: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's features, and which frames are speech (all of them without VAD)."""
    rate = config.sample_rate
    min_frames = max(config.min_speech_frames, 2 * config.delta_width + 1 if config.delta_order else 1)
    min_samples = config.frame_length + (min_frames - 1) * config.frame_shift
    if signal.shape[0] < min_samples:
        raise FeatureError(
            f"too short: {1000.0 * signal.shape[0] / rate:.0f} ms of audio, need at least "
            f"{1000.0 * min_samples / rate:.0f} ms (min_speech_ms={config.min_speech_ms:g})"
        )
    frames = frame_signal(pre_emphasis(signal, config.pre_emphasis), config.frame_length, config.frame_shift)
    window = window_function(config.window, config.frame_length)
    mel_and_energy = projected_power(frames, window, config.fft_size, _spectral_projection(config))
    energy_db = to_db(np.ascontiguousarray(mel_and_energy[:, -1]))
    peak_db = float(energy_db.max())
    if peak_db < config.vad_silence_dbfs:
        raise FeatureError(f"silent: peak level {peak_db:.0f} dBFS is below vad_silence_dbfs")
    log_mel_db = log_mel(mel_and_energy[:, :-1], range_db=config.log_mel_range_db)
    cepstra = mfcc(log_mel_db, config.n_ceps, lifter=config.lifter)
    if config.use_log_energy:
        cepstra[:, 0] = energy_db
    features = with_deltas(cepstra, width_frames=config.delta_width, order=config.delta_order)
    if config.vad == "energy":
        speech = energy_vad(
            energy_db,
            threshold_fraction=config.vad_threshold_fraction,
            range_db=config.vad_range_db,
            noise_percentile=config.vad_noise_percentile,
            silence_dbfs=config.vad_silence_dbfs,
            context_frames=config.vad_context_frames,
            min_frames=config.min_speech_frames,
            padding_invariant=config.frontend_version >= 3,
        )
    else:
        speech = np.ones(features.shape[0], dtype=bool)
    n_speech = int(np.count_nonzero(speech))
    if n_speech < config.min_speech_frames:
        raise FeatureError(
            f"no speech: {n_speech} frames left after VAD, need {config.min_speech_frames} "
            f"(min_speech_ms={config.min_speech_ms:g})"
        )
    return features, speech


def extract(
    signal_or_path: np.ndarray | str | os.PathLike[str],
    config: FeatureConfig = FeatureConfig(),
    *,
    sample_rate: int | None = None,
    stats: GlobalStats | None = None,
) -> np.ndarray:
    """Features of one utterance: MFCC (+ Δ, ΔΔ), speech frames only, normalised.

    Parameters
    ----------
    signal_or_path : ndarray of shape (n_samples,) or path
        A waveform, or an audio file decoded with :func:`spkid.audio.load` at ``config.sample_rate``.
        Integer waveforms are read as PCM (int16 / 32768); float waveforms beyond [-1, 1] are scaled to
        peak 1 (only the VAD's silence level depends on the absolute scale).
    config : FeatureConfig, default FeatureConfig()
        Use ``vad="none"`` and ``cmvn="none"`` for every frame, unnormalised.
    sample_rate : int, optional
        Rate of a waveform argument in Hz (resampled to ``config.sample_rate`` when it differs); default
        ``config.sample_rate``. Ignored for paths, whose header gives the rate.
    stats : GlobalStats, optional
        The UBM pool's feature statistics, for ``config.cmvn`` "adaptive" or "global" (see :func:`normalise`).

    Returns
    -------
    ndarray of shape (n_frames, config.n_features), float32
        Before VAD, ``n_frames = 1 + (n_samples - frame_length) // frame_shift``.

    Raises
    ------
    FeatureError
        Too short, silent, no speech after VAD, or a waveform that is not 1-D / holds NaN or Inf.
    AudioError
        The file cannot be read (see :func:`spkid.audio.load`).

    Examples
    --------
    >>> from spkid.corpora.synthetic import make_utterance
    >>> waveform = make_utterance(0, 0, duration_s=1.0, sample_rate=16000)
    >>> features = extract(waveform, FeatureConfig(sample_rate=16000))
    >>> features.shape, features.dtype  # 1 + (16000 - 400) // 160 frames, 20 cepstra + Δ + ΔΔ
    ((98, 60), dtype('float32'))
    """
    if not config.is_resolved:
        config.frame_length  # noqa: B018 - raises the ConfigError that explains "auto"
    if isinstance(signal_or_path, (str, os.PathLike)):
        path = Path(signal_or_path)
        signal = load(path, config.sample_rate)
        try:
            return _signal_features(signal, config, stats)
        except FeatureError as error:
            raise FeatureError(f"{path}: {error}") from None
    signal = np.asarray(signal_or_path)
    if signal.ndim != 1:
        raise FeatureError(f"expected a mono waveform of shape (n_samples,), got shape {signal.shape}")
    if not (np.issubdtype(signal.dtype, np.floating) or np.issubdtype(signal.dtype, np.integer)):
        raise FeatureError(f"expected a numeric waveform, got dtype {signal.dtype}")
    if np.issubdtype(signal.dtype, np.integer):  # PCM integers, as soundfile scales them
        signal = signal / np.float32(2 ** (8 * signal.dtype.itemsize - 1))
    signal = signal.astype(np.float32, copy=False)
    if not np.isfinite(signal).all():
        raise FeatureError(f"waveform holds {int(np.count_nonzero(~np.isfinite(signal)))} NaN/Inf samples")
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak > 1.0:  # louder than full scale: bring to [-1, 1] so levels (and float32 powers) stay in range
        signal = signal / np.float32(peak)
    if sample_rate is not None and sample_rate != config.sample_rate:
        if sample_rate <= 0:
            raise FeatureError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        signal = resample(signal, int(sample_rate), config.sample_rate)
    return _signal_features(signal, config, stats)
