"""EM speed: spkid's DiagonalGMM against scikit-learn's GaussianMixture(covariance_type="diag"), same run.

Frames: LibriSpeech train-clean-100 (../shared/data) through spkid.features.extract_many (60 dims; ~235k
frames after VAD), or 314k random float32 frames with --synthetic (or when the corpus is absent). For each K:
  * spkid: seconds per EM iteration (accumulate + apply_stats, float32), best of --repeats, with n_jobs=1
    (multi-threaded BLAS, chunks one after another) and n_jobs=-1 (one chunk stream per core, one BLAS
    thread each);
  * floor: the two bare float32 products of an iteration, design @ (2D+1, K) and responsibilities.T @ design,
    over the same chunks, run the faster of those two ways — what an E-step cannot go below;
  * scikit-learn: fit(max_iter=2) minus fit(max_iter=1) from the same initial parameters, on the same
    float32 frames (it computes in the input dtype);
  * initialisation: DiagonalGMM(max_iter=0).fit for init="kmeans++" and init="split", in EM iterations.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_em.py [--components 64 256 512 1024]
        [--sklearn-max-components 1024] [--repeats 3] [--sklearn-repeats 2] [--synthetic] [--cache-dir DIR]
        [--threads N] [--clock wall|cpu] [--busy [N]]

``--busy [N]`` (N defaults to the CPU count) instead times one EM iteration of spkid (its E-step with
``n_jobs=1`` and ``n_jobs=-1``) and of scikit-learn (``_e_step`` + ``_m_step``) idle and beside N CPU-bound
processes (``while True: pass``), alternating idle and busy rounds (medians of at least 3), and prints each
library's slowdown (busy / idle), spkid's slowdown over scikit-learn's, and the CPUs each got (process CPU
seconds per wall second). Target: the slowdown of spkid's default (``ubm.n_jobs``) within 10% of
scikit-learn's. A fair scheduler shares contended CPUs per runnable thread: where other jobs leave about
one CPU, a one-thread process beside N busy ones keeps 1/(N+1) of it and a T-thread one T/(N+T), so
n_jobs=1 slows more than a multi-threaded peer for want of CPU time, not of speed (its CPU seconds per
iteration do not change; the CPUs columns show it).

(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if the environment sets them, slow every product; the BLAS kernel in
use is printed.) Targets at K=512: spkid >= 30x faster than scikit-learn per iteration, <= 1.5x the floor,
initialisation < 3 EM iterations. Other jobs on the machine add noise: compare ratios from one run. On a
busy machine, wall-clock times of multi-threaded code mostly measure the scheduler;
``--threads 1 --clock cpu`` compares the work done (process CPU time, one thread everywhere) instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CORPUS = SHARED_DATA / "LibriSpeech" / "train-clean-100"
TARGET_VS_SKLEARN = 30.0
TARGET_VS_FLOOR = 1.5
TARGET_INIT_ITERATIONS = 3.0
TARGET_BUSY_RATIO = 1.10


def load_frames(synthetic: bool, cache_dir: str | None) -> tuple[list[np.ndarray], str]:
    if not synthetic and CORPUS.is_dir():
        from spkid.audio import find_audio_files
        from spkid.features import extract_many

        started = time.perf_counter()
        arrays = list(extract_many(find_audio_files([CORPUS]), n_jobs=-1, cache_dir=cache_dir))
        source = f"{CORPUS} ({len(arrays)} files, features in {time.perf_counter() - started:.1f} s)"
        return arrays, source
    rng = np.random.default_rng(0)
    return [rng.standard_normal((314_000, 60), dtype=np.float32)], "random float32 (314000 x 60)"


def initial_parameters(frames: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform weights, means at random frames, the global variance everywhere (same for both libraries)."""
    rng = np.random.default_rng(n_components)
    means = frames[rng.choice(frames.shape[0], n_components, replace=False)].astype(np.float64)
    return np.full(n_components, 1.0 / n_components), means, np.tile(frames.var(axis=0), (n_components, 1))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        started = clock()
        function()
        times.append(clock() - started)
    return min(times)


