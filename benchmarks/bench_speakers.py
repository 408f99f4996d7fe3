"""One ``spkid identify`` call against 1,000 / 10,000 / 100,000 enrolled speakers: wall time and peak memory.

The store is built through the public API (``ModelStore.create`` with a 512 x 60 UBM, speakers written as
MAP statistics with ``ModelStore.bank_batch`` + ``save_speaker_stats``, so the bank is written once at the
end, as ``spkid enroll`` does). Each measurement is one fresh ``spkid identify MODEL test.wav`` process
(a 10-s synthetic recording), timed from spawn to exit; its peak resident memory (anonymous plus the
file-backed pages it maps) is its ``VmHWM``, read as it exits. Also printed: the fixed start-up of the
process (``spkid identify --timings`` splits it), the start of numba's compiled-code runtime the scoring
kernels share (``kernels_s``, once per process), the scoring time alone, the disk per speaker, and the peer:
the per-file loading identify used before the bank (the same CLI with the bank path switched off, which
opens one file per speaker), at 1,000 and 10,000 speakers only, with the ratio.

Targets (issue #16): <= 1.5 s and <= 2 GB at 10,000 speakers; <= 5 s (bank in the page cache) and <= 4 GB at
100,000; <= 0.25 MB of disk per mean-only speaker, bank included.

The models are those the defaults make of a wideband pool (``features.bands: auto``): a main model and a
wideband companion of ``ubm.wideband_components`` Gaussians, every speaker in both; the test is wideband, so
the companion scores it, and the disk per speaker counts both copies. ``--single``: one model
(``features.bands: single``). Each model holds a cohort of 100 impostor models and segments of 300 frames
and scores with adaptive S-norm (``score.normalization: asnorm``, the default), every speaker stored with
its side of it (random numbers: their values do not change the work of a call); ``--raw``: no cohort, raw
scores (``score.normalization: none``).

Usage: ``python benchmarks/bench_speakers.py [--speakers 1000 10000] [--root /work/bench-speakers] [--keep]
[--reuse] [--single] [--raw]`` (``--keep`` leaves the stores; ``--reuse`` times stores a previous ``--keep``
run left instead of building them again, and builds only the companion when a main model is there without
one: the 100,000-speaker main store takes ~8 minutes to build).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from spkid.corpora.synthetic import make_speakers
from spkid.gmm import MixtureParameters, SufficientStats
from spkid.recognizer import load_config
from spkid.recognizer.bands import COMPANION_DIR
from spkid.score import Cohort
from spkid.store import ModelStore, SpeakerCohortStats

N_COMPONENTS, N_FEATURES = 512, 60
# The CLI in a fresh process; with SPKID_BENCH_PER_FILE=1 identify takes the per-file path (the peer).
CLI = """
import atexit, os, sys
def peak():  # VmHWM: this process's peak resident set (anonymous + file-backed), reset at exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("peak_kb: " + line.split()[1] + "\\n")
atexit.register(peak)
if os.environ.get("SPKID_BENCH_PER_FILE") == "1":
    import spkid.recognizer.bank_search as bank_search
    bank_search.bank_usable = lambda recognizer: False
