"""Feature-extraction throughput: spkid's front-end against the equivalent librosa pipeline, same run.

Audio seconds processed per wall-clock second on LibriSpeech train-clean-100 (../shared/data), for
  * librosa, one process: librosa.load + librosa.feature.mfcc + librosa.feature.delta x2 + CMVN;
  * spkid, one process:  decode + MFCC + Δ + ΔΔ + energy VAD + CMVN (extract_many, n_jobs=1);
  * spkid, two processes (extract_many, n_jobs=2).
Same settings everywhere (16 kHz, 25/10 ms, 512-point FFT, Hann, 40 mels 20-7600 Hz, 20 cepstra, lifter 22,
±2-frame deltas); one BLAS/FFT thread per process so the comparison is of the code, not of the thread pools.
Each configuration runs --repeats times, interleaved, and the best time counts (others' jobs add noise).

    python benchmarks/bench_features.py [--limit N] [--repeats R]

Targets: spkid >= 1.5x librosa single-process; spkid n_jobs=2 >= 1.7x spkid single-process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CORPUS = SHARED_DATA / "LibriSpeech" / "train-clean-100"
TARGET_VS_LIBROSA = 1.5
TARGET_TWO_JOBS = 1.7


def librosa_pipeline(paths: list[Path]) -> int:
    """The librosa equivalent of spkid's front-end (without VAD, which librosa lacks); returns frames."""
    import librosa

    n_frames = 0
    for path in paths:
        signal, rate = librosa.load(path, sr=16000)
        cepstra = librosa.feature.mfcc(
            y=signal,
            sr=rate,
            n_mfcc=20,
            n_fft=512,
            hop_length=160,
            win_length=400,
            window="hann",
            n_mels=40,
            fmin=20.0,
            fmax=7600.0,
            lifter=22,
        )
        stacked = np.vstack(
            [
                cepstra,
                librosa.feature.delta(cepstra, width=5),
                librosa.feature.delta(cepstra, width=5, order=2),
            ]
        ).T
        normalised = (stacked - stacked.mean(axis=0)) / np.maximum(stacked.std(axis=0), 1e-5)
        n_frames += normalised.shape[0]
    return n_frames


def spkid_pipeline(paths: list[Path], n_jobs: int) -> int:
    from spkid.features import extract_many

    return sum(features.shape[0] for features in extract_many(paths, n_jobs=n_jobs))


def elapsed_s(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (best counts)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"bench_features: {CORPUS} not found; nothing to measure (see data/README.md)")
        return 0
    paths = sorted(CORPUS.rglob("*.flac"))[: args.limit]
    if not paths:
        print(f"bench_features: no .flac files under {CORPUS}; nothing to measure")
        return 0
    audio_s = sum(soundfile.info(str(path)).duration for path in paths)
    print(f"corpus: {len(paths)} files, {audio_s / 60:.1f} min of audio ({CORPUS})")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other jobs add noise)")

    # Warm up: imports, cached filterbanks, and the two loky workers (reused across calls).
    with threadpool_limits(limits=1):
        librosa_pipeline(paths[:2])
        spkid_pipeline(paths[:2], 1)
    spkid_pipeline(paths[:8], 2)

    timings: dict[str, list[float]] = {"librosa": [], "spkid": [], "spkid_2jobs": []}
    for _ in range(args.repeats):
        with threadpool_limits(limits=1):
            timings["librosa"].append(elapsed_s(librosa_pipeline, paths))
            timings["spkid"].append(elapsed_s(spkid_pipeline, paths, 1))
        timings["spkid_2jobs"].append(elapsed_s(spkid_pipeline, paths, 2))

    rates = {name: audio_s / min(times) for name, times in timings.items()}
    for name, times in timings.items():
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:12s} {rates[name]:8.1f} audio s / wall s   (runs: {runs} s)")
    vs_librosa = rates["spkid"] / rates["librosa"]
    two_jobs = rates["spkid_2jobs"] / rates["spkid"]
    verdict = {True: "meets", False: "BELOW"}
    met = verdict[vs_librosa >= TARGET_VS_LIBROSA]
    print(f"ratio spkid / librosa (1 process):      {vs_librosa:.2f}x  ({met} target {TARGET_VS_LIBROSA}x)")
    met = verdict[two_jobs >= TARGET_TWO_JOBS]
    print(f"ratio spkid n_jobs=2 / spkid n_jobs=1:  {two_jobs:.2f}x  ({met} target {TARGET_TWO_JOBS}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
