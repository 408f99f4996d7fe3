"""Tests of the pieces under the CLI: the cohort, normalised scoring of pairs, trial lists, score files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spkid.cohort import (
    Cohort,
    Normalizer,
    cohort_segment_rows,
    hold_out_cohort_segments,
    select_cohort,
)
from spkid.config import load_config
from spkid.errors import DataError, StoreError
from spkid.evaluation import evaluate, read_labelled_scores
from spkid.feature_store import FeatureStore, StoredFeatures
from spkid.features import extract_many, resolve_sample_rate
from spkid.gmm import DiagonalGMM
from spkid.normalize import znorm
from spkid.pipeline import enroll_from_audio, speakers_in_folder, train_ubm_from_audio
from spkid.recognizer import NORMALISED_THRESHOLD, RAW_LLR_THRESHOLD, Recognizer
from spkid.score import ScoreConfig, Scorer
from spkid.store import ModelStore
from spkid.trials import RecordingResolver, read_trial_list
from spkid.ubm import EnrollConfig, UBMConfig, train_ubm


@pytest.fixture(scope="module")
def model(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-component model of the synthetic corpus with every speaker enrolled on 2 recordings."""
    model_dir = tmp_path_factory.mktemp("recognizer") / "model"
    config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=4", "score.cohort_size=5"])
    speakers = speakers_in_folder(synthetic_corpus)
    train_ubm_from_audio(model_dir, [paths[0] for paths in speakers.values()], config)
    enroll_from_audio(model_dir, {name: paths[1:3] for name, paths in speakers.items()})
    return model_dir


def test_cohort_arrays_round_trip_and_select_is_seeded(model: Path, synthetic_corpus: Path):
    store = ModelStore.open(model)
    ubm = store.load_ubm()
    cohort = Cohort.from_arrays(store.load_cohort(), ubm)
    assert len(cohort) == 5 and all(segment.shape[1] == ubm.means_.shape[1] for segment in cohort.segments)
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


def _pool(n_features: int = 3) -> list[np.ndarray]:
    """Utterances of distinct random rows, long ones and one under MIN_SPLIT_FRAMES (used whole)."""
    rng = np.random.default_rng(1)
    return [rng.normal(size=(n, n_features)).astype(np.float32) for n in (700, 90, 400, 1000, 250, 520)]


def _sorted_rows(arrays) -> np.ndarray:
    rows = np.concatenate(list(arrays))
    return rows[np.lexsort(rows.T[::-1])]


def test_hold_out_cohort_segments_removes_exactly_the_cohort_test_segments(tmp_path: Path):
    pool = _pool()
    config = UBMConfig(n_components=4, random_state=5)
    chosen = cohort_segment_rows([len(u) for u in pool], size=4, random_state=5)
    assert len(chosen) == 4 and list(chosen) == sorted(chosen)
    kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=config, cohort_size=4)
    ubm = DiagonalGMM.from_params(np.ones(1), np.zeros((1, 3)), np.ones((1, 3)))
    cohort = select_cohort(pool, ubm, size=4, enroll_config=EnrollConfig(), random_state=5)
    assert n_held_out == sum(map(len, cohort.segments)) == sum(chosen.values()) > 0
    # What the UBM trains on and the cohort's segments split the pool's frames exactly, nothing shared.
    np.testing.assert_array_equal(_sorted_rows([*kept, *cohort.segments]), _sorted_rows(pool))
    for index, frames in enumerate(pool):  # views of the pool, not copies; the others whole
        assert any(np.shares_memory(part, frames) for part in kept) == (chosen.get(index, 0) < len(frames))
        if index not in chosen:
            assert any(np.shares_memory(part, frames) and len(part) == len(frames) for part in kept)
    # The same split from a feature store: its files are cut, not copied.
    stored = FeatureStore(tmp_path / "store").write("pool", ((f"u{i}", u) for i, u in enumerate(pool)))
    stored_kept, stored_held_out = hold_out_cohort_segments(stored, ubm_config=config, cohort_size=4)
    assert isinstance(stored_kept, StoredFeatures) and stored_held_out == n_held_out
    assert [item.path for item in stored_kept.files] == [
        stored.files[i].path for i in range(len(pool)) if chosen.get(i, 0) < len(pool[i])
    ]
    for got, expected in zip(stored_kept, kept, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_small_pools_keep_every_frame_for_the_ubm():
    pool = _pool()
    n_frames = sum(map(len, pool))
    # 64 components at 40 frames each need 2560 of the 2960 frames: holding ~1000 out would shrink the UBM.
    config = UBMConfig(n_components=64, min_frames_per_component=40)
    kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=config, cohort_size=4)
    assert n_frames == 2960 and kept is pool and n_held_out == 0
    # Allowed once the UBM keeps its size without them.
    kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=UBMConfig(n_components=32,
                                                min_frames_per_component=40), cohort_size=4)  # fmt: skip
    assert n_held_out > 0 and sum(map(len, kept)) == n_frames - n_held_out


