"""Condition corpora for ``bench_conditions.py``, derived from the shared LibriSpeech subset into a temp dir.

Each builder writes audio (or symlinks to the original FLACs, never copies into the repo) and returns a
:class:`Corpus`: a UBM pool, one folder per enrolled speaker (the ``spkid enroll MODEL SPEAKERS_DIR``
layout) and test recordings with their true speakers. Only numpy/scipy/soundfile are used here, so the
degradations are independent of spkid's own front-end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE_HZ = 8000
MU = 255.0  # G.711 mu-law constant
ACTIVE_RANGE_DB = 30.0  # a 10 ms block within this of the region's loudest block counts as speech


@dataclass
class Corpus:
    """One condition's data: the UBM pool, ``speakers_dir/<speaker>/...``, and labelled test files."""

    name: str
    ubm_pool: list[Path]
    speakers_dir: Path
    tests: dict[Path, str]  # test recording -> true speaker
    notes: list[str] = field(default_factory=list)


def librispeech_files(root: Path, subset: str) -> dict[str, list[Path]]:
    """``{speaker: sorted FLAC paths}`` of one LibriSpeech subset (official layout)."""
    speakers: dict[str, list[Path]] = {}
    for path in sorted((root / subset).rglob("*.flac")):
        speakers.setdefault(path.name.split("-")[0], []).append(path)
    return dict(sorted(speakers.items()))


def read(path: Path) -> tuple[np.ndarray, int]:
    signal, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return signal, int(rate)


def write(path: Path, signal: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(signal, -1.0, 1.0), rate, subtype="PCM_16")
    return path


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


# ----------------------------------------------------------------------------------------- degradations
def mu_law(signal: np.ndarray) -> np.ndarray:
    """G.711-style mu-law: compress, quantise to 8 bits (255 levels), expand; float in, float out."""
    clipped = np.clip(signal.astype(np.float64), -1.0, 1.0)
    compressed = np.sign(clipped) * np.log1p(MU * np.abs(clipped)) / np.log1p(MU)
    codes = np.round(compressed * 127.0) / 127.0
    return (np.sign(codes) * np.expm1(np.abs(codes) * np.log1p(MU)) / MU).astype(np.float32)


def telephone(signal: np.ndarray, rate: int) -> np.ndarray:
    """300-3400 Hz band-pass (causal, 6th-order Butterworth, like a channel), resample to 8 kHz, mu-law."""
    sos = butter(6, TELEPHONE_BAND_HZ, btype="bandpass", fs=rate, output="sos")
    band = sosfilt(sos, signal.astype(np.float64))
    narrow = resample_poly(band, TELEPHONE_RATE_HZ, rate)
    return mu_law(narrow)


def _biquad(b: tuple[float, float, float], a: tuple[float, float, float]) -> np.ndarray:
    """One second-order section (sos row) normalised by ``a[0]``."""
    return np.array([*(np.array(b) / a[0]), 1.0, a[1] / a[0], a[2] / a[0]])


