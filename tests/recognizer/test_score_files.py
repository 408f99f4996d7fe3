"""Score-side data stored once: the calibration in a file of its own, each speaker's cohort statistics.

Old model directories kept the calibration inside ``cohort.npz`` and no cohort statistics with their
speakers: both still work (the statistics are computed on load, once per process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spkid.errors import StoreError
from spkid.recognizer import Recognizer, enroll_from_audio, load_config, train_ubm_from_audio
from spkid.score import Scorer, znorm_statistics
from spkid.store import CALIBRATION_FILE, COHORT_FILE, ModelStore

SMALL = ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4"]
CALIBRATION = {"scale": 0.8, "offset": -1.5, "p_effective": 0.5}


@pytest.fixture(scope="module")
def enrolled(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("score_files") / "model"
    pool = sorted((synthetic_corpus / "spk05").glob("*.wav")) + sorted(
        (synthetic_corpus / "spk06").glob("*.wav")
    )
    train_ubm_from_audio(model, pool, load_config(None, SMALL))
    enroll_from_audio(
        model, {name: sorted((synthetic_corpus / name).glob("*.wav"))[:3] for name in ("spk01", "spk02")}
    )
    return model


def test_calibration_has_a_file_of_its_own(enrolled: Path, tmp_path: Path) -> None:
    model = Path(__import__("shutil").copytree(enrolled, tmp_path / "model"))
    cohort_before = (model / COHORT_FILE).read_bytes()
    store = ModelStore.open(model)
    assert store.load_calibration() is None and Recognizer(store).calibrator is None
    store.save_calibration(CALIBRATION)
    assert (model / CALIBRATION_FILE).is_file() and (model / COHORT_FILE).read_bytes() == cohort_before
    assert ModelStore.open(model).load_calibration() == CALIBRATION
    calibrator = Recognizer.open(model).calibrator
    assert (calibrator.scale_, calibrator.offset_) == (0.8, -1.5)


def test_a_calibration_kept_in_the_cohort_file_is_still_read(enrolled: Path, tmp_path: Path) -> None:
    model = Path(__import__("shutil").copytree(enrolled, tmp_path / "model"))
    store = ModelStore.open(model)
    arrays = store.load_cohort()
    arrays["calibration"] = np.array([0.8, -1.5, 0.5])  # how spkid before the calibration file stored it
    store.save_cohort(arrays)
    assert ModelStore.open(model).load_calibration() == CALIBRATION


def test_looking_for_a_legacy_calibration_reads_no_cohort_arrays(
    enrolled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Path(__import__("shutil").copytree(enrolled, tmp_path / "model"))

    def no_reading(self: ModelStore) -> None:
        raise AssertionError("the whole cohort file was read")

    monkeypatch.setattr(ModelStore, "load_cohort", no_reading)
    assert ModelStore.open(model).load_calibration() is None  # its member list names no calibration


def test_a_damaged_cohort_file_is_still_reported_where_a_calibration_is_looked_for(
    enrolled: Path, tmp_path: Path
) -> None:
    model = Path(__import__("shutil").copytree(enrolled, tmp_path / "model"))
    (model / COHORT_FILE).write_bytes(b"not a zip archive")
    with pytest.raises(StoreError, match=r"cohort.npz: cohort file"):
        ModelStore.open(model).load_calibration()


def test_a_damaged_or_foreign_calibration_is_refused(enrolled: Path, tmp_path: Path) -> None:
    model = Path(__import__("shutil").copytree(enrolled, tmp_path / "model"))
    (model / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(StoreError, match=r"calibration.json: unreadable calibration"):
        Recognizer.open(model)
    ModelStore.open(model).save_calibration(CALIBRATION)
    text = (
        (model / CALIBRATION_FILE)
        .read_text()
        .replace(ModelStore.open(model).manifest["files"]["ubm.npz"], "0" * 64)
    )
    (model / CALIBRATION_FILE).write_text(text)
    with pytest.raises(StoreError, match=r"calibration.json: made for a different UBM"):
        Recognizer.open(model)


def test_cohort_statistics_are_stored_at_enrollment(enrolled: Path) -> None:
    store = ModelStore.open(enrolled)
    recognizer = Recognizer(store)
    models = recognizer.speakers()
    impostor = Scorer(recognizer.ubm, models, top_c=recognizer.score_config.top_c).llr_many(
        recognizer.cohort.segments
    )
    mean, std = znorm_statistics(impostor)
    for index, name in enumerate(models):
        stored = store.cohort_stats[name]
        assert stored.top_c == recognizer.score_config.top_c
        assert stored.mean == pytest.approx(mean[index], abs=1e-6) and stored.std == pytest.approx(
            std[index], abs=1e-6
        )
    np.testing.assert_allclose(recognizer.default_thresholds(models), mean + 3.0 * std, atol=1e-5)


def test_thresholds_use_the_stored_statistics_without_scoring_the_cohort(
    enrolled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recognizer = Recognizer.open(enrolled)
    models = recognizer.speakers()
    calls = []
    monkeypatch.setattr(Scorer, "llr_many", lambda self, features: calls.append(len(features)))
    thresholds = recognizer.default_thresholds(models)
    assert calls == [] and np.all(np.isfinite(thresholds))


def test_models_without_stored_statistics_compute_them_once(
    enrolled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recognizer = Recognizer.open(enrolled)
    models = recognizer.speakers()
    expected = recognizer.default_thresholds(models)
    recognizer.store.cohort_stats.clear()  # as a speaker file written before they were stored
    original, calls = Scorer.llr_many, []

    def counting(self: Scorer, features: list) -> np.ndarray:
        calls.append(len(features))
        return original(self, features)

    monkeypatch.setattr(Scorer, "llr_many", counting)
    np.testing.assert_allclose(recognizer.default_thresholds(models), expected, atol=1e-5)
    np.testing.assert_allclose(recognizer.default_thresholds(models), expected, atol=1e-5)
    assert len(calls) == 1  # computed on the first call, cached for the second
