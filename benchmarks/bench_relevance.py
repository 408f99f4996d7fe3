"""MAP relevance factor: spkid's default r = 4 against the peer r = 16 (Reynolds et al. 2000), over UBM seeds.

Two protocols from ``../shared/data/LibriSpeech`` (see ``condition_corpora.py``): *clean* (UBM on
train-clean-100; 10 test-other speakers enrolled on 5 utterances, ~1 min; tests whole, cut to 1 s and to
0.5 s of speech) and *many* (227 train-clean-100 speakers enrolled on ~60% of one utterance, 6-9 s, tested
on the remaining 2-3 s; UBM on test-other). For each UBM seed (trained as ``spkid train-ubm`` does, cohort
segments held out) and each r: top-1 identification accuracy and pooled EER per test set, and the ratio of
r = 4's error rates to r = 16's.

Usage: ``python benchmarks/bench_relevance.py [--seeds 0 1 2] [--factors 4 8 16]`` (about 2 minutes a seed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import condition_corpora as corpora  # noqa: E402

from spkid.features import FeatureConfig, extract_many  # noqa: E402
from spkid.metrics import eer  # noqa: E402
from spkid.score import ScoreConfig, Scorer, hold_out_cohort_segments  # noqa: E402
from spkid.ubm import EnrollConfig, UBMConfig, enroll, train_ubm  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "LibriSpeech"
PEER_FACTOR = 16.0


def load_protocols(
    work: Path, names: tuple[str, ...] = ("clean", "many")
) -> dict[str, tuple[list, dict, dict]]:
    """``{protocol: (UBM pool features, {speaker: enrollment features}, {test set: (features, truths)})}``
    for the protocols ``names`` ("clean": test sets "whole", "1s", "0.5s"; "many": "227 spk")."""
    config = FeatureConfig()

    def tests_of(corpus: corpora.Corpus) -> tuple[list, list]:
        extracted = extract_many(list(corpus.tests), config)
        return list(extracted), [corpus.tests[path] for path in extracted.paths]

    def enrollment_of(corpus: corpora.Corpus) -> dict:
        folders = sorted(path for path in Path(corpus.speakers_dir).iterdir() if path.is_dir())
        return {folder.name: list(extract_many(sorted(folder.iterdir()), config)) for folder in folders}

    protocols = {}
    if "clean" in names:
        clean = corpora.clean(DATA, work / "clean")
        protocols["clean"] = (
            list(extract_many(clean.ubm_pool, config, n_jobs=-1)),
            enrollment_of(clean),
            {
                "whole": tests_of(clean),
                "1s": tests_of(corpora.short_tests(clean, work / "short-1", 1.0)),
                "0.5s": tests_of(corpora.short_tests(clean, work / "short-05", 0.5)),
            },
        )
    if "many" in names:
        many = corpora.many_speakers(DATA, work / "many")
        protocols["many"] = (
            list(extract_many(many.ubm_pool, config, n_jobs=-1)),
            enrollment_of(many),
            {"227 spk": tests_of(many)},
        )
    return protocols


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--factors", type=float, nargs="+", default=[4.0, 8.0, PEER_FACTOR])
    args = parser.parse_args()
    if not (DATA / "train-clean-100").is_dir() or not (DATA / "test-other").is_dir():
        print(f"skipped: needs {DATA}/train-clean-100 and test-other (the shared LibriSpeech subsets)")
        return 0
    factors = sorted(set(args.factors) | {PEER_FACTOR, EnrollConfig().relevance_factor})
    with tempfile.TemporaryDirectory() as work:
        protocols = load_protocols(Path(work))
    errors: dict[tuple[str, float], list[float]] = {}
    print("seed  r     " + "".join(f"{name:>21}" for _, (_, _, sets) in protocols.items() for name in sets))
    for seed in args.seeds:
        rows = {factor: f"{seed:>4}  {factor:<4g}  " for factor in factors}
        for pool, enrollment, test_sets in protocols.values():
            ubm_config = UBMConfig(random_state=seed)
            kept, _ = hold_out_cohort_segments(
                pool, ubm_config=ubm_config, cohort_size=ScoreConfig().cohort_size
            )
            ubm = train_ubm(kept, ubm_config)
            names = np.array(sorted(enrollment))
            for factor in factors:
                config = EnrollConfig(relevance_factor=factor)
                scorer = Scorer(ubm, {name: enroll(ubm, enrollment[name], config) for name in names})
                for set_name, (features, truths) in test_sets.items():
                    scores = scorer.llr_many(features)
                    target = names[None, :] == np.asarray(truths)[:, None]
                    top1 = float(np.mean(names[scores.argmax(axis=1)] == np.asarray(truths)))
                    pooled_eer = eer(scores[target], scores[~target])
                    errors.setdefault((set_name, factor), []).extend([1 - top1, pooled_eer])
                    rows[factor] += f"{top1:>10.1%} EER {pooled_eer:5.1%}"
        for factor in factors:
            print(rows[factor], flush=True)
    default = EnrollConfig().relevance_factor
    print(
        f"\nmean over seeds, r={default:g} against the peer r={PEER_FACTOR:g} "
        "(error-rate ratio; < 1 is better):"
    )
    for set_name in dict.fromkeys(name for name, _ in errors):
        ours, peer = (np.reshape(errors[(set_name, f)], (-1, 2)).mean(axis=0) for f in (default, PEER_FACTOR))
        ratios = [o / p if p else float("nan") for o, p in zip(ours, peer, strict=True)]
        print(
            f"  {set_name:<8} top-1 errors {ours[0]:5.1%} vs {peer[0]:5.1%} ({ratios[0]:.2f}x), "
            f"EER {ours[1]:5.1%} vs {peer[1]:5.1%} ({ratios[1]:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
