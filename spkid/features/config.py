"""`FeatureConfig`: every setting of the MFCC front-end, with units in the names and a reason per default.

Re-exported by :mod:`spkid.features`. The window names are those :mod:`spkid.features.filterbanks`
implements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from spkid.config_checks import Interval, Options, check_fields, check_settings
from spkid.errors import ConfigError
from spkid.features.filterbanks import WINDOWS

VAD_METHODS: tuple[str, ...] = ("energy", "none")
CMVN_METHODS: tuple[str, ...] = (
    "utterance",
    "sliding",
    "warping",
    "adaptive",
    "adaptive_level",
    "global",
    "level",
    "none",
    "auto",
)
#: Which frames CMVN statistics come from: the speech frames (after VAD) or every frame of the recording.
CMVN_FRAMES: tuple[str, ...] = ("speech", "all")
#: ``bands``: one front-end, or a wideband companion beside a telephone-band main model
#: (:mod:`spkid.recognizer.bands`).
BANDS: tuple[str, ...] = ("single", "auto")
#: CMVN methods that normalise toward statistics of the UBM pool, stored in the model.
GLOBAL_STATS_METHODS: tuple[str, ...] = ("adaptive", "adaptive_level", "global")
#: The front-end generation :func:`spkid.features.extract` reproduces: 2 is every model made before the
#: energy VAD became independent of silence around the speech (3). Stored with every model, so a model keeps
#: the features it was trained on.
FRONTEND_VERSION = 3
FRONTEND_VERSIONS: tuple[int, ...] = (2, 3)
#: ``sample_rate: auto`` picks one of these from the UBM pool (:func:`~spkid.features.choose_sample_rate`).
AUTO_SAMPLE_RATES: tuple[int, ...] = (8000, 16000)
#: A resolved ``auto`` front-end puts its top mel edge this fraction of the way to Nyquist (7600 Hz at 16k).
AUTO_F_MAX_FRACTION = 0.95
#: Settings added after the first model format, with the value that reproduces older models' features.
LEGACY_SETTINGS: dict[str, Any] = {
    "frontend_version": 2,
    "cmvn_relevance_frames": 300.0,
    "cmvn_frames": "speech",
    "bands": "single",
}


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Settings of the MFCC + Δ + ΔΔ front-end with energy VAD and CMVN.

    Attributes (default — reason)
    ----------
    sample_rate : int or "auto" = 16000
        Hz of the front-end; every recording is resampled to it. ``"auto"`` (the CLI default) lets
        ``train-ubm`` choose 8000 or 16000 from the UBM pool's native rates (``choose_sample_rate``),
        with ``f_max_hz`` fitted below the new Nyquist (:meth:`FeatureConfig.resolve`); the choice is stored.
    frame_length_ms : float = 25.0
        Standard analysis window: long enough for two pitch periods, short enough for stationarity.
    frame_shift_ms : float = 10.0
        Standard 100 frames/s; must not exceed the frame length (no sample may be skipped).
    n_fft : int or None = None
        FFT size; None takes the next power of two >= the frame length (512 at 16 kHz), as Kaldi does.
    pre_emphasis : float = 0.97
        Flattens the -6 dB/octave tilt of voiced speech and removes DC/hum; 0 disables.
    window : str = "hann"
        Its far sidelobes fall 18 dB/octave (Hamming's only 6), so bands with no signal (8 kHz audio at
        16 kHz) sit below the log floor instead of tracking leakage; also "hamming", "povey" (Kaldi),
        "blackman", "rectangular".
    n_mels : int = 40
        Enough bands to resolve formants at 16 kHz (Kaldi/SpeechBrain speaker recipes use 23-80).
    f_min_hz : float = 20.0
        Excludes DC and sub-audible rumble.
    f_max_hz : float = 3800.0
        The top of the telephone band (just below Nyquist at 8 kHz): narrowband recordings (telephone, 8 kHz
        devices) then hold every band the model uses, whatever the pool or the other side of a comparison
        had. Measured (benchmarks/bench_accuracy.py): a 7600 Hz top wins 1-6 EER points on wideband short
        words but loses 5-16 where enrollment and test differ in bandwidth; clipped to Nyquist.
    log_mel_range_db : float = 80.0
        Mel energies more than this below the utterance's peak are clamped (librosa's ``top_db``): empty
        bands (8 kHz audio at 16 kHz, digital silence) become constant instead of huge negative noise.
    n_ceps : int = 20
        Cepstra kept, c0 included: the usual 19-20 for GMM-UBM speaker recognition.
    use_log_energy : bool = False
        Replace c0 by the frame's speech-band log energy in dB (as the VAD sees it); c0 already carries it.
    lifter : float = 22.0
        HTK/Kaldi sinusoidal lifter; a per-coefficient scale, so it only matters with ``cmvn_variance=False``.
    delta_width : int = 2
        Δ and ΔΔ regress over ±2 frames (librosa ``width=5``), the HTK/Kaldi standard.
    delta_order : int = 2
        Static + Δ + ΔΔ (0 static only, 1 adds Δ): dynamics help speaker GMMs.
    vad : str = "none"
        "none" keeps every frame; "energy" keeps the frames an energy voice-activity detector marks as speech
        (the 100-4000 Hz band of the signal before pre-emphasis, where voiced speech stands out of broadband
        noise). Measured: on short clips the frames around a word (the recording's own background) and the
        statistics they give the normalisation keep identifying the speaker's recording; dropping them lost
        3-50 top-1 points on words and 0.5-3 s tests, and no condition gained from the VAD.
    vad_threshold_fraction : float = 0.2
        The speech threshold sits this fraction of the way (in dB) from the utterance's noise floor to its
        peak: relative to the recording's own levels, so gain and stationary noise do not move it (0.2 keeps
        ~75% of the speech at 5-10 dB SNR with no noise frames; 0.3 loses ~10% more).
    vad_range_db : float = 40.0
        Frames more than this below the peak are never speech, whatever the noise floor (clean recordings
        with digital silence would otherwise keep breath and reverb tails).
    vad_noise_percentile : float = 10.0
        The noise floor is this percentile of frame energies: robust to a few dropouts, and still below
        the speech when a tightly cut clip holds no pause at all.
    vad_silence_dbfs : float = -80.0
        Frames below this level (mean square, dB re full scale) are never speech; an utterance whose peak is
        below it is silent (≈ 3 quantisation steps RMS of 16-bit audio; speech sits at -40 to -15).
    vad_context_frames : int = 2
        Majority vote over ±2 frames fills one-frame gaps inside words and drops one-frame clicks.
    min_speech_ms : float = 100.0
        Least speech worth scoring; when the threshold keeps less (a short word), the loudest frames up to
        this length are kept instead, so only clips shorter than ~0.1 s or silent ones are rejected.
    cmvn : str = "utterance"
        The API's default needs no pool (configs and the CLI default to "adaptive_level", whose statistics
        train-ubm stores). Mean (and variance) normalisation over the utterance removes the channel; "sliding"
        uses a running window for long recordings; "warping" maps each value to the normal quantile of its
        rank in a 3-s window (Pelecanos & Sridharan 2001); "adaptive" shrinks the utterance's statistics
        toward the UBM pool's by its length (``cmvn_relevance_frames``), so a short word keeps its mean;
        "global" uses the pool's statistics alone; "level" removes only the recording's level (c0's mean, so
        a gain changes nothing); "adaptive_level" is "adaptive" with c0's mean then removed whole (a gain no
        longer shifts it); "none" keeps raw cepstra. "auto" is chosen per model: ``train-ubm`` trains an
        "adaptive_level" model and a "none" one, and the enrollment keeps the one its recordings call
        for (:mod:`spkid.recognizer.level_choice`); features are never extracted with "auto" itself.
    cmvn_window_frames : int = 300
        Sliding-window and warping window length (3 s), the Kaldi and Pelecanos default.
    cmvn_variance : bool = True
        Also scale each dimension to unit variance, reducing channel/noise mismatch for diagonal GMMs.
    cmvn_frames : str = "speech"
        Frames the normalisation statistics are taken over: "speech" (after VAD) or "all" frames of the
        recording, the speech frames being selected afterwards (Kaldi's order: its background then stays a
        reference the speech is measured against). "all" works with utterance, sliding and warping.
    cmvn_relevance_frames : float = 300.0
        "adaptive" CMVN: an utterance of this many speech frames weighs as much as the pool's statistics.
    bands : str = "single"
        "single": one front-end. "auto": when ``train-ubm`` picks a wideband rate (16 kHz), the model gets
        two front-ends: the main one starts at the telephone band's bottom (``f_min_hz`` at least 300 Hz)
        and compares recordings of any bandwidth; a companion in the model's ``wideband/`` folder reaches
        7600 Hz and scores a recording whose speaker was enrolled on wideband audio only, when the recording
        is wideband too (:mod:`spkid.recognizer.bands`). It does not change extraction itself. The
        configs' default (``configs/default.yaml``, the CLI's) is "auto"; "single" here needs no pool.
    frontend_version : int = 3
        Front-end generation to reproduce: 3 (current) or 2 (models made before the VAD ignored silence
        around the speech). Models store it; there is no reason to set it by hand.

    Examples
    --------
    >>> config = FeatureConfig(n_ceps=13, vad="energy")
    >>> config.n_features, config.frame_length, config.frame_shift, config.fft_size  # 16 kHz samples
    (39, 400, 160, 512)
    >>> FeatureConfig.from_dict(config.to_dict()) == config
    True
    """

    sample_rate: int | str = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_fft: int | None = None
    pre_emphasis: float = 0.97
    window: str = "hann"
    n_mels: int = 40
    f_min_hz: float = 20.0
    f_max_hz: float = 3800.0
    log_mel_range_db: float = 80.0
    n_ceps: int = 20
    use_log_energy: bool = False
    lifter: float = 22.0
    delta_width: int = 2
    delta_order: int = 2
    vad: str = "none"
    vad_threshold_fraction: float = 0.2
    vad_range_db: float = 40.0
    vad_noise_percentile: float = 10.0
    vad_silence_dbfs: float = -80.0
    vad_context_frames: int = 2
    min_speech_ms: float = 100.0
    cmvn: str = "utterance"
    cmvn_window_frames: int = 300
    cmvn_variance: bool = True
    cmvn_frames: str = "speech"
    cmvn_relevance_frames: float = 300.0
    bands: str = "single"
    frontend_version: int = FRONTEND_VERSION

    #: What each setting may be (:mod:`spkid.config_checks`); the rules between settings are in ``_validate``.
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "sample_rate": [Interval(int, 1, None, what="a rate in Hz"), "auto"],
        "frame_length_ms": Interval(float, 0, None, closed="neither"),
        "frame_shift_ms": Interval(float, 0, None, closed="neither"),
        "n_fft": [Interval(int, 1, None), None],
        "pre_emphasis": Interval(float, 0, 1, closed="left"),
        "window": Options(WINDOWS),
        "n_mels": Interval(int, 1, None),
        "f_min_hz": Interval(float, 0, None),
        "f_max_hz": Interval(float, 0, None, closed="neither"),
        "log_mel_range_db": Interval(float, 0, None, closed="neither"),
        "n_ceps": Interval(int, 1, None),
        "use_log_energy": bool,
        "lifter": Interval(float, 0, None),
        "delta_width": Interval(int, 1, None),
        "delta_order": Interval(int, 0, 2, what="0 (static only), 1 (Δ) or 2 (Δ and ΔΔ)"),
        "vad": Options(VAD_METHODS),
        "vad_threshold_fraction": Interval(float, 0, 1),
        "vad_range_db": Interval(float, 0, None, closed="neither"),
        "vad_noise_percentile": Interval(float, 0, 100),
        "vad_silence_dbfs": Interval(float, None, None),
        "vad_context_frames": Interval(int, 0, None),
        "min_speech_ms": Interval(float, 0, None),
        "cmvn": Options(CMVN_METHODS),
        "cmvn_window_frames": Interval(int, 1, None),
        "cmvn_variance": bool,
        "cmvn_frames": Options(CMVN_FRAMES),
        "cmvn_relevance_frames": Interval(float, 0, None),
        "bands": Options(BANDS),
        "frontend_version": Options(FRONTEND_VERSIONS),
    }

    def __post_init__(self) -> None:
        check_fields(self, "features")
        self._validate()

    # -- sample rate ---------------------------------------------------------------------------------------
    @property
    def is_resolved(self) -> bool:
        """Whether the sample rate is a number (not ``"auto"``): only then can features be extracted."""
        return self.sample_rate != "auto"

    @property
    def needs_global_stats(self) -> bool:
        """Whether normalisation needs the UBM pool's :class:`~spkid.features.normalization.GlobalStats`."""
        return self.cmvn in GLOBAL_STATS_METHODS

    def resolve(self, sample_rate: int) -> FeatureConfig:
        """This config at ``sample_rate``, with ``f_max_hz`` kept below the new Nyquist frequency.

        ``f_max_hz`` becomes ``min(f_max_hz, 0.95 * sample_rate / 2)``: 7600 Hz stays at 16 kHz, 3800 Hz at
        8 kHz, where the telephone band and anti-alias filters end.

        Examples
        --------
        >>> FeatureConfig(sample_rate="auto").resolve(8000).f_max_hz
        3800.0
        """
        f_max_hz = min(self.f_max_hz, AUTO_F_MAX_FRACTION * sample_rate / 2.0)
        return dataclasses.replace(self, sample_rate=int(sample_rate), f_max_hz=f_max_hz)

    def _rate(self) -> int:
        if not self.is_resolved:
            raise ConfigError(
                "features.sample_rate='auto' is chosen from the UBM pool by train-ubm; give a rate in Hz "
                "(e.g. 16000) to extract features directly"
            )
        return int(self.sample_rate)

    # -- derived sizes -------------------------------------------------------------------------------------
    @property
    def frame_length(self) -> int:
        """Frame length in samples."""
        return int(round(self.frame_length_ms * self._rate() / 1000.0))

    @property
    def frame_shift(self) -> int:
        """Frame shift in samples."""
        return int(round(self.frame_shift_ms * self._rate() / 1000.0))

    @property
    def fft_size(self) -> int:
        """FFT length actually used: ``n_fft`` or the next power of two >= the frame length."""
        return self.n_fft if self.n_fft is not None else 1 << max(self.frame_length - 1, 1).bit_length()

    @property
    def f_max_effective_hz(self) -> float:
        """``f_max_hz`` clipped to the Nyquist frequency."""
        return min(self.f_max_hz, self._rate() / 2.0)

    @property
    def min_speech_frames(self) -> int:
        """``min_speech_ms`` in frames (at least 1)."""
        return max(1, int(math.ceil(self.min_speech_ms / self.frame_shift_ms - 1e-9)))

    @property
    def n_features(self) -> int:
        """Feature dimension: ``n_ceps * (1 + delta_order)``."""
        return self.n_ceps * (1 + self.delta_order)

    # -- (de)serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (YAML/JSON-safe scalars)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> FeatureConfig:
        """Build a config from a mapping; missing keys take defaults, unknown keys raise `ConfigError`."""
        return cls(**check_settings("features", cls, settings))

    # -- checks --------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        """The rules between settings, once each setting has passed its constraint."""

        def fail(name: str, reason: str) -> None:
            raise ConfigError(f"features.{name}={getattr(self, name)!r}: {reason}")

        if self.frame_shift_ms > self.frame_length_ms:
            fail(
                "frame_shift_ms",
                f"is larger than frame_length_ms={self.frame_length_ms}; samples would be skipped",
            )
        if self.n_ceps > self.n_mels:
            fail("n_ceps", f"cannot exceed n_mels={self.n_mels}")
        if self.cmvn_frames == "all" and self.needs_global_stats:
            fail("cmvn_frames", f"'all' works with cmvn utterance, sliding or warping, not {self.cmvn!r}")
        if not self.is_resolved:
            return  # the rate-dependent checks run again when train-ubm resolves the rate
        if self.frame_length < 2 or self.frame_shift < 1:
            fail("frame_length_ms", f"gives fewer than 2 samples per frame at {self.sample_rate} Hz")
        if self.n_fft is not None and self.n_fft < self.frame_length:
            fail(
                "n_fft", f"is shorter than the frame ({self.frame_length} samples); use None or a larger size"
            )
        if self.f_min_hz >= self.f_max_effective_hz:
            fail(
                "f_min_hz",
                f"must be below f_max_hz (after clipping to Nyquist: {self.f_max_effective_hz} Hz)",
            )


def stored_feature_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A model's stored feature settings with the settings added since filled in as that model used them.

    A model made before a setting existed extracted features as :data:`LEGACY_SETTINGS` says (e.g.
    ``frontend_version`` 2), not as today's default would; every other key is taken as stored.

    Examples
    --------
    >>> stored_feature_settings({"sample_rate": 16000})["frontend_version"]
    2
    """
    return {**LEGACY_SETTINGS, **stored}
