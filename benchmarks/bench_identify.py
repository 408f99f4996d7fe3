"""Identification speed: ms to score one 10-s test utterance against 10, 100 and 1,000 enrolled speakers.

Features are excluded: the utterance is 1,000 frames (10 s at a 10 ms shift) of the default front-end's
width, drawn from a K=512 UBM. Speaker models are mean-only MAP-style perturbations of the UBM (a random
half of the components moved, as enrollment on a few utterances does). Peers in the same run:

- ``exact``: the same Scorer with ``top_c=None`` (every component of every speaker);
- ``sklearn``: a Python loop over speakers of ``GaussianMixture.score`` (speaker) minus UBM score, the
  straightforward way to do it (10 and 100 speakers only; it is linear in the number of speakers).

Usage: ``python benchmarks/bench_identify.py [--repeats 15] [--speakers 10 100 1000]``.
Timings on a shared machine are noisy: the median of the repeats is reported.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.mixture import GaussianMixture

from spkid.features import FeatureConfig
from spkid.gmm import DiagonalGMM
from spkid.score import ScoreConfig, Scorer

N_COMPONENTS = 512
N_FRAMES = 1000  # 10 s at a 10 ms frame shift
TARGET_MS = 20.0  # at 1,000 speakers with top-5


def make_ubm(n_features: int, rng: np.random.Generator) -> DiagonalGMM:
    return DiagonalGMM.from_params(
        rng.dirichlet(np.full(N_COMPONENTS, 5.0)),
        # Means this close together give overlapping components (mean top-1 posterior ~0.8), as real MFCCs do.
        rng.normal(0.0, 0.4, (N_COMPONENTS, n_features)),
        rng.uniform(0.3, 1.5, (N_COMPONENTS, n_features)),
    )


def make_speakers(ubm: DiagonalGMM, n_speakers: int, rng: np.random.Generator, *, variances: bool = False):
    speakers = {}
    for index in range(n_speakers):
        moved = (rng.random(N_COMPONENTS) < 0.5)[:, None]
        means = ubm.means_ + moved * rng.normal(0.0, 0.15, ubm.means_.shape)
        scale = rng.uniform(0.8, 1.25, ubm.variances_.shape) if variances else 1.0
        speakers[f"speaker{index:04d}"] = DiagonalGMM.from_params(ubm.weights_, means, ubm.variances_ * scale)
    return speakers


def sample_frames(ubm: DiagonalGMM, rng: np.random.Generator) -> np.ndarray:
    components = rng.choice(N_COMPONENTS, size=N_FRAMES, p=ubm.weights_)
    noise = rng.normal(size=(N_FRAMES, ubm.means_.shape[1])) * np.sqrt(ubm.variances_[components])
    return (ubm.means_[components] + noise).astype(np.float32)


def time_ms(function, repeats: int) -> tuple[float, float, float]:
    """(median wall, best wall, median process CPU) ms of ``function``, after one warm-up call.

    CPU time sums all threads of this process; on a busy machine it is steadier than wall time.
    """
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - started_cpu)
    return 1000.0 * float(np.median(walls)), 1000.0 * float(np.min(walls)), 1000.0 * float(np.median(cpus))


def sklearn_loop_ms(ubm: DiagonalGMM, speakers: dict, X: np.ndarray) -> float:
    def to_sklearn(model: DiagonalGMM) -> GaussianMixture:
        mixture = GaussianMixture(N_COMPONENTS, covariance_type="diag")
        mixture.weights_, mixture.means_ = model.weights_, model.means_
        mixture.covariances_, mixture.precisions_cholesky_ = model.variances_, 1.0 / np.sqrt(model.variances_)
        return mixture

    reference, models = to_sklearn(ubm), [to_sklearn(model) for model in speakers.values()]

    def score_all() -> np.ndarray:
        background = reference.score(X)
        return np.array([model.score(X) - background for model in models])

    return time_ms(score_all, 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--speakers", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--sklearn-max", type=int, default=100, help="most speakers for the sklearn peer")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n_features = FeatureConfig().n_features
    ubm = make_ubm(n_features, rng)
    X = sample_frames(ubm, rng)
    print(f"K={N_COMPONENTS}, D={n_features}, {N_FRAMES} frames (10 s); ms, median of {args.repeats} runs")
    columns = (
        "speakers",
        "top-5",
        "top-5 best",
        "top-5 CPU",
        "exact",
        "exact/top-5",
        "sklearn",
        "sklearn/top-5",
        "max|diff|",
    )
    print(" ".join(f"{name:>13}" for name in columns))
    top5_times, fast_scorers, speaker_sets = {}, {}, {}
    for n_speakers in args.speakers:
        speakers = make_speakers(ubm, n_speakers, rng)
        fast = Scorer(ubm, speakers, top_c=5)
        exact = Scorer(ubm, speakers, top_c=None)
        top5, top5_best, top5_cpu = time_ms(lambda scorer=fast: scorer.llr(X), args.repeats)
        full, _, _ = time_ms(lambda scorer=exact: scorer.llr(X), max(1, min(args.repeats, 3)))
        gap = float(np.max(np.abs(fast.llr(X) - exact.llr(X))))
        naive_text = ratio_text = "-"
        if n_speakers <= args.sklearn_max:
            naive = sklearn_loop_ms(ubm, speakers, X)
            naive_text, ratio_text = f"{naive:.1f}", f"{naive / top5:.0f}x"
        top5_times[n_speakers], fast_scorers[n_speakers] = top5, fast
        speaker_sets[n_speakers] = speakers
        cells = (n_speakers, f"{top5:.2f}", f"{top5_best:.2f}", f"{top5_cpu:.2f}", f"{full:.1f}")
        cells += (f"{full / top5:.0f}x",)
        cells += (naive_text, ratio_text, f"{gap:.4f}")
        print(" ".join(f"{cell:>13}" for cell in cells))
    counts = sorted(top5_times)
    for small, large in zip(counts, counts[1:], strict=False):
        print(
            f"scaling {small} -> {large} speakers: time x{top5_times[large] / top5_times[small]:.2f} "
            f"for speakers x{large / small:.0f}"
        )
    if 1000 in top5_times:
        batch = [sample_frames(ubm, rng) for _ in range(10)]
        batched_ms, _, _ = time_ms(lambda: fast_scorers[1000].llr_many(batch), max(1, args.repeats // 3))
        print(f"1000 speakers, top-5, 10 utterances per llr_many call: {batched_ms / 10:.2f} ms each")
        general = Scorer(ubm, make_speakers(ubm, 1000, rng, variances=True), top_c=5)
        general_ms, _, _ = time_ms(lambda: general.llr(X), args.repeats)
        print(f"1000 speakers, means+variances adapted, top-5: {general_ms:.2f} ms")
        default_top_c = ScoreConfig().top_c
        if default_top_c not in (None, 5):
            default_scorer = Scorer(ubm, speaker_sets[1000], top_c=default_top_c)
            default_ms, _, _ = time_ms(lambda: default_scorer.llr(X), args.repeats)
            print(
                f"1000 speakers, the default top-{default_top_c}: {default_ms:.2f} ms "
                f"({default_ms / top5_times[1000]:.2f}x top-5)"
            )
        verdict = "meets" if top5_times[1000] <= TARGET_MS else "misses"
        print(f"top-5 at 1000 speakers: {top5_times[1000]:.2f} ms ({verdict} the {TARGET_MS:.0f} ms target)")


if __name__ == "__main__":
    main()
