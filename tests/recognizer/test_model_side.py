"""Adaptive S-norm, the default score normalisation, from each speaker's summary stored at enrollment.

Every enrolled model's side of Z-, S- and adaptive S-norm is two numbers (its mean and standard deviation on
the cohort's impostor segments, over its ``asnorm_top_k`` highest scores for adaptive S-norm), computed
once at enrollment and kept in the speaker file and the bank. These tests check the scores against the
textbook formula on the full cohort score matrices (:func:`spkid.score.asnorm`), the bank against the speaker
files, speakers stored before the summary existed, and the small-pool guard.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from spkid.recognizer import Recognizer, enroll_from_audio, identify, load_config, train_ubm_from_audio
from spkid.recognizer.bank_search import bank_or_none
from spkid.score import ScoreConfig, Scorer, asnorm, snorm
from spkid.store import ModelStore, SpeakerCohortStats

#: A cohort of 12 pool utterances, 5 of them each side's adaptive S-norm statistics.
SETTINGS = ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=12", "score.asnorm_top_k=5"]


@pytest.fixture(scope="module")
def model(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    model_dir = tmp_path_factory.mktemp("model_side") / "model"
    speakers = {p.name: sorted(p.glob("*.wav")) for p in sorted(synthetic_corpus.iterdir()) if p.is_dir()}
    # one front-end: the scores below are the main model's (bands: auto routes wideband tests elsewhere)
    config = load_config(None, [*SETTINGS, "features.bands=single", "features.cmvn=adaptive_level"])
    train_ubm_from_audio(model_dir, [synthetic_corpus], config)
    enroll_from_audio(model_dir, {name: files[:3] for name, files in speakers.items()})
    tests = [file for files in speakers.values() for file in files[3:]]
    return {"dir": model_dir, "tests": tests}


def _textbook_scores(recognizer: Recognizer, tests: list[Path]) -> tuple[list[str], np.ndarray]:
    """Adaptive S-norm written out from the full cohort score matrices (no stored summary involved)."""
    models = recognizer.speakers()
    features = list(recognizer.extract(tests))
    top_c = recognizer.score_config.top_c
    raw = Scorer(recognizer.ubm, models, top_c=top_c).llr_many(features)
    model_cohort = Scorer(recognizer.ubm, models, top_c=top_c).llr_many(recognizer.cohort.segments)
    cohort_models = {f"c{i}": m for i, m in enumerate(recognizer.cohort.models)}
    test_cohort = Scorer(recognizer.ubm, cohort_models, top_c=top_c).llr_many(features)
    return list(models), asnorm(raw, model_cohort, test_cohort, top_k=recognizer.score_config.asnorm_top_k)


def test_defaults_normalise_with_adaptive_s_norm_and_enrollment_stores_each_speakers_summary(model: dict):
    store = ModelStore.open(model["dir"])
    assert store.score_config["normalization"] == "asnorm"
    recognizer = Recognizer(store)
    assert len(recognizer.cohort.segments) == 12
    models = recognizer.speakers()
    for name, speaker in models.items():
        stored = store.cohort_stats[name]
        assert (stored.top_c, stored.top_k) == (10, 5)
        scores = Scorer(recognizer.ubm, {name: speaker}, top_c=10).llr_many(recognizer.cohort.segments)[:, 0]
        best = np.sort(scores)[-5:]
        assert stored.mean == pytest.approx(best.mean(), abs=1e-9)
        assert stored.std == pytest.approx(best.std(), abs=1e-9)
        assert stored.mean > scores.mean()  # the five closest impostors, not all twelve


def test_scores_equal_adaptive_s_norm_on_the_full_cohort_matrices(model: dict):
    recognizer = Recognizer.open(model["dir"])
    names, expected = _textbook_scores(recognizer, model["tests"])
    features = list(recognizer.extract(model["tests"]))
    got = recognizer.score_matrix(recognizer.speakers(names), features)
    # the stored summaries were scored one model at a time: float32 sums in another order, ~1e-7 apart
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # and they are not what S-norm over the whole cohort gives (the top-5 choice matters here)
    assert not np.allclose(got, snorm(*_cohort_free_inputs(recognizer, features)), atol=1e-3)
    pairs = [(m, t) for t in range(len(features)) for m in range(len(names)) if (m + t) % 5 == 0]
    sparse = recognizer.score_pairs(recognizer.speakers(names), features, pairs)
    np.testing.assert_allclose(sparse, [expected[t, m] for m, t in pairs], rtol=1e-6, atol=1e-6)


def _cohort_free_inputs(recognizer: Recognizer, features: list) -> tuple[np.ndarray, ...]:
    models = recognizer.speakers()
    raw = Scorer(recognizer.ubm, models, top_c=10).llr_many(features)
    model_cohort = Scorer(recognizer.ubm, models, top_c=10).llr_many(recognizer.cohort.segments)
    cohort_models = {f"c{i}": m for i, m in enumerate(recognizer.cohort.models)}
    return raw, model_cohort, Scorer(recognizer.ubm, cohort_models, top_c=10).llr_many(features)


def test_the_bank_ranks_and_scores_as_the_speaker_files(model: dict):
    recognizer = Recognizer.open(model["dir"])
    assert bank_or_none(recognizer) is not None  # top-C scoring with adaptive S-norm reads the bank
    names, expected = _textbook_scores(recognizer, model["tests"])
    result = identify(model["dir"], model["tests"], top_k=0)
    for found, row in zip(result.results, expected, strict=True):
        ranked = dict(found.scores)
        np.testing.assert_allclose([ranked[name] for name in names], row, rtol=1e-6, atol=1e-6)
        assert found.speaker == names[int(np.argmax(row))]
    top3 = identify(model["dir"], model["tests"], top_k=3)
    for found, row in zip(top3.results, expected, strict=True):
        assert [speaker for speaker, _ in found.scores] == [names[i] for i in np.argsort(-row)[:3]]


def test_speakers_stored_without_the_summary_score_the_same(model: dict, tmp_path: Path):
    copy = Path(shutil.copytree(model["dir"], tmp_path / "model"))
    store = ModelStore.open(copy)
    for name in store.speakers():  # as an older spkid stored them: the mean and std over all segments
        stats = store.load_speaker_stats(name)
        store.load_speaker(name)
        full = store.cohort_stats[name]
        old = SpeakerCohortStats(full.mean + 1.0, full.std, full.top_c)  # over all: not asnorm's summary
        store.save_speaker_stats(name, stats, replace=True, cohort_stats=old)
    store.rebuild_bank()
    recognizer = Recognizer.open(copy)
    names, expected = _textbook_scores(recognizer, model["tests"])
    result = identify(copy, model["tests"], top_k=0)
    for found, row in zip(result.results, expected, strict=True):
        ranked = dict(found.scores)
        np.testing.assert_allclose([ranked[name] for name in names], row, rtol=1e-6, atol=1e-6)


def test_a_pool_too_small_for_a_cohort_scores_raw_llrs_and_says_so(
    synthetic_corpus: Path, tmp_path: Path, caplog
):
    pool = sorted((synthetic_corpus / "spk01").glob("*.wav"))[:4]
    config = load_config(None, ["ubm.n_components=4", "ubm.max_iter=2", "features.bands=single"])
    with caplog.at_level(logging.WARNING, logger="spkid.score.cohort"):
        train_ubm_from_audio(tmp_path / "model", pool, config)
    assert ModelStore.open(tmp_path / "model").score_config["normalization"] == "none"
    assert "cohort of 4 utterances (fewer than 10): scores are not normalised" in caplog.text


def test_score_min_cohort_size_lets_a_small_cohort_normalise(synthetic_corpus: Path, tmp_path: Path, caplog):
    pool = sorted((synthetic_corpus / "spk01").glob("*.wav"))[:4]
    settings = ["ubm.n_components=4", "ubm.max_iter=2", "features.bands=single", "score.min_cohort_size=4"]
    with caplog.at_level(logging.WARNING, logger="spkid.score.cohort"):
        train_ubm_from_audio(tmp_path / "model", pool, load_config(None, settings))
    stored = ModelStore.open(tmp_path / "model").score_config
    assert (stored["normalization"], stored["min_cohort_size"]) == ("asnorm", 4)
    assert "not normalised" not in caplog.text
    assert Recognizer.open(tmp_path / "model").score_config.normalization == "asnorm"
    # a recipe's score settings asking for more than the stored cohort holds get raw scores, as at train-ubm
    asking = ScoreConfig(normalization="asnorm", min_cohort_size=5)
    assert (
        Recognizer(ModelStore.open(tmp_path / "model"), score_config=asking).score_config.normalization
        == "none"
    )
