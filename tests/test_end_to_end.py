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
from spkid.score import ScoreConfig, Scorer
from spkid.ubm import EnrollConfig, UBMConfig, enroll, train_ubm

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

N_ENROLL = 5


def flac_files(subset: Path) -> list[Path]:
    return sorted(subset.glob("*/*/*.flac"), key=lambda path: path.name)


@pytest.fixture(scope="module")
def system(librispeech_train, librispeech_test):
    """(scorer factory, test features, true speaker of each test), built with every default setting."""
    features = FeatureConfig()
    train_paths = flac_files(librispeech_train)
    assert len(train_paths) == 251
    by_speaker: dict[str, list[Path]] = {}
    for path in flac_files(librispeech_test):
        by_speaker.setdefault(path.parts[-3], []).append(path)
    assert len(by_speaker) == 10 and all(len(paths) == 10 for paths in by_speaker.values())

    ubm = train_ubm(extract_many(train_paths, features, n_jobs=2), UBMConfig())
    assert ubm.n_components == 512  # the pool (~39 min of speech) is large enough for the default size
    test_paths = [path for speaker in sorted(by_speaker) for path in by_speaker[speaker]]
    test_features = dict(zip(test_paths, extract_many(test_paths, features, n_jobs=2), strict=True))
    models, tests, truth = {}, [], []
    for speaker in sorted(by_speaker):
        paths = by_speaker[speaker]
        models[speaker] = enroll(ubm, [test_features[path] for path in paths[:N_ENROLL]], EnrollConfig())
        for path in paths[N_ENROLL:]:
            tests.append(test_features[path])
            truth.append(speaker)
    return (lambda top_c: Scorer(ubm, models, top_c=top_c)), tests, truth


def test_identification_and_verification(system):
    make_scorer, tests, truth = system
    scorer = make_scorer(ScoreConfig().top_c)
    ranked = [scorer.identify(X, top_k=3) for X in tests]
    assert identification_accuracy(truth, ranked, top_k=1) == 1.0  # 50 / 50

    scores = scorer.llr_many(tests)
    is_target = np.array([[name == speaker for name in scorer.names] for speaker in truth])
    assert is_target.sum() == 50 and (~is_target).sum() == 450
    target, nontarget = scores[is_target], scores[~is_target]
    assert eer(target, nontarget) <= 0.02
    assert min_dcf(target, nontarget, p_target=0.01) < 1.0


def test_top_c_close_to_exact_on_real_speech(system):
    make_scorer, tests, truth = system
    exact = make_scorer(None).llr_many(tests)
    # The default top-5: close on average; the rare larger gaps are on the shortest (~1 s) tests.
    top_5 = make_scorer(ScoreConfig().top_c).llr_many(tests)
    gap = np.abs(top_5 - exact)
    print(f"top-5 vs exact: mean {gap.mean():.4f}, max {gap.max():.4f}, {np.mean(gap <= 0.05):.1%} <= 0.05")
    assert gap.mean() <= 0.02
    assert np.mean(gap <= 0.05) >= 0.99
    assert gap.max() <= 0.1
    np.testing.assert_array_equal(top_5.argmax(axis=1), exact.argmax(axis=1))
    # Top-10 keeps every one of the 500 scores within 0.05 of exact.
    gap_10 = np.abs(make_scorer(10).llr_many(tests) - exact)
    print(f"top-10 vs exact: mean {gap_10.mean():.4f}, max {gap_10.max():.4f}")
    assert gap_10.max() <= 0.05
