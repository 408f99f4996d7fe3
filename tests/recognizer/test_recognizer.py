"""Tests of the recognizer over a model directory: the stored cohort, normalised scoring of pairs, training
with the cohort held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spkid.errors import StoreError
from spkid.features import extract_pool, resolve_sample_rate
from spkid.recognizer import (
    NORMALISED_THRESHOLD,
    RAW_LLR_THRESHOLD,
    Recognizer,
    enroll_from_audio,
    load_config,
    speakers_in_folder,
    train_ubm_from_audio,
)
from spkid.recognizer.bands import band_configs
from spkid.score import (
    Cohort,
    Normalizer,
    ScoreConfig,
    Scorer,
    hold_out_cohort_segments,
    select_cohort,
    znorm,
)
from spkid.store import ModelStore
from spkid.ubm import EnrollConfig, train_ubm


@pytest.fixture(scope="module")
def model(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-component model of the synthetic corpus with every speaker enrolled on 2 recordings; its pool
    (2 recordings of each, one of them a later test's) gives a cohort of 10, enough to normalise with."""
    model_dir = tmp_path_factory.mktemp("recognizer") / "model"
    config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=4", "score.cohort_size=10"])
    speakers = speakers_in_folder(synthetic_corpus)
    train_ubm_from_audio(model_dir, [p for paths in speakers.values() for p in (paths[0], paths[3])], config)
    enroll_from_audio(model_dir, {name: paths[1:3] for name, paths in speakers.items()})
    return model_dir


def test_cohort_arrays_round_trip_and_select_is_seeded(model: Path, synthetic_corpus: Path):
    store = ModelStore.open(model)
    ubm = store.load_ubm()
    cohort = Cohort.from_arrays(store.load_cohort(), ubm)
    assert len(cohort) == 10 and all(segment.shape[1] == ubm.means_.shape[1] for segment in cohort.segments)
    again = Cohort.from_arrays(cohort.to_arrays(ubm), ubm)
    for a, b in zip(cohort.models, again.models, strict=True):
        np.testing.assert_array_equal(a.means_, b.means_)
        np.testing.assert_array_equal(a.variances_, ubm.variances_)  # mean-only MAP keeps the UBM's
    rng = np.random.default_rng(0)
    pool = [rng.normal(size=(400, ubm.means_.shape[1])).astype(np.float32) for _ in range(9)]
    first = select_cohort(pool, ubm, size=4, enroll_config=EnrollConfig(), random_state=3)
    second = select_cohort(pool, ubm, size=4, enroll_config=EnrollConfig(), random_state=3)
    assert all(np.array_equal(a, b) for a, b in zip(first.segments, second.segments, strict=True))
    # Segments are the utterance tails (300 frames at most); the models never saw those frames.
    assert all(len(segment) == 200 for segment in first.segments)
    broken = dict(cohort.to_arrays(ubm), segment_lengths=np.array([1, 2]))
    with pytest.raises(StoreError, match="inconsistent shapes"):
        Cohort.from_arrays(broken, ubm)


def test_train_ubm_from_audio_holds_the_cohort_segments_out(synthetic_corpus: Path, tmp_path: Path):
    config = load_config(
        None, ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4", "features.cmvn=adaptive_level"]
    )
    files = [paths[0] for paths in speakers_in_folder(synthetic_corpus).values()]
    result = train_ubm_from_audio(tmp_path / "model", files, config)
    store = ModelStore.open(tmp_path / "model")
    lengths = store.load_cohort()["segment_lengths"]
    assert len(lengths) == result.cohort_size == 4
    assert result.cohort_frames_held_out == lengths.sum() > 0
    main_band, _ = band_configs(resolve_sample_rate(config.features, files))  # bands: auto's main model
    features, _ = extract_pool(files, main_band)
    kept, _ = hold_out_cohort_segments(features, ubm_config=config.ubm, cohort_size=4)
    expected = train_ubm(kept, config.ubm)
    np.testing.assert_allclose(store.load_ubm().means_, expected.means_, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["none", "znorm", "snorm", "ztnorm", "asnorm"])
def test_sparse_pair_scoring_equals_the_dense_matrix(model: Path, synthetic_corpus: Path, method: str):
    recognizer = Recognizer(
        ModelStore.open(model), score_config=ScoreConfig(normalization=method, asnorm_top_k=3)
    )
    models = recognizer.speakers()
    files = sorted(synthetic_corpus.rglob("*.wav"))[::2]
    features = recognizer.extract(files)
    matrix = recognizer.score_matrix(models, features)
    assert matrix.shape == (len(files), len(models))
    pairs = [(m, t) for t in range(len(files)) for m in range(len(models)) if (m + t) % 5 == 0]
    assert 4 * len(pairs) < matrix.size  # the sparse, test-by-test path
    sparse = recognizer.score_pairs(models, features, pairs)
    np.testing.assert_allclose(sparse, [matrix[t, m] for m, t in pairs], rtol=1e-5, atol=1e-5)
    if method == "none":
        raw = Scorer(recognizer.ubm, models).llr_many(features)
        np.testing.assert_allclose(matrix, raw, atol=1e-6)
        # Raw scores: each speaker's threshold is its cohort impostor-score mean + 3 standard deviations.
        # The same decision as Z-norm at 3: each threshold Z-normalises to exactly 3.
        impostor = Scorer(recognizer.ubm, models).llr_many(recognizer.cohort.segments)
        thresholds = recognizer.default_thresholds(models)
        np.testing.assert_allclose(znorm(thresholds[None, :], impostor), NORMALISED_THRESHOLD, rtol=1e-6)
        assert np.all(thresholds != RAW_LLR_THRESHOLD)
    else:
        np.testing.assert_array_equal(recognizer.default_thresholds(models), NORMALISED_THRESHOLD)


def test_normalizer_needs_a_cohort(model: Path):
    ubm = ModelStore.open(model).load_ubm()
    with pytest.raises(StoreError, match="needs a cohort"):
        Normalizer("snorm", ubm, None)
