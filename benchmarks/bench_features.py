"""Feature-extraction throughput: spkid's front-end against the equivalent librosa pipeline, same run.

Audio seconds processed per wall-clock second on LibriSpeech train-clean-100 (../shared/data), for
  * librosa, one process: librosa.load + librosa.feature.mfcc + librosa.feature.delta x2 + CMVN;
  * spkid, one process:  decode + MFCC + Δ + ΔΔ + energy VAD + CMVN (spkid.features.extract);
  * spkid, two processes against one (spkid.features.extract_many, n_jobs=2 vs n_jobs=1).
Same settings everywhere (16 kHz, 25/10 ms, 512-point FFT, Hann, 40 mels 20-7600 Hz, 20 cepstra, lifter 22,
±2-frame deltas, utterance CMVN); one BLAS/FFT thread per process so the code is compared, not thread pools.

The machine is shared, so the peers are interleaved to see the same load: librosa and spkid alternate
file by file (their CPU time is printed too, which other jobs disturb less), and the n_jobs=1 and n_jobs=2
runs alternate, --repeats times each (the best run of each counts).

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


def librosa_features(path: Path) -> np.ndarray:
    """The librosa equivalent of spkid's front-end (librosa has no VAD)."""
    import librosa

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
    deltas = librosa.feature.delta(cepstra, width=5)
    delta_deltas = librosa.feature.delta(cepstra, width=5, order=2)
    stacked = np.vstack([cepstra, deltas, delta_deltas]).T
    return (stacked - stacked.mean(axis=0)) / np.maximum(stacked.std(axis=0), 1e-5)


def spkid_features(path: Path) -> np.ndarray:
    from spkid.features import extract

    return extract(path)


def timed(function, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def single_process(paths: list[Path], repeats: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeats`` wall and CPU totals of each pipeline, the two alternating file by file."""
    peers = {"librosa": librosa_features, "spkid": spkid_features}
    best = {name: {"wall": float("inf"), "cpu": float("inf")} for name in peers}
    with threadpool_limits(limits=1):
        for repeat in range(repeats):
            totals = {name: {"wall": 0.0, "cpu": 0.0} for name in peers}
            for index, path in enumerate(paths):
                order = list(peers) if (index + repeat) % 2 == 0 else list(peers)[::-1]
                for name in order:
                    wall, cpu = timed(peers[name], path)
                    totals[name]["wall"] += wall
                    totals[name]["cpu"] += cpu
            for name in peers:
                for kind in ("wall", "cpu"):
                    best[name][kind] = min(best[name][kind], totals[name][kind])
    return best


def two_jobs_vs_one(paths: list[Path], repeats: int) -> dict[int, float]:
    """Best-of-``repeats`` wall seconds of extract_many over all files with n_jobs=1 and n_jobs=2."""
    from spkid.features import extract_many

    best = {1: float("inf"), 2: float("inf")}
    for repeat in range(repeats):
        for n_jobs in (1, 2) if repeat % 2 == 0 else (2, 1):
            best[n_jobs] = min(best[n_jobs], timed(lambda jobs: extract_many(paths, n_jobs=jobs), n_jobs)[0])
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (best counts)")
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
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")

    # Warm-up: imports, cached filterbanks, and the two loky workers (reused across calls).
    from spkid.features import extract_many

    with threadpool_limits(limits=1):
        for path in paths[:2]:
            librosa_features(path)
            spkid_features(path)
    extract_many(paths[:8], n_jobs=2)

    single = single_process(paths, args.repeats)
    parallel = two_jobs_vs_one(paths, args.repeats)
    print(f"load average after the run: {os.getloadavg()[0]:.2f} (other jobs on the machine add noise)")

    for name, best in single.items():
        print(
            f"{name + ', 1 process':22s} {audio_s / best['wall']:7.1f} audio s / wall s"
            f"   ({audio_s / best['cpu']:7.1f} audio s / CPU s)"
        )
    for n_jobs, seconds in parallel.items():
        print(f"{f'spkid, n_jobs={n_jobs}':22s} {audio_s / seconds:7.1f} audio s / wall s   (extract_many)")

    verdict = {True: "meets", False: "BELOW"}
    wall_ratio = single["librosa"]["wall"] / single["spkid"]["wall"]
    cpu_ratio = single["librosa"]["cpu"] / single["spkid"]["cpu"]
    jobs_ratio = parallel[1] / parallel[2]
    met = verdict[wall_ratio >= TARGET_VS_LIBROSA]
    print(
        f"ratio spkid / librosa, 1 process:      {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU  "
        f"({met} target {TARGET_VS_LIBROSA}x)"
    )
    met = verdict[jobs_ratio >= TARGET_TWO_JOBS]
    print(f"ratio spkid n_jobs=2 / n_jobs=1:       {jobs_ratio:.2f}x wall  ({met} target {TARGET_TWO_JOBS}x)")
    # The same against the plain single-process loop of extract() measured above (another moment of the
    # run, so the machine's load may differ between the two).
    print(f"ratio spkid n_jobs=2 / 1-process loop: {single['spkid']['wall'] / parallel[2]:.2f}x wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