def spkid_iteration_s(arrays: list[np.ndarray], params, n_jobs: int, repeats: int) -> tuple[float, int]:
    """Best seconds of one EM iteration (accumulate + apply_stats) and the chunk size used."""
    from spkid.gmm import DiagonalGMM
    from spkid.gmm._estep import chunk_rows

    model = DiagonalGMM.from_params(*params, variance_floor=1e-3, min_weight=0.0, n_jobs=n_jobs)
    model.apply_stats(model.accumulate(arrays))  # warm-up: kernels loaded, buffers touched

    def iteration():
        model.apply_stats(model.accumulate(arrays))

    return best_of(repeats, iteration), chunk_rows(sum(a.shape[0] for a in arrays), len(params[0]), None)


def floor_s(
    n_frames: int, n_features: int, n_components: int, chunk_rows: int, n_threads: int, repeats: int
) -> float:
    """The two products of an iteration over the same chunks, the faster of: multi-threaded BLAS, or one
    single-threaded BLAS call stream per core (how n_jobs=-1 runs them)."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((2 * n_features + 1, n_components), dtype=np.float32)
    n_chunks = -(-n_frames // chunk_rows)

    def products(n_chunks_here: int) -> None:
        design = rng.standard_normal((chunk_rows, 2 * n_features + 1), dtype=np.float32)
        log_prob = np.empty((chunk_rows, n_components), dtype=np.float32)
        stats = np.empty((n_components, 2 * n_features + 1), dtype=np.float32)
        for _ in range(n_chunks_here):
            np.matmul(design, weights, out=log_prob)
            np.matmul(log_prob.T, design, out=stats)

    shares = [len(part) for part in np.array_split(np.arange(n_chunks), n_threads)]

    def per_core_streams() -> None:
        with ThreadPoolExecutor(n_threads) as pool, threadpool_limits(limits=1, user_api="blas"):
            list(pool.map(products, shares))

    products(n_chunks)
    return min(best_of(repeats, lambda: products(n_chunks)), best_of(repeats, per_core_streams))


def sklearn_iteration_s(frames: np.ndarray, params, repeats: int) -> float:
    """fit(max_iter=2) - fit(max_iter=1), each the best of ``repeats`` (both pay the same set-up)."""
    from sklearn.mixture import GaussianMixture

    weights, means, variances = params

    def fit(max_iter: int) -> float:
        model = GaussianMixture(
            len(weights),
            covariance_type="diag",
            max_iter=max_iter,
            tol=0.0,
            init_params="random_from_data",
            weights_init=weights,
            means_init=means,
            precisions_init=1.0 / variances,
            random_state=0,
        )
        started = clock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(frames)
        return clock() - started

    return max(min(fit(2) for _ in range(repeats)) - min(fit(1) for _ in range(repeats)), 1e-9)


def init_s(arrays: list[np.ndarray], n_components: int, init: str, n_jobs: int) -> float:
    from spkid.gmm import DiagonalGMM

    started = clock()
    DiagonalGMM(n_components, max_iter=0, init=init, random_state=0, n_jobs=n_jobs).fit(arrays)
    return clock() - started


def sklearn_step_s(frames: np.ndarray, params) -> Callable[[], tuple[float, float]]:
    """A timer of one scikit-learn EM iteration (``_e_step`` + ``_m_step``): wall and process CPU seconds."""
    from sklearn.mixture import GaussianMixture

    weights, means, variances = params
    model = GaussianMixture(
        len(weights),
        covariance_type="diag",
        max_iter=1,
        weights_init=weights,
        means_init=means,
        precisions_init=1.0 / variances,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(frames)  # validated, initialised; each timed step restarts from these parameters

    def step() -> tuple[float, float]:
        started, cpu = clock(), time.process_time()
        _, log_resp = model._e_step(frames)
        model._m_step(frames, log_resp)
        return clock() - started, time.process_time() - cpu

    return step


def busy_comparison(arrays: list[np.ndarray], pooled: np.ndarray, components: list[int], args) -> int:
    """Seconds per EM iteration idle and beside ``args.busy`` CPU-bound processes; slowdowns compared.

    Idle and busy alternate round by round (medians over ``args.repeats`` rounds), so a change in the
    machine's other load affects both states alike.
    """
    import subprocess

    from spkid.gmm import DiagonalGMM

    spin = [sys.executable, "-c", "while True: pass"]
    rows = []
    names = ("spkid n_jobs=1", "spkid n_jobs=-1", "scikit-learn")
    for n_components in components:
        params = initial_parameters(pooled, n_components)
        timers = {}
        for name, n_jobs in (("spkid n_jobs=1", 1), ("spkid n_jobs=-1", -1)):
            model = DiagonalGMM.from_params(*params, variance_floor=1e-3, min_weight=0.0, n_jobs=n_jobs)
            model.accumulate(arrays)  # warm-up

            def step(model=model) -> tuple[float, float]:
                started, cpu = clock(), time.process_time()
                model.accumulate(arrays)
                return clock() - started, time.process_time() - cpu

            timers[name] = step
        timers["scikit-learn"] = sklearn_step_s(pooled, params)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(max(args.repeats, 3)):
            for state in ("idle", "busy"):
                spinners = [subprocess.Popen(spin) for _ in range(args.busy if state == "busy" else 0)]
                try:
                    for name in names:
                        samples.setdefault((name, state), []).append(timers[name]())
                finally:
                    for process in spinners:
                        process.kill()
                        process.wait()
        rows.append((n_components, samples))
    print(
        f"seconds per EM iteration, idle and beside {args.busy} CPU-bound processes (slowdown = busy / idle);"
        "\nCPUs = process CPU seconds per wall second during the iteration (the share of the machine it got);"
        "\nfloor = CPUs idle / the fair share of its threads busy: the least slowdown possible for it"
    )
    print(
        f"{'K':>5} {'library':>16} {'idle':>8} {'busy':>8} {'slowdown':>8} {'vs sklearn':>10} "
        f"{'CPUs idle':>9} {'CPUs busy':>9} {'floor':>6}"
    )
    from spkid.blas import cpu_budget
    from spkid.ubm import UBMConfig

    n_cpus = cpu_budget()
    threads = {"spkid n_jobs=1": 1, "spkid n_jobs=-1": n_cpus}  # scikit-learn's vary within an iteration

    def fair_floor(name: str, cpus_idle: float) -> float:
        """A fair scheduler gives T runnable threads beside N spinners T / (N + T) of the CPUs: the least
        slowdown a program using ``cpus_idle`` CPUs idle can have, doing the same work busy."""
        share = min(threads[name], n_cpus * threads[name] / (args.busy + threads[name]))
        return cpus_idle / share

    default = f"spkid n_jobs={UBMConfig().n_jobs}"  # what spkid train-ubm runs unless told otherwise
    failed = []
    for n_components, samples in rows:
        wall = {key: float(np.median([w for w, _ in values])) for key, values in samples.items()}
        cpus = {key: float(np.median([c / w for w, c in values])) for key, values in samples.items()}
        reference = wall["scikit-learn", "busy"] / wall["scikit-learn", "idle"]
        for name in names:
            idle, busy = wall[name, "idle"], wall[name, "busy"]
            ratio = (busy / idle) / reference
            floor = f"{fair_floor(name, cpus[name, 'idle']):6.2f}" if name in threads else ""
            print(
                f"{n_components:5d} {name:>16} {idle:8.3f} {busy:8.3f} {busy / idle:8.2f} {ratio:10.2f} "
                f"{cpus[name, 'idle']:9.2f} {cpus[name, 'busy']:9.2f} {floor:>6}"
            )
            if name == default and ratio > TARGET_BUSY_RATIO:
                least = fair_floor(name, cpus[name, "idle"])
                failed.append(
                    f"K={n_components} {name}: slowdown {ratio:.2f}x scikit-learn's (its fair-share floor "
                    f"alone is {least / reference:.2f}x)"
                )
    print(
        f"target: the default ({default}, ubm.n_jobs) slows <= {TARGET_BUSY_RATIO:.2f}x as much as "
        "scikit-learn: " + ("met" if not failed else "MISSED: " + "; ".join(failed))
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument(
        "--sklearn-max-components",
        type=int,
        default=1024,
        help="skip scikit-learn above this K (it takes minutes at K=1024)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="spkid and floor timings: best of this many")
    parser.add_argument("--sklearn-repeats", type=int, default=2, help="scikit-learn fits: best of this many")
    parser.add_argument("--synthetic", action="store_true", help="random frames instead of LibriSpeech")
    parser.add_argument("--cache-dir", default=None, help="feature cache folder for extract_many")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads and spkid chunk streams")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall-clock or process CPU time (meaningful with --threads 1)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        nargs="?",
        const=os.cpu_count() or 1,
        default=0,
        help="compare slowdowns beside this many CPU-bound processes (default: one per CPU)",
    )
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    workers = args.threads or -1  # the "n_jobs=-1" configuration: one chunk stream per allowed thread
    if args.threads:
        limiter = threadpool_limits(limits=args.threads)  # noqa: F841 (kept for the whole run)

    blas = [
        f"{i['internal_api']} {i.get('architecture', '?')} x{i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    print(
        f"BLAS: {', '.join(blas)}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; {os.cpu_count()} cores; "
        f"{args.clock} clock; load average {os.getloadavg()[0]:.1f}"
    )
    arrays, source = load_frames(args.synthetic, args.cache_dir)
    n_frames, n_features = sum(a.shape[0] for a in arrays), arrays[0].shape[1]
    print(f"frames: {n_frames} x {n_features} from {source}")
    pooled = np.concatenate(arrays)  # scikit-learn needs one array; spkid gets the list of utterances
    if args.busy:
        return busy_comparison(arrays, pooled, args.components, args)

    print(
        "seconds per EM iteration: spkid n_jobs=1, n_jobs=-1, the product floor, scikit-learn; ratios and\n"
        "targets use n_jobs=-1; init = DiagonalGMM(max_iter=0).fit seconds, and in EM iterations"
    )
    print(
        f"{'K':>5} {'n_jobs=1':>9} {'n_jobs=-1':>9} {'floor':>7} {'x floor':>7} {'sklearn':>8} "
        f"{'x faster':>8} {'kmeans++':>9} {'(iters)':>7} {'split':>7} {'(iters)':>7}"
    )
    failed = []
    for n_components in args.components:
        params = initial_parameters(pooled, n_components)
        one_job_s, chunk_rows = spkid_iteration_s(arrays, params, 1, args.repeats)
        spkid_s, _ = spkid_iteration_s(arrays, params, workers, args.repeats)
        n_threads = args.threads or os.cpu_count() or 1
        products_s = floor_s(n_frames, n_features, n_components, chunk_rows, n_threads, args.repeats)
        run_sklearn = n_components <= args.sklearn_max_components
        sklearn_s = sklearn_iteration_s(pooled, params, args.sklearn_repeats) if run_sklearn else None
        kmeans_s = init_s(arrays, n_components, "kmeans++", workers)
        split_s = init_s(arrays, n_components, "split", workers)
        sklearn_text = f"{'skipped':>8} {'-':>8}"
        if sklearn_s:
            sklearn_text = f"{sklearn_s:8.3f} {sklearn_s / spkid_s:8.1f}"
        print(
            f"{n_components:5d} {one_job_s:9.3f} {spkid_s:9.3f} {products_s:7.3f} "
            f"{spkid_s / products_s:7.2f} {sklearn_text} {kmeans_s:9.2f} {kmeans_s / spkid_s:7.1f} "
            f"{split_s:7.2f} {split_s / spkid_s:7.1f}"
        )
        if n_components == 512:
            if sklearn_s:
                print(
                    f"      (scikit-learn takes {sklearn_s / products_s:.1f}x the product floor: the most "
                    "an E-step built on these two products can gain over it)"
                )
            if sklearn_s and sklearn_s / spkid_s < TARGET_VS_SKLEARN:
                failed.append(f"speed-up over scikit-learn {sklearn_s / spkid_s:.1f}x < {TARGET_VS_SKLEARN}x")
            if spkid_s / products_s > TARGET_VS_FLOOR:
                failed.append(f"{spkid_s / products_s:.2f}x the product floor > {TARGET_VS_FLOOR}x")
            if max(kmeans_s, split_s) / spkid_s > TARGET_INIT_ITERATIONS:
                failed.append(
                    f"initialisation {max(kmeans_s, split_s) / spkid_s:.1f} EM iterations "
                    f"> {TARGET_INIT_ITERATIONS}"
                )
    if 512 in args.components:
        print("targets at K=512: " + ("met" if not failed else "MISSED: " + "; ".join(failed)))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other jobs on the machine add noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
