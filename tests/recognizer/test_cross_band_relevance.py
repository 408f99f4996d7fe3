"""``enroll.cross_band_relevance_factor``: the main model of a band pair (``features.bands: auto``), which
compares recordings across bands and channels, adapts its speakers and its cohort with that relevance
factor; its companion and single-band models keep ``enroll.relevance_factor``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import check_cli_error, cli_invoke

from spkid.recognizer import Recognizer, enroll_from_audio, load_config, train_ubm_from_audio
from spkid.recognizer.bands import COMPANION_DIR, companion_of
from spkid.recognizer.level_choice import LEVEL_KEPT_DIR
from spkid.store import MANIFEST_FILE, ModelStore
from spkid.ubm import map_adapt

SMALL = ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4"]


def _train(model: Path, voices: dict, rate: int, *settings: str) -> Path:
    pool = [path for files in voices[rate].values() for path in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, *settings]))
    return model


def _relevance(model: Path) -> float:
    return ModelStore.open(model).enroll_config["relevance_factor"]


def test_the_main_model_of_a_pair_adapts_across_bands_and_its_companion_within(
    tmp_path: Path, voices: dict
) -> None:
    model = _train(tmp_path / "model", voices, 16000)  # the configs' defaults: bands auto, 16 and 4
    assert companion_of(model) == model / COMPANION_DIR
    assert (_relevance(model), _relevance(model / COMPANION_DIR)) == (16.0, 4.0)
    assert (_relevance(model / LEVEL_KEPT_DIR), _relevance(model / LEVEL_KEPT_DIR / COMPANION_DIR)) == (
        16.0,
        4.0,
    )
    enroll_from_audio(model, {"spk01": voices[16000]["spk01"][:2]})
    for folder, factor, other in ((model, 16.0, 4.0), (model / COMPANION_DIR, 4.0, 16.0)):
        recognizer = Recognizer.open(folder)
        features = list(recognizer.extract(voices[16000]["spk01"][:2]))
        stored = recognizer.store.load_speaker("spk01").means_
        expected = map_adapt(recognizer.ubm, np.concatenate(features), relevance_factor=factor).means_
        elsewise = map_adapt(recognizer.ubm, np.concatenate(features), relevance_factor=other).means_
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)  # statistics stored as float32
        assert np.abs(stored - elsewise).max() > 1e-2  # the two factors give models far apart


def test_the_main_models_cohort_is_the_one_its_relevance_factor_makes(tmp_path: Path, voices: dict) -> None:
    paired = _train(tmp_path / "paired", voices, 16000, "features.cmvn=adaptive_level")
    plain16 = _train(
        tmp_path / "r16",
        voices,
        16000,
        "features.cmvn=adaptive_level",
        "enroll.relevance_factor=16",
        "enroll.cross_band_relevance_factor=null",
    )
    same = ModelStore.open(paired).load_cohort(), ModelStore.open(plain16).load_cohort()
    np.testing.assert_array_equal(same[0]["model_means"], same[1]["model_means"])
    companions = (ModelStore.open(folder / COMPANION_DIR).load_cohort() for folder in (paired, plain16))
    assert not np.array_equal(*(arrays["model_means"] for arrays in companions))


def test_a_single_model_keeps_the_relevance_factor(tmp_path: Path, voices: dict) -> None:
    single = _train(tmp_path / "single", voices, 16000, "features.bands=single")
    # a 16 kHz front-end on an 8 kHz pool: no wideband recording for a companion, so no pair
    alone = _train(
        tmp_path / "alone", voices, 8000, "features.sample_rate=16000", "features.cmvn=adaptive_level"
    )
    off = _train(tmp_path / "off", voices, 16000, "enroll.cross_band_relevance_factor=null")
    assert companion_of(alone) is None
    assert (_relevance(single), _relevance(alone), _relevance(off), _relevance(off / COMPANION_DIR)) == (
        4.0,
        4.0,
        4.0,
        4.0,
    )


def test_a_pair_made_before_the_setting_keeps_its_relevance(tmp_path: Path, voices: dict) -> None:
    model = _train(tmp_path / "model", voices, 16000, "features.cmvn=adaptive_level")
    manifest_path = model / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["enroll_config"] = {"relevance_factor": 4.0, "adapt": ["means"]}  # as an older spkid wrote it
    manifest_path.write_text(json.dumps(manifest))
    enroll_from_audio(model, {"spk02": voices[16000]["spk02"][:2]})
    recognizer = Recognizer.open(model)
    assert recognizer.enroll_config.cross_band_relevance_factor is None
    features = np.concatenate(list(recognizer.extract(voices[16000]["spk02"][:2])))
    expected = map_adapt(recognizer.ubm, features, relevance_factor=4.0).means_
    np.testing.assert_allclose(recognizer.store.load_speaker("spk02").means_, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("value", ["-1", "fast"])
def test_a_bad_cross_band_relevance_factor_is_a_one_line_error(tmp_path: Path, value: str) -> None:
    result = cli_invoke(
        "train-ubm", tmp_path / "model", tmp_path, "--set", f"enroll.cross_band_relevance_factor={value}"
    )
    check_cli_error(result, "enroll.cross_band_relevance_factor")
    assert not (tmp_path / "model").exists()