def handset(signal: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random handset or microphone response, as each call or device gives its recording.

    A low cut (2nd-order Butterworth high-pass at 80-250 Hz), a spectral tilt (high shelf at 1 kHz,
    -8..+8 dB) and two resonances (peaking filters at 400-3500 Hz, -9..+9 dB, Q 1-3), after the
    RBJ audio-EQ cookbook; the level is kept (RMS) and the rate unchanged.
    """
    sections = [butter(2, rng.uniform(80.0, 250.0), btype="highpass", fs=rate, output="sos")[0]]
    w0 = 2.0 * np.pi * 1000.0 / rate
    gain = 10.0 ** (rng.uniform(-8.0, 8.0) / 40.0)
    alpha, cos, root = np.sin(w0) / np.sqrt(2.0), np.cos(w0), np.sqrt(gain)
    sections.append(
        _biquad(
            (
                gain * ((gain + 1) + (gain - 1) * cos + 2 * root * alpha),
                -2 * gain * ((gain - 1) + (gain + 1) * cos),
                gain * ((gain + 1) + (gain - 1) * cos - 2 * root * alpha),
            ),
            (
                (gain + 1) - (gain - 1) * cos + 2 * root * alpha,
                2 * ((gain - 1) - (gain + 1) * cos),
                (gain + 1) - (gain - 1) * cos - 2 * root * alpha,
            ),
        )
    )
    for _ in range(2):
        w0 = 2.0 * np.pi * rng.uniform(400.0, 3500.0) / rate
        gain = 10.0 ** (rng.uniform(-9.0, 9.0) / 40.0)
        alpha = np.sin(w0) / (2.0 * rng.uniform(1.0, 3.0))
        sections.append(
            _biquad(
                (1 + alpha * gain, -2 * np.cos(w0), 1 - alpha * gain),
                (1 + alpha / gain, -2 * np.cos(w0), 1 - alpha / gain),
            )
        )
    coloured = sosfilt(np.array(sections), signal.astype(np.float64))
    rms_in, rms_out = np.sqrt(np.mean(np.square(signal, dtype=np.float64))), np.sqrt(np.mean(coloured**2))
    return coloured * (rms_in / max(rms_out, 1e-12))


def level(signal: np.ndarray, rng: np.random.Generator, low_db: float = -24.0) -> np.ndarray:
    """The recording at a random level between ``low_db`` and 0 dB of its own (a microphone's distance or
    gain setting): the same spectrum, only the loudness changes."""
    return signal * 10.0 ** (rng.uniform(low_db, 0.0) / 20.0)


def speech_chunk(signal: np.ndarray, rate: int, duration_s: float, start_s: float = 0.0) -> np.ndarray | None:
    """The ``duration_s`` window of ``signal[start_s:]`` with the most active 10 ms blocks (earliest on ties).

    Returns None when the region is shorter than ``duration_s``.
    """
    region = signal[int(round(start_s * rate)) :]
    block = rate // 100
    n_blocks, n_window = len(region) // block, int(round(duration_s * 100))
    if n_blocks < n_window:
        return None
    power = np.mean(np.square(region[: n_blocks * block].reshape(n_blocks, block), dtype=np.float64), axis=1)
    level_db = 10.0 * np.log10(power + 1e-12)
    active = (level_db >= level_db.max() - ACTIVE_RANGE_DB).astype(np.int64)
    counts = np.convolve(active, np.ones(n_window, dtype=np.int64), mode="valid")
    first = int(np.argmax(counts)) * block
    return region[first : first + n_window * block]


# ----------------------------------------------------------------------------------------- corpora
def clean(root: Path, out: Path, n_enroll: int = 5) -> Corpus:
    """Reference protocol: UBM on train-clean-100; first n_enroll utts of each test-other speaker enrolled."""
    pool = [path for paths in librispeech_files(root, "train-clean-100").values() for path in paths]
    speakers_dir, tests = out / "speakers", {}
    for speaker, paths in librispeech_files(root, "test-other").items():
        for path in paths[:n_enroll]:
            link(speakers_dir / speaker / path.name, path)
        tests.update({path: speaker for path in paths[n_enroll:]})
    return Corpus("clean", pool, speakers_dir, tests)


def telephone_version(reference: Corpus, out: Path, pool_step: int = 2) -> Corpus:
    """``reference`` through :func:`telephone` as 8 kHz 16-bit WAV; every ``pool_step``-th UBM pool file only.

    The smaller pool keeps the in-process UBM variants affordable on a shared 2-core machine.
    """

    def convert(path: Path, target: Path) -> Path:
        signal, rate = read(path)
        return write(target.with_suffix(".wav"), telephone(signal, rate), TELEPHONE_RATE_HZ)

    pool = [convert(path, out / "ubm" / path.name) for path in reference.ubm_pool[::pool_step]]
    for folder in sorted(reference.speakers_dir.iterdir()):
        for path in sorted(folder.iterdir()):
            convert(path, out / "speakers" / folder.name / path.name)
    tests = {convert(path, out / "test" / path.name): speaker for path, speaker in reference.tests.items()}
    note = f"UBM pool: 1 in {pool_step} clean pool files ({len(pool)} of {len(reference.ubm_pool)})"
    return Corpus("telephone", pool, out / "speakers", tests, [note])


def short_tests(reference: Corpus, out: Path, duration_s: float) -> Corpus:
    """``reference`` with every test cut to its most speech-active ``duration_s`` chunk (16 kHz WAV)."""
    tests = {}
    for path, speaker in reference.tests.items():
        signal, rate = read(path)
        chunk = speech_chunk(signal, rate, duration_s)
        if chunk is not None:
            tests[write(out / f"{path.stem}.wav", chunk, rate)] = speaker
    name = f"short-{duration_s:g}s"
    return Corpus(name, reference.ubm_pool, reference.speakers_dir, tests)


def many_speakers(
    root: Path, out: Path, enroll_fraction: float = 0.6, test_s: tuple[float, float] = (2.0, 3.0)
) -> Corpus:
    """Each train-clean-100 speaker's utterance split: first 60% enrolled, a 2-3 s chunk of the rest tested.

    The test chunk is the most active window of ``min(3 s, rest)``; speakers whose rest is under 2 s are
    skipped (counted in ``notes``). The UBM pool is test-other (100 utterances of 10 other speakers).
    """
    pool = [path for paths in librispeech_files(root, "test-other").values() for path in paths]
    speakers_dir, tests, skipped = out / "speakers", {}, 0
    for speaker, paths in librispeech_files(root, "train-clean-100").items():
        signal, rate = read(paths[0])
        split = int(round(enroll_fraction * len(signal)))
        rest_s = (len(signal) - split) / rate
        if rest_s < test_s[0]:
            skipped += 1
            continue
        chunk = speech_chunk(signal[split:], rate, min(test_s[1], np.floor(rest_s * 100) / 100))
        write(speakers_dir / speaker / "enroll.wav", signal[:split], rate)
        tests[write(out / "test" / f"{speaker}.wav", chunk, rate)] = speaker
    total = len(tests) + skipped
    notes = [f"{skipped} of {total} speakers skipped (last {1 - enroll_fraction:.0%} under {test_s[0]:g} s)"]
    return Corpus("many-speakers", pool, speakers_dir, tests, notes)


def tiny_pool(reference: Corpus, out: Path, n_files: int = 20, *, shortest: bool = False) -> Corpus:
    """``reference`` with a UBM pool of ``n_files`` utterances: evenly spread, or the shortest ones."""
    pool = list(reference.ubm_pool)
    if shortest:
        chosen = sorted(pool, key=lambda path: (sf.info(str(path)).frames, path.name))[:n_files]
    else:
        chosen = [pool[i] for i in np.linspace(0, len(pool) - 1, n_files).round().astype(int)]
    linked = [link(out / "ubm" / path.name, path) for path in chosen]
    seconds = sum(sf.info(str(path)).duration for path in chosen)
    name = f"tiny-{'shortest' if shortest else 'spread'}-{n_files}"
    return Corpus(
        name, linked, reference.speakers_dir, reference.tests, [f"UBM pool {seconds:.0f} s of audio"]
    )
