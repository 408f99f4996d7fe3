"""End to end on the real "librispeech-mini" protocol of ../shared/data/README.md, with default settings.

UBM on all 251 train-clean-100 utterances; each of the 10 test-other speakers enrolled on its first 5
utterances (sorted file names) and tested on the remaining 5: 50 closed-set identifications, and 50 target
/ 450 non-target verification trials (every test against every enrolled speaker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spkid.features import FeatureConfig, extract_many
from spkid.metrics import eer, identification_accuracy, min_dcf
from spkid.score import ScoreConfig, Scorer, hold_out_cohort_segments, select_cohort
from spkid.ubm import EnrollConfig, UBMConfig, enroll, train_ubm

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

N_ENROLL = 5


def flac_files(subset: Path) -> list[Path]:
    return sorted(subset.glob("*/*/*.flac"), key=lambda path: path.name)


def enroll_all(ubm, enrollment: dict[str, list[np.ndarray]], config: EnrollConfig) -> dict:
    """``{speaker: MAP-adapted model}`` for every speaker's enrollment features."""
    return {speaker: enroll(ubm, features, config) for speaker, features in enrollment.items()}


@pytest.fixture(scope="module")
def pool(librispeech_train) -> list[np.ndarray]:
    """Features of the 251 train-clean-100 utterances (the UBM pool), default settings."""
    train_paths = flac_files(librispeech_train)
    assert len(train_paths) == 251
    return list(extract_many(train_paths, FeatureConfig(), n_jobs=2))


@pytest.fixture(scope="module")
def system(pool, librispeech_test):
    """(scorer factory, test features, true speaker of each test, enrollment features by speaker, UBM),
    built with every default setting (the UBM on the whole pool, as :func:`spkid.ubm.train_ubm` gets it)."""
    features = FeatureConfig()
    by_speaker: dict[str, list[Path]] = {}
    for path in flac_files(librispeech_test):
        by_speaker.setdefault(path.parts[-3], []).append(path)
    assert len(by_speaker) == 10 and all(len(paths) == 10 for paths in by_speaker.values())

    ubm = train_ubm(pool, UBMConfig())
    assert ubm.n_components == 512  # the pool (~39 min of speech) is large enough for the default size
    test_paths = [path for speaker in sorted(by_speaker) for path in by_speaker[speaker]]
    test_features = dict(zip(test_paths, extract_many(test_paths, features, n_jobs=2), strict=True))
    enrollment, tests, truth = {}, [], []
    for speaker in sorted(by_speaker):
        paths = by_speaker[speaker]
        enrollment[speaker] = [test_features[path] for path in paths[:N_ENROLL]]
        for path in paths[N_ENROLL:]:
            tests.append(test_features[path])
            truth.append(speaker)
    models = enroll_all(ubm, enrollment, EnrollConfig())
    return (lambda top_c: Scorer(ubm, models, top_c=top_c)), tests, truth, enrollment, ubm


def test_identification_and_verification(system):
    make_scorer, tests, truth, _, _ = system
    scorer = make_scorer(ScoreConfig().top_c)
    ranked = [scorer.identify(X, top_k=3) for X in tests]
    assert identification_accuracy(truth, ranked, top_k=1) == 1.0  # 50 / 50

    scores = scorer.llr_many(tests)
    is_target = np.array([[name == speaker for name in scorer.names] for speaker in truth])
    assert is_target.sum() == 50 and (~is_target).sum() == 450
    target, nontarget = scores[is_target], scores[~is_target]
    assert eer(target, nontarget) <= 0.02
    assert min_dcf(target, nontarget, p_target=0.01) < 1.0


@pytest.mark.parametrize(
    ("relevance_factor", "top_c"), [(EnrollConfig().relevance_factor, ScoreConfig().top_c), (16.0, 5)]
)
def test_top_c_close_to_exact_on_real_speech(system, relevance_factor: float, top_c: int):
    """The default pair (relevance factor 4, top-10) and Reynolds' (16, top-5) approximate exact scoring
    equally well: close on average, the rare larger gaps on the shortest (~1 s) tests, the same decisions;
    doubling C keeps every one of the 500 scores within 0.05."""
    _, tests, _, enrollment, ubm = system
    models = enroll_all(ubm, enrollment, EnrollConfig(relevance_factor=relevance_factor))
    exact = Scorer(ubm, models, top_c=None).llr_many(tests)
    approximate = Scorer(ubm, models, top_c=top_c).llr_many(tests)
    gap = np.abs(approximate - exact)
    print(
        f"r={relevance_factor:g}, top-{top_c} vs exact: mean {gap.mean():.4f}, max {gap.max():.4f}, "
        f"{np.mean(gap <= 0.05):.1%} <= 0.05"
    )
    assert gap.mean() <= 0.025
    assert np.mean(gap <= 0.05) >= 0.99
    assert gap.max() <= 0.2
    np.testing.assert_array_equal(approximate.argmax(axis=1), exact.argmax(axis=1))
    gap_doubled = np.abs(Scorer(ubm, models, top_c=2 * top_c).llr_many(tests) - exact)
    print(f"top-{2 * top_c} vs exact: mean {gap_doubled.mean():.4f}, max {gap_doubled.max():.4f}")
    assert gap_doubled.max() <= 0.05


def test_cohort_segments_held_out_of_the_ubm_score_like_unseen_impostors(pool, system):
    """A UBM trained on the cohort's impostor segments scores them too well: every model's impostor mean on
    them falls below its impostor mean on real tests, and thresholds at mean + 3 SD let impostors in. The
    pipeline holds the segments out of UBM training; here both UBMs are built and compared."""
    _, tests, truth, enrollment, full_ubm = system
    held_out_pool, n_held_out = hold_out_cohort_segments(
        pool, ubm_config=UBMConfig(), cohort_size=ScoreConfig().cohort_size
    )
    assert sum(map(len, held_out_pool)) == sum(map(len, pool)) - n_held_out
    held_out_ubm = train_ubm(held_out_pool, UBMConfig())
    is_target = np.array([[name == speaker for name in enrollment] for speaker in truth])
    gaps, false_alarms = [], []
    for ubm in (full_ubm, held_out_ubm):
        models = enroll_all(ubm, enrollment, EnrollConfig())
        cohort = select_cohort(pool, ubm, size=ScoreConfig().cohort_size, enroll_config=EnrollConfig())
        assert sum(map(len, cohort.segments)) == n_held_out and len(cohort) == 100
        scorer = Scorer(ubm, models)
        impostor = scorer.llr_many(cohort.segments)
        scores = scorer.llr_many(tests)
        gaps.append(scores[~is_target].mean() - impostor.mean())
        thresholds = impostor.mean(axis=0) + 3 * impostor.std(axis=0, ddof=1)
        false_alarms.append(np.mean((scores >= thresholds)[~is_target]))
    print(
        f"test impostor mean - cohort impostor mean: whole pool {gaps[0]:.3f}, held out {gaps[1]:.3f}; "
        f"false alarms at mean + 3 SD: {false_alarms[0]:.1%} -> {false_alarms[1]:.1%}"
    )
    assert gaps[0] > 0.05 and gaps[1] < 0.7 * gaps[0]
    assert false_alarms[1] <= false_alarms[0]