from spkid.cli import app
sys.argv[0] = "spkid"
app()
"""


def build_store(
    model: Path, n_speakers: int, *, bands: bool = True, main: bool = True, normalise: bool = True
) -> float:
    """A model of ``n_speakers`` random speakers; returns the seconds it took. With ``bands`` the model has
    a wideband companion too (``features.bands: auto``), every speaker enrolled in both; without ``main``
    only the companion is built (into an existing main model); with ``normalise`` a cohort and adaptive
    S-norm, else raw scores."""
    started = time.perf_counter()
    scoring = [] if normalise else ["score.normalization=none"]
    if main:
        _random_store(
            model, n_speakers, [*scoring, *([] if bands else ["features.bands=single"])], N_COMPONENTS
        )
    if bands:
        defaults = load_config(None, ["features.sample_rate=16000"])
        single = [*scoring, "features.bands=single"]  # a companion has one front-end
        _random_store(model / COMPANION_DIR, n_speakers, single, defaults.ubm.wideband_components)
    return time.perf_counter() - started


def _random_cohort(ubm: MixtureParameters, size: int, rng: np.random.Generator) -> Cohort:
    """``size`` impostor models near ``ubm`` and as many random test segments of 300 frames."""
    n_components, n_features = ubm.means_.shape
    segments = [rng.normal(0, 1, (300, n_features)).astype(np.float32) for _ in range(size)]
    models = [
        MixtureParameters(
            ubm.weights_, ubm.means_ + rng.normal(0, 0.3, (n_components, n_features)), ubm.variances_
        )
        for _ in range(size)
    ]
    return Cohort(segments=segments, models=models)


def _random_store(model: Path, n_speakers: int, settings: list[str], n_components: int) -> None:
    """A model of ``n_speakers`` random speakers under an ``n_components`` x 60 UBM (no pool statistics to
    store: utterance CMVN)."""
    rng = np.random.default_rng(0)
    config = load_config(None, ["features.cmvn=utterance", "features.sample_rate=16000", *settings])
    ubm = MixtureParameters(
        rng.dirichlet(np.full(n_components, 20.0)),
        rng.normal(0, 1, (n_components, N_FEATURES)),
        rng.uniform(0.5, 1.5, (n_components, N_FEATURES)),
    )
    store = ModelStore.create(
        model,
        feature_config=config.features.to_dict(),
        ubm_config=config.ubm.to_dict(),
        enroll_config=config.enroll.to_dict(),
        score_config=config.score.to_dict(),
        ubm=ubm,
        overwrite=True,
    )
    score = config.score
    normalised, summary = score.normalization != "none", None
    if normalised:
        store.save_cohort(_random_cohort(ubm, score.cohort_size, rng).to_arrays(ubm))
    names = [f"speaker{index:06d}" for index in range(n_speakers)]
    with store.bank_batch(names):
        for name in names:
            zeroth = rng.gamma(2.0, 2.0, n_components)
            first = zeroth[:, None] * (ubm.means_ + rng.normal(0, 0.3, ubm.means_.shape))
            if normalised:  # the speaker's side of adaptive S-norm, as enrollment stores it
                mean, std = rng.normal(-0.5, 0.2), rng.uniform(0.2, 0.4)
                summary = SpeakerCohortStats(mean, std, top_c=score.top_c, top_k=score.asnorm_top_k)
            stats = SufficientStats(zeroth, first, np.zeros_like(first), 0.0, 1000)
            store.save_speaker_stats(name, stats, cohort_stats=summary)


def run_identify(model: Path, wav: Path, *, per_file: bool, timings: bool = False) -> dict:
    """One fresh ``spkid identify`` process: wall seconds, peak RSS in MB, and its stderr."""
    env = {**os.environ, "SPKID_BENCH_PER_FILE": "1" if per_file else "0"}
    args = [sys.executable, "-c", CLI, "identify", str(model), str(wav), "-k", "3"]
    if timings:
        args.append("--timings")
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = (stream.decode() for stream in process.communicate())
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"identify failed: {stderr}")
    peak_kb = int(stderr.rsplit("peak_kb: ", 1)[1].split()[0])
    stderr = stderr.rsplit("peak_kb: ", 1)[0]
    return {"wall_s": wall, "peak_mb": peak_kb / 1024, "stdout": stdout, "stderr": stderr}


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--root", type=Path, default=Path("/work/bench-speakers"))
    parser.add_argument("--keep", action="store_true", help="Keep the stores afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Time the stores a --keep run left, if any.")
    parser.add_argument(
        "--single",
        action="store_true",
        help="Models of one front-end (features.bands: single) instead of the defaults' main model and "
        "wideband companion.",
    )
    parser.add_argument("--raw", action="store_true", help="Models without a cohort: raw scores.")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    # Time an installed spkid: pip writes the bytecode at install; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module of every process from source instead.
    import spkid

    compileall.compile_dir(Path(spkid.__file__).parent, quiet=1)
    make_speakers(args.root / "audio", n_speakers=1, n_utterances=1, duration_s=10.0, seed=3)
    wav = next((args.root / "audio").rglob("*.wav"))
    rows = []
    for n_speakers in args.speakers:
        model = (
            args.root / f"model_{n_speakers}{'_single' if args.single else ''}{'_raw' if args.raw else ''}"
        )
        reused = args.reuse and (model / "bank").is_dir()
        bands = not args.single
        if reused and bands and not (model / COMPANION_DIR / "bank").is_dir():
            # the companion beside a kept main model
            build_s = build_store(model, n_speakers, main=False, normalise=not args.raw)
        else:
            build_s = None if reused else build_store(model, n_speakers, bands=bands, normalise=not args.raw)
        size = disk_mb(model)
        run_identify(model, wav, per_file=False)  # the bank into the page cache
        bank = min((run_identify(model, wav, per_file=False) for _ in range(3)), key=lambda r: r["wall_s"])
        timed = run_identify(model, wav, per_file=False, timings=True)
        timing_line = next(line for line in timed["stderr"].splitlines() if line.startswith("timings: "))
        split = json.loads(timing_line.split("timings: ", 1)[1])
        row = {
            "speakers": n_speakers,
            "build_s": None if build_s is None else round(build_s, 1),
            "disk_mb_per_speaker": round(size / n_speakers, 3),
            "bank_wall_s": round(bank["wall_s"], 2),
            "bank_peak_mb": round(bank["peak_mb"]),
            **{key: round(value, 3) for key, value in split.items()},
        }
        if n_speakers <= 10000:
            run_identify(model, wav, per_file=True)  # the speaker files into the page cache
            peer = run_identify(model, wav, per_file=True)
            assert peer["stdout"].split()[:2] == bank["stdout"].split()[:2], (peer["stdout"], bank["stdout"])
            row.update(
                peer_wall_s=round(peer["wall_s"], 2),
                peer_peak_mb=round(peer["peak_mb"]),
                speedup=round(peer["wall_s"] / bank["wall_s"], 1),
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(model)
    print(
        "\nspeakers  wall s  peak MB  start-up s  kernels s  scoring s  MB/speaker  per-file wall s"
        "  per-file MB  ratio"
    )
    for row in rows:
        print(
            f"{row['speakers']:>8}  {row['bank_wall_s']:>6}  {row['bank_peak_mb']:>7}  "
            f"{row['startup_s']:>10}  {row['kernels_s']:>9}  "
            f"{row['scoring_s']:>9}  {row['disk_mb_per_speaker']:>10}  {row.get('peer_wall_s', '-'):>15}  "
            f"{row.get('peer_peak_mb', '-'):>11}  {row.get('speedup', '-'):>5}"
        )


if __name__ == "__main__":
    main()
