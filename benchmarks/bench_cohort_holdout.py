"""Holding the cohort's impostor segments out of UBM training, against the peer: a UBM on the whole pool.

On the clean LibriSpeech protocol (UBM pool train-clean-100, 10 test-other speakers enrolled on 5
utterances, tested on the other 5, whole and cut to 1 s and 0.5 s of speech), for UBM seeds 0, 1, 2:
top-1 accuracy and EER per test set, and the false alarms and misses of every test x model pair at the
default verify thresholds (each speaker's impostor mean + 3 SD on the cohort segments). Also prints how far
the cohort impostor mean sits below the real tests' impostor mean (the bias the hold-out removes).

Usage: ``python benchmarks/bench_cohort_holdout.py [--seeds 0 1 2]`` (about 2 minutes per seed here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_relevance import DATA, load_protocols  # noqa: E402

from spkid.metrics import eer  # noqa: E402
from spkid.score import ScoreConfig, Scorer, hold_out_cohort_segments, select_cohort  # noqa: E402
from spkid.ubm import EnrollConfig, UBMConfig, enroll, train_ubm  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not (DATA / "train-clean-100").is_dir() or not (DATA / "test-other").is_dir():
        print(f"skipped: needs {DATA}/train-clean-100 and test-other (the shared LibriSpeech subsets)")
        return 0
    cohort_size = ScoreConfig().cohort_size
    with tempfile.TemporaryDirectory() as work:
        pool, enrollment, tests = load_protocols(Path(work), ("clean",))["clean"]
    names = np.array(sorted(enrollment))
    print(
        "UBM pool / seed            "
        + "".join(f"{name:>18}" for name in tests)
        + "   clean FA / miss at default thresholds   cohort bias"
    )
    for seed in args.seeds:
        for label, hold_out in (("whole pool (peer)", False), ("segments held out", True)):
            ubm_config = UBMConfig(random_state=seed)
            ubm_pool = (
                hold_out_cohort_segments(pool, ubm_config=ubm_config, cohort_size=cohort_size)[0]
                if hold_out
                else pool
            )
            ubm = train_ubm(ubm_pool, ubm_config)
            models = {name: enroll(ubm, enrollment[name]) for name in names}
            scorer = Scorer(ubm, models, top_c=ScoreConfig().top_c)
            cohort = select_cohort(
                pool, ubm, size=cohort_size, enroll_config=EnrollConfig(), random_state=seed
            )
            impostor = scorer.llr_many(cohort.segments)
            thresholds = impostor.mean(axis=0) + 3 * impostor.std(axis=0, ddof=1)
            cells, decisions, bias = [], "", 0.0
            for name, (features, truths) in tests.items():
                scores = scorer.llr_many(features)
                target = names[None, :] == np.asarray(truths)[:, None]
                top1 = np.mean(names[scores.argmax(axis=1)] == np.asarray(truths))
                cells.append(f"{top1:7.0%} EER {eer(scores[target], scores[~target]):5.1%}")
                if name == "whole":
                    accepted = scores >= thresholds[None, :]
                    decisions = f"{np.mean(accepted[~target]):5.1%} / {np.mean(~accepted[target]):4.1%}"
                    bias = float(scores[~target].mean() - impostor.mean())
            print(
                f"{label:<18} seed {seed}  "
                + "".join(f"{cell:>18}" for cell in cells)
                + f"   {decisions:>37}   {bias:+.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