def test_train_ubm_from_audio_holds_the_cohort_segments_out(synthetic_corpus: Path, tmp_path: Path):
    config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4"])
    files = [paths[0] for paths in speakers_in_folder(synthetic_corpus).values()]
    result = train_ubm_from_audio(tmp_path / "model", files, config)
    store = ModelStore.open(tmp_path / "model")
    lengths = store.load_cohort()["segment_lengths"]
    assert len(lengths) == result.cohort_size == 4
    assert result.cohort_frames_held_out == lengths.sum() > 0
    features = extract_many(files, resolve_sample_rate(config.features, files))
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


def test_trial_list_formats(tmp_path: Path):
    kaldi = tmp_path / "kaldi.txt"
    kaldi.write_text("# comment\nalice a/1.wav target\nbob a/1.wav nontarget\n")
    trials = read_trial_list(kaldi)
    assert trials.format == "kaldi" and [(t.enroll, t.test, t.target) for t in trials.trials] == [
        ("alice", "a/1.wav", True),
        ("bob", "a/1.wav", False),
    ]
    vox = tmp_path / "veri_test.txt"
    vox.write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n0 id1/v/1.wav id2/w/2.wav\n"
    )
    trials = read_trial_list(vox)
    assert trials.format == "voxceleb" and [t.target for t in trials.trials] == [True, False]
    assert trials.trials[0].enroll == "id10270/x6uYqmx31kE/00001.wav"
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a.wav b.wav\n1 a.wav\n")
    with pytest.raises(DataError, match="bad.txt:2"):
        read_trial_list(bad)
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(DataError, match="no trials"):
        read_trial_list(tmp_path / "empty.txt")


def test_recording_resolver(tmp_path: Path):
    for relative in ("wav/id1/v/00001.wav", "spk/take.flac", "x/dup.wav", "y/dup.wav"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    resolver = RecordingResolver(tmp_path)
    assert resolver.find("id1/v/00001.wav") == tmp_path / "wav/id1/v/00001.wav"  # VoxCeleb's wav/ folder
    assert resolver.find("spk/take.flac") == tmp_path / "spk/take.flac"
    assert resolver.find("take") == tmp_path / "spk/take.flac"  # a unique file stem, as Kaldi ids are
    assert resolver.find("dup") is None  # ambiguous stems are not guessed
    assert resolver.find(str(tmp_path / "spk/take.flac")) == tmp_path / "spk/take.flac"
    with pytest.raises(DataError, match="no recording 'nothing'"):
        resolver.require("nothing", "trials.txt: trial 3")


def test_labelled_score_files(tmp_path: Path):
    path = tmp_path / "scores.txt"
    path.write_text("a x 2.0 target\nb x -1.0 nontarget\n0.5 target\n-0.5 nontarget\n")
    target, nontarget = read_labelled_scores(path)
    np.testing.assert_array_equal(target, [2.0, 0.5])
    np.testing.assert_array_equal(nontarget, [-1.0, -0.5])
    assert evaluate(path).metrics["eer"] == 0.0
    path.write_text("a x nan target\n")
    with pytest.raises(DataError, match="not finite"):
        read_labelled_scores(path)
    path.write_text("a x 1.0 maybe\n")
    with pytest.raises(DataError, match="label must be"):
        read_labelled_scores(path)
