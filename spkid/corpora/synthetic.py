"""A small seeded corpus of speech-like audio from a source-filter model, like scikit-learn's ``make_blobs``.

Each speaker has its own pitch, vocal-tract length (formant scaling), formant idiosyncrasies, spectral tilt
and breathiness; utterances string voiced vowels and unvoiced fricatives into words separated by pauses of
near-silence, at a random gain so loudness says nothing about the speaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from spkid.errors import DataError

# F1-F4 (Hz) of an average adult vocal tract (after Peterson & Barney, 1952), scaled per speaker.
VOWEL_FORMANTS_HZ: dict[str, tuple[float, float, float, float]] = {
    "i": (270, 2290, 3010, 3700),
    "e": (530, 1840, 2480, 3500),
    "ae": (660, 1720, 2410, 3450),
    "a": (730, 1090, 2440, 3400),
    "o": (570, 840, 2410, 3350),
    "u": (300, 870, 2240, 3300),
    "er": (490, 1350, 1690, 3300),
}
FORMANT_BANDWIDTHS_HZ = (80.0, 110.0, 160.0, 220.0)
# Fricative noise resonances (centre Hz, bandwidth Hz) before vocal-tract scaling.
FRICATIVES_HZ: dict[str, tuple[float, float]] = {
    "s": (5200.0, 1800.0),
    "sh": (2900.0, 1100.0),
    "f": (4000.0, 4000.0),
}
BACKGROUND_DB = -50.0  # background noise relative to the speech RMS: pauses are near-silent, not digital zero


@dataclass(frozen=True)
class SpeakerTraits:
    """The voice of one synthetic speaker.

    Attributes
    ----------
    f0_hz : float
        Mean pitch.
    vtl_scale : float
        Formant frequency scale (inverse vocal-tract length; 1 = average adult).
    formant_offsets : tuple of 4 float
        Speaker-specific multiplicative deviations of F1-F4.
    tilt : float
        Glottal low-pass pole (higher = steeper spectral tilt).
    breathiness : float
        Aspiration noise level relative to the glottal pulses.
    jitter : float
        Relative pitch perturbation.
    """

    f0_hz: float
    vtl_scale: float
    formant_offsets: tuple[float, float, float, float]
    tilt: float
    breathiness: float
    jitter: float


def speaker_traits(speaker_index: int, *, seed: int = 0) -> SpeakerTraits:
    """Draw the traits of speaker ``speaker_index`` (even indices lower-pitched, odd higher)."""
    rng = np.random.default_rng([seed, speaker_index, 0])
    high = speaker_index % 2 == 1
    return SpeakerTraits(
        f0_hz=float(rng.uniform(180.0, 250.0) if high else rng.uniform(90.0, 140.0)),
        vtl_scale=float(rng.uniform(1.08, 1.22) if high else rng.uniform(0.88, 1.02)),
        formant_offsets=tuple(float(v) for v in 1.0 + rng.normal(0.0, 0.05, size=4)),  # type: ignore[arg-type]
        tilt=float(rng.uniform(0.90, 0.985)),
        breathiness=float(rng.uniform(0.02, 0.25)),
        jitter=float(rng.uniform(0.005, 0.03)),
    )


def _resonator(centre_hz: float, bandwidth_hz: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    radius = np.exp(-np.pi * bandwidth_hz / sample_rate)
    angle = 2.0 * np.pi * centre_hz / sample_rate
    denominator = np.array([1.0, -2.0 * radius * np.cos(angle), radius**2])
    return np.array([float(np.sum(denominator))]), denominator  # unit gain at DC, peak at centre


def _envelope(n_samples: int, sample_rate: int) -> np.ndarray:
    ramp = min(n_samples // 2, int(0.015 * sample_rate))
    envelope = np.ones(n_samples)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp))
        envelope[:ramp], envelope[-ramp:] = rise, rise[::-1]
    return envelope


def _voiced(
    traits: SpeakerTraits,
    vowel: str,
    n_samples: int,
    f0_hz: float,
    utt_scale: float,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    drift = np.linspace(1.0 + rng.normal(0.0, 0.05), 1.0 + rng.normal(0.0, 0.05), n_samples)
    wobble = 1.0 + traits.jitter * scipy.signal.lfilter([0.05], [1.0, -0.95], rng.standard_normal(n_samples))
    phase = np.cumsum(f0_hz * drift * wobble / sample_rate) + rng.uniform()
    pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])).astype(float)
    source = scipy.signal.lfilter([1.0, -1.0], np.convolve([1.0, -traits.tilt], [1.0, -traits.tilt]), pulses)
    source += traits.breathiness * np.std(source) * rng.standard_normal(n_samples)
    scale = traits.vtl_scale * utt_scale
    formants = np.array(VOWEL_FORMANTS_HZ[vowel]) * np.array(traits.formant_offsets) * scale
    output = source
    for centre_hz, bandwidth_hz in zip(formants, FORMANT_BANDWIDTHS_HZ, strict=True):
        if centre_hz < 0.45 * sample_rate:
            output = scipy.signal.lfilter(*_resonator(centre_hz, bandwidth_hz * scale, sample_rate), output)
    return output


def _fricative(
    traits: SpeakerTraits, kind: str, n_samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    centre_hz, bandwidth_hz = FRICATIVES_HZ[kind]
    centre_hz = min(centre_hz * traits.vtl_scale, 0.4 * sample_rate)
    noise = rng.standard_normal(n_samples)
    return scipy.signal.lfilter(*_resonator(centre_hz, bandwidth_hz, sample_rate), noise)


def make_utterance(
    speaker_index: int,
    utterance_index: int,
    *,
    duration_s: float = 3.0,
    sample_rate: int = 16000,
    seed: int = 0,
    return_speech_intervals: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[tuple[float, float]]]:
    """Synthesise one utterance in memory (the waveform :func:`make_speakers` writes, before 16-bit rounding).

    Parameters
    ----------
    speaker_index, utterance_index : int
    duration_s : float, default 3.0
    sample_rate : int, default 16000
    seed : int, default 0
    return_speech_intervals : bool, default False
        Also return the ``(start_s, end_s)`` of every word (the rest is pause).

    Returns
    -------
    ndarray of shape (round(duration_s * sample_rate),), float32
        Peak between -26 and -1 dBFS (random per utterance).
    list of (float, float), optional
    """
    traits = speaker_traits(speaker_index, seed=seed)
    rng = np.random.default_rng([seed, speaker_index, utterance_index + 1])
    n_total = int(round(duration_s * sample_rate))
    utt_scale = 1.0 + rng.normal(0.0, 0.015)  # the same speaker varies a little between recordings
    utt_f0_hz = traits.f0_hz * (1.0 + rng.normal(0.0, 0.04))
    pieces: list[np.ndarray] = []
    intervals: list[tuple[float, float]] = []
    position = 0
    while position < n_total:
        pause = np.zeros(int(rng.uniform(0.12, 0.4) * sample_rate))
        pieces.append(pause)
        position += pause.size
        word: list[np.ndarray] = []
        for _ in range(rng.integers(1, 4)):  # syllables: optional fricative onset + vowel
            if rng.uniform() < 0.4:
                kind = str(rng.choice(list(FRICATIVES_HZ)))
                length = int(rng.uniform(0.05, 0.13) * sample_rate)
                word.append(
                    0.15 * _fricative(traits, kind, length, sample_rate, rng) * _envelope(length, sample_rate)
                )
            vowel = str(rng.choice(list(VOWEL_FORMANTS_HZ)))
            length = int(rng.uniform(0.08, 0.25) * sample_rate)
            f0_hz = utt_f0_hz * (1.0 - 0.15 * position / max(n_total, 1))  # declination
            voiced = _voiced(traits, vowel, length, f0_hz, utt_scale, sample_rate, rng)
            word.append(
                voiced
                / (np.std(voiced) + 1e-12)
                * 10 ** (rng.normal(0.0, 3.0) / 20.0)
                * _envelope(length, sample_rate)
            )
        samples = np.concatenate(word)
        intervals.append((position / sample_rate, min(position + samples.size, n_total) / sample_rate))
        pieces.append(samples)
        position += samples.size
    signal = np.concatenate(pieces)[:n_total]
    intervals = [(start, end) for start, end in intervals if start < end]
    speech_rms = float(np.sqrt(np.mean(signal[signal != 0] ** 2))) if np.any(signal) else 1.0
    signal = signal + speech_rms * 10 ** (BACKGROUND_DB / 20.0) * rng.standard_normal(n_total)
    peak_dbfs = rng.uniform(-26.0, -1.0)  # loudness is random per utterance, never a speaker cue
    signal = (signal * (10 ** (peak_dbfs / 20.0) / (np.max(np.abs(signal)) + 1e-12))).astype(np.float32)
    return (signal, intervals) if return_speech_intervals else signal


def make_speakers(
    out_dir: str | Path,
    *,
    n_speakers: int = 8,
    n_utterances: int = 6,
    duration_s: float = 3.0,
    sample_rate: int = 16000,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write a synthetic corpus ``out_dir/<speaker>/<speaker>_<nn>.wav`` (16-bit PCM WAV).

    Parameters
    ----------
    out_dir : str or Path
        Created if missing; existing files of the same names are overwritten.
    n_speakers : int, default 8
        Speakers ``spk01``, ``spk02``, ...; alternately lower- and higher-pitched voices.
    n_utterances : int, default 6
    duration_s : float, default 3.0
    sample_rate : int, default 16000
    seed : int, default 0
        Same seed, same corpus, byte for byte.

    Returns
    -------
    dict of str to list of Path
        Speaker name to its files, in order.

    Raises
    ------
    DataError
        A count, duration or rate is not positive.
    """
    for name, value in (
        ("n_speakers", n_speakers),
        ("n_utterances", n_utterances),
        ("duration_s", duration_s),
        ("sample_rate", sample_rate),
    ):
        if not value > 0:
            raise DataError(f"make_speakers: {name} must be > 0, got {value}")
    if sample_rate < 4000:
        raise DataError(
            f"make_speakers: sample_rate must be >= 4000 Hz for speech formants, got {sample_rate}"
        )
    out_dir = Path(out_dir)
    corpus: dict[str, list[Path]] = {}
    for speaker_index in range(n_speakers):
        speaker = f"spk{speaker_index + 1:02d}"
        folder = out_dir / speaker
        folder.mkdir(parents=True, exist_ok=True)
        corpus[speaker] = []
        for utterance_index in range(n_utterances):
            signal = make_utterance(
                speaker_index, utterance_index, duration_s=duration_s, sample_rate=sample_rate, seed=seed
            )
            path = folder / f"{speaker}_{utterance_index + 1:02d}.wav"
            soundfile.write(str(path), signal, sample_rate, subtype="PCM_16")
            corpus[speaker].append(path)
    return corpus
