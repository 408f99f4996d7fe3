"""Out-of-core UBM training: time and peak memory as the pool grows, and time as worker processes are added.

Features are synthetic 60-dimensional float32 frames (a random 64-component mixture, utterances of 2-15 s at
100 frames/s) written once to a spkid feature store under --data-dir. Every measurement runs in a fresh
Python process, so peak memories do not mix; peak RSS is sampled with psutil over the process and its
children every 10 ms (the kernel's own peak, ru_maxrss, is printed beside it).

1. Frames: the steps of train_ubm (local backend, this process, one thread) on 0.3 M, 1 M and 3 M frames read
   memory-mapped from the store, against the named peer "in-memory": the same training after np.load-ing
   every utterance. Targets: time linear in frames (the EM iterations' times at 0.3 M, 1 M and 3 M frames
   lie within 20% of one straight line, fixed cost + slope x frames; the initialisation works on a subsample
   of bounded size, so it is a fixed cost, timed apart), peak RSS flat (within 20%) from 0.3 M to 3 M.
   One thread, and CPU seconds beside wall seconds, so that other jobs on the machine blur the figures less.
2. Workers: the EM iterations (after initialisation, workers started and warmed up) on --workers-frames
   frames with joblib and dask, 1 and 2 worker processes of one thread each (NUMBA_NUM_THREADS=1, BLAS
   limited to 1), against the named peer "local-1": in-process with one thread. Target: >= 1.7x from 1 to 2
   worker processes in wall time. That needs two idle cores: other jobs on the machine lower it (the load
   average is printed). The CPU seconds of each worker are printed too: "core/worker" is the speed-up the
   same split of work gives when each worker has a core (1-worker CPU / busiest of the 2 workers).

    python benchmarks/bench_scale.py [--frames 300000 1000000 3000000] [--components 128] [--iterations 3]
        [--workers-frames 1000000] [--workers-components 256] [--repeats 3] [--worker-repeats 5]
        [--data-dir DIR]
        [--skip-frames] [--skip-workers]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

N_FEATURES = 60
TARGET_LINEAR = 0.20
TARGET_FLAT = 0.20
TARGET_SPEEDUP = 1.7
SINGLE_THREAD_ENV = {
    name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}


# ------------------------------------------------------------------------------------------------ data
def make_store(root: Path, n_frames: int) -> str:
    """Write ``n_frames`` synthetic frames as utterances into the store at ``root`` (once); the index name."""
    from spkid.features import FeatureStore

    store, name = FeatureStore(root), f"synthetic-{n_frames}"
    try:
        if store.load(name).n_frames == n_frames:
            return name
    except Exception:  # noqa: BLE001 - absent or damaged: write it again
        pass
    mixture = np.random.default_rng(0)
    centres = mixture.normal(scale=2.0, size=(64, N_FEATURES)).astype(np.float32)
    scales = mixture.uniform(0.5, 1.5, size=(64, N_FEATURES)).astype(np.float32)

    def utterances():
        rng, left, index = np.random.default_rng(n_frames), n_frames, 0
        while left:
            length = min(left, int(rng.integers(200, 1500)))
            labels = rng.integers(0, 64, length)
            noise = rng.standard_normal((length, N_FEATURES), dtype=np.float32)
            yield f"utt{index:06d}", centres[labels] + scales[labels] * noise
            left, index = left - length, index + 1

    started = time.perf_counter()
    store.write(name, utterances())
    print(f"  wrote {n_frames} frames to {root} in {time.perf_counter() - started:.1f} s", flush=True)
    return name


# ------------------------------------------------------------------------------------------------ children
class PeakRSS:
    """Samples the RSS of this process and its children every 10 ms in a background thread."""

    def __init__(self) -> None:
        import psutil

        self.process, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        children: list = []
        for tick in itertools.count():
            if self._stop.is_set():
                break
            if tick % 50 == 0:  # listing processes is the costly part: refresh the list every 0.5 s
                children = self.process.children(recursive=True)
            total = 0
            for process in [self.process, *children]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def child_frames(args: argparse.Namespace) -> dict:
    """Train on one store index, out of core or in memory; time (initialisation and EM apart) and peak memory.

    The steps are those of ``train_ubm`` with the local backend (spkid.ubm.train.train_sharded), run one by
    one so the bounded-size initialisation can be timed apart from the EM iterations.
    """
    from spkid.features import FeatureStore
    from spkid.ubm import UBMConfig
    from spkid.ubm.backends import initial_model, open_backend
    from spkid.ubm.shards import frame_sources, make_shards
    from spkid.ubm.train import sharded_em

    config = UBMConfig(n_components=args.components, max_iter=args.iterations, tol=0.0)
    with PeakRSS() as peak:
        baseline = peak.process.memory_info().rss
        started, cpu = time.perf_counter(), time.process_time()
        stored = FeatureStore(args.data_dir).load(args.name)
        features = stored if args.mode == "store" else [np.load(item.path) for item in stored.files]
        loaded = time.perf_counter()
        with open_backend(config.backend, n_jobs=config.n_jobs) as backend:
            sources, _ = frame_sources(features)
            shards = make_shards(sources)
            start = initial_model(sources, args.components, config)
            initialised, init_cpu = time.perf_counter(), time.process_time()
            model = sharded_em(start, shards, backend, config)
        finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "cpu_s": time.process_time() - cpu,
        "load_s": loaded - started,
        "init_s": initialised - loaded,
        "em_s": finished - initialised,
        "em_cpu_s": time.process_time() - init_cpu,
        "n_frames": stored.n_frames,
        "peak_rss": peak.peak,
        "baseline_rss": baseline,
        "n_iter": model.n_iter_,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def child_workers(args: argparse.Namespace) -> dict:
    """Time the EM iterations of one backend, after initialisation and a warm-up task on every worker."""
    from spkid.features import FeatureStore
    from spkid.ubm import UBMConfig
    from spkid.ubm.backends import initial_model, open_backend
    from spkid.ubm.shards import ModelParams, ShardTask, frame_sources, make_shards
    from spkid.ubm.train import sharded_em

    config = UBMConfig(
        n_components=args.components,
        max_iter=args.iterations,
        tol=0.0,
        backend=args.backend,
        n_jobs=args.workers,
    )
    sources, _ = frame_sources(FeatureStore(args.data_dir).load(args.name))
    shards = make_shards(sources)
    model = initial_model(sources, args.components, config)
    with open_backend(config.backend, n_jobs=config.n_jobs) as backend:
        # Warm-up: worker processes started, spkid imported, kernels loaded before the clock starts.
        backend.map(
            [ShardTask(shard, n_threads=1) for shard in shards[: 2 * args.workers]], ModelParams(model)
        )
        before, started = cpu_seconds(), time.perf_counter()
        sharded_em(model, shards, backend, config)
        seconds, after = time.perf_counter() - started, cpu_seconds()
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    driver = used.pop(os.getpid())
    busiest = max(used.values(), default=0.0)
    # Worker processes; nannies, resource trackers and the like use next to no CPU.
    workers = sorted((value for value in used.values() if value > 0.1 * busiest), reverse=True)
    return {
        "seconds": seconds,
        "driver_cpu_s": driver,
        "worker_cpu_s": workers or [driver],
        "n_shards": len(shards),
    }


def cpu_seconds() -> dict[int, float]:
    """User + system CPU seconds of this process and of each of its descendants, by process id."""
    import psutil

    me, seconds = psutil.Process(), {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
        except psutil.Error:
            pass
    return seconds


def best_of(repeats: int, *arguments: str) -> dict:
    """The fastest of ``repeats`` runs of a child, each in a fresh single-threaded Python process."""
    runs = []
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, __file__, "--child", *arguments],
            env={**os.environ, **SINGLE_THREAD_ENV},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return min(runs, key=lambda run: run["seconds"])


# ------------------------------------------------------------------------------------------------ parent
def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:8.0f}"


def bench_frames(args: argparse.Namespace) -> None:
    print(
        f"\n1. Frames: K={args.components}, {args.iterations} EM iterations, local backend, one thread, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows = {}
    for n_frames in args.frames:
        name = make_store(args.data_dir, n_frames)
        for mode in ("store", "memory"):
            rows[n_frames, mode] = best_of(
                args.repeats, "frames", "--name", name, "--mode", mode, *common(args, args.components)
            )
            print(
                f"  {n_frames} {mode}: {rows[n_frames, mode]['seconds']:.1f} s "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    print(
        f"{'frames':>9} {'mode':>10} {'wall s':>7} {'CPU s':>7} {'init s':>7} {'EM s':>7} "
        f"{'peak RSS MiB':>13} {'ru_maxrss MiB':>14} {'start MiB':>10}"
    )
    for (n_frames, mode), row in rows.items():
        label = "in-memory" if mode == "memory" else "store"
        print(
            f"{n_frames:9d} {label:>10} {row['seconds']:7.1f} {row['cpu_s']:7.1f} {row['init_s']:7.1f} "
            f"{row['em_s']:7.1f} "
            f"{mib(row['peak_rss']):>13} {mib(row['maxrss']):>14} {mib(row['baseline_rss']):>10}"
        )
    small, large = min(args.frames), max(args.frames)
    for mode, label in (("store", "store (out of core)"), ("memory", "in-memory peer")):
        growth = rows[large, mode]["peak_rss"] / rows[small, mode]["peak_rss"]
        print(f"peak RSS {large / 1e6:g} M / {small / 1e6:g} M frames, {label}: {growth:.2f}x")
    # Linearity: the EM iterations are the part that grows with the pool (initialisation uses a subsample of
    # bounded size, by design). Linear means time = fixed + slope * frames: a least-squares line through
    # the EM times must pass within 20% of every point (a super-linear cost would bend away from it).
    print("store (out of core), EM iterations:")
    sizes = np.array(sorted(args.frames), dtype=float)
    for key, clock in (("em_s", "wall"), ("em_cpu_s", "CPU")):
        times = np.array([rows[int(n), "store"][key] for n in sizes])
        slope, fixed = np.polyfit(sizes / 1e6, times, 1)
        residual = float(np.max(np.abs(fixed + slope * sizes / 1e6 - times) / times))
        rates = ", ".join(
            f"{n / 1e6:g} M: {t / (n / 1e6) / args.iterations:.2f} s"
            for n, t in zip(sizes, times, strict=True)
        )
        print(
            f"  EM {clock:4s}: {slope / args.iterations:.2f} s per million frames and iteration, "
            f"{fixed:+.2f} s fixed; largest distance from that line {residual:.0%} (target within "
            f"{TARGET_LINEAR:.0%}: {'met' if residual <= TARGET_LINEAR else 'NOT met'})"
        )
        print(f"           per million frames and iteration at each size: {rates}")
    init = ", ".join(f"{n / 1e6:g} M: {rows[n, 'store']['init_s']:.1f} s" for n in sorted(args.frames))
    print(f"  initialisation (bounded subsample, a fixed cost): {init}")
    # The whole run as well: the time of the extra frames per extra frame (the fixed cost cancels).
    middle = sorted(args.frames)[len(args.frames) // 2]
    slopes = [
        (rows[b, "store"]["seconds"] - rows[a, "store"]["seconds"]) / (b - a) * 1e6
        for a, b in ((small, middle), (middle, large))
        if b > a
    ]
    print(
        "  whole run, wall time per extra million frames: " + ", ".join(f"{slope:.2f} s" for slope in slopes)
    )
    flat = rows[large, "store"]["peak_rss"] / rows[small, "store"]["peak_rss"] - 1
    print(
        f"target: peak RSS flat within {TARGET_FLAT:.0%} -> {'met' if flat <= TARGET_FLAT else 'NOT met'} "
        f"({flat:+.0%}); store vs in-memory peak at {large / 1e6:g} M: "
        f"{rows[large, 'memory']['peak_rss'] / rows[large, 'store']['peak_rss']:.2f}x less memory"
    )


def bench_workers(args: argparse.Namespace) -> None:
    name = make_store(args.data_dir, args.workers_frames)
    print(
        f"\n2. Workers: {args.workers_frames} frames, K={args.workers_components}, {args.iterations} EM "
        f"iterations, one thread per worker, load average {os.getloadavg()[0]:.1f}"
    )
    runs = [("local", 1), ("joblib", 1), ("joblib", 2), ("dask", 1), ("dask", 2)]
    results = {}
    for backend, workers in runs:
        results[backend, workers] = best_of(
            args.worker_repeats,
            "workers",
            "--name",
            name,
            "--backend",
            backend,
            "--workers",
            str(workers),
            *common(args, args.workers_components),
        )
        print(
            f"  {backend}-{workers}: {results[backend, workers]['seconds']:.1f} s "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    peer = results["local", 1]["seconds"]
    print(
        f"{'backend':>10} {'workers':>8} {'EM wall s':>10} {'vs local-1':>11} {'vs 1 worker':>12} "
        f"{'worker CPU s':>16} {'core/worker':>12}"
    )
    for (backend, workers), row in results.items():
        one = results[backend, 1]
        cpu = "+".join(f"{value:.1f}" for value in row["worker_cpu_s"])
        print(
            f"{backend:>10} {workers:8d} {row['seconds']:10.1f} {peer / row['seconds']:10.2f}x "
            f"{one['seconds'] / row['seconds']:11.2f}x {cpu:>16} "
            f"{sum(one['worker_cpu_s']) / max(row['worker_cpu_s']):11.2f}x"
        )
    for backend in ("joblib", "dask"):
        speedup = results[backend, 1]["seconds"] / results[backend, 2]["seconds"]
        print(
            f"target: {backend} 2 vs 1 worker >= {TARGET_SPEEDUP}x (wall) -> {speedup:.2f}x "
            f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'} (load average {os.getloadavg()[0]:.1f})"
        )


def common(args: argparse.Namespace, components: int) -> list[str]:
    return [
        "--data-dir",
        str(args.data_dir),
        "--components",
        str(components),
        "--iterations",
        str(args.iterations),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[300_000, 1_000_000, 3_000_000])
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--workers-frames", type=int, default=1_000_000)
    parser.add_argument("--workers-components", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="runs per pool size; the fastest is kept")
    parser.add_argument(
        "--worker-repeats",
        type=int,
        default=5,
        help="runs per backend and worker count (short runs); the fastest is kept",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/spkid-bench-scale"))
    parser.add_argument("--skip-frames", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--child", choices=["frames", "workers"])
    parser.add_argument("--name")
    parser.add_argument("--mode", choices=["store", "memory"], default="store")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        print(json.dumps((child_frames if args.child == "frames" else child_workers)(args)))
        return
    print(f"bench_scale: {os.cpu_count()} cores, load average {os.getloadavg()}")
    if not args.skip_frames:
        bench_frames(args)
    if not args.skip_workers:
        bench_workers(args)


if __name__ == "__main__":
    main()
