"""``features.bands: auto``: a wideband pool's model holds a telephone-band main model and a wideband
companion, enrollment keeps the companion to speakers enrolled on wideband audio only, and identification
and verification score each recording with the model whose band both sides have."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import check_cli_error, check_cli_ok, cli_invoke

from spkid.recognizer import (
    describe_model,
    enroll_from_audio,
    identify,
    load_config,
    remove_speaker,
    train_ubm_from_audio,
    verify,
)
from spkid.recognizer.bands import COMPANION_DIR, NARROWBAND_COMPANION_DIR, companion_of
from spkid.recognizer.routing import route_recordings
from spkid.store import ModelStore

SMALL = ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4"]


@pytest.fixture(scope="module")
def banded(tmp_path_factory: pytest.TempPathFactory, voices: dict) -> Path:
    """A two-front-end model trained on the 16 kHz voices, its three speakers enrolled on 16 kHz audio."""
    model = tmp_path_factory.mktemp("banded") / "model"
    pool = [path for files in voices[16000].values() for path in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.bands=auto"]))
    enroll_from_audio(model, {name: files[:2] for name, files in voices[16000].items()})
    return model


def _scores(result: object) -> dict[str, dict[str, float]]:
    return {found.recording: dict(found.scores) for found in result.results}


def test_a_wideband_pool_gets_a_telephone_band_main_model_and_a_wideband_companion(banded: Path) -> None:
    main = ModelStore.open(banded).feature_config
    companion = ModelStore.open(banded / COMPANION_DIR).feature_config
    assert (main["f_min_hz"], main["f_max_hz"], main["bands"]) == (300.0, 3800.0, "auto")
    assert (companion["f_min_hz"], companion["f_max_hz"], companion["bands"]) == (20.0, 7600.0, "single")
    assert main["sample_rate"] == companion["sample_rate"] == 16000
    assert sorted(ModelStore.open(banded / COMPANION_DIR).speakers()) == ["spk01", "spk02", "spk03"]


def test_the_companion_has_at_most_wideband_components(tmp_path: Path, voices: dict) -> None:
    pool = [path for files in voices[16000].values() for path in files]
    settings = ["ubm.n_components=8", "ubm.wideband_components=4", "ubm.max_iter=2", "score.cohort_size=4"]
    train_ubm_from_audio(tmp_path / "model", pool, load_config(None, [*settings, "features.bands=auto"]))
    assert ModelStore.open(tmp_path / "model").ubm_shape[0] == 8
    assert ModelStore.open(tmp_path / "model" / COMPANION_DIR).ubm_shape[0] == 4


def test_no_companion_for_a_single_band(tmp_path: Path, voices: dict) -> None:
    pool = [path for files in voices[16000].values() for path in files]
    result = train_ubm_from_audio(
        tmp_path / "model", pool, load_config(None, [*SMALL, "features.bands=single"])
    )
    assert result.companion is None and companion_of(tmp_path / "model") is None
    assert ModelStore.open(tmp_path / "model").feature_config["f_min_hz"] == 20.0


def test_a_narrowband_pool_gets_a_telephone_band_main_model_and_a_narrowband_companion(
    tmp_path: Path, voices: dict
) -> None:
    model = tmp_path / "model"
    pool = [path for files in voices[8000].values() for path in files]
    result = train_ubm_from_audio(model, pool, load_config(None, SMALL))
    assert result.sample_rate == 8000 and result.companion == model / NARROWBAND_COMPANION_DIR
    assert companion_of(model) == model / NARROWBAND_COMPANION_DIR and not (model / COMPANION_DIR).exists()
    main = ModelStore.open(model).feature_config
    companion = ModelStore.open(result.companion).feature_config
    assert (main["f_min_hz"], main["f_max_hz"], main["bands"]) == (300.0, 3800.0, "auto")
    assert (companion["f_min_hz"], companion["f_max_hz"], companion["bands"]) == (20.0, 3800.0, "single")
    assert main["sample_rate"] == companion["sample_rate"] == 8000
    # a bottom already at 300 Hz leaves nothing for a companion to add
    raised = load_config(None, [*SMALL, "features.f_min_hz=300"])
    assert train_ubm_from_audio(tmp_path / "raised", pool, raised).companion is None


def test_narrowband_comparisons_are_scored_by_the_narrowband_companion(tmp_path: Path, voices: dict) -> None:
    model = tmp_path / "model"
    train_ubm_from_audio(
        model, [path for files in voices[8000].values() for path in files], load_config(None, SMALL)
    )
    enroll_from_audio(model, {name: files[:2] for name, files in voices[8000].items()})
    companion = model / NARROWBAND_COMPANION_DIR
    assert sorted(ModelStore.open(companion).speakers()) == ["spk01", "spk02", "spk03"]
    narrow_test, wide_test = voices[8000]["spk01"][3], voices[16000]["spk01"][3]
    assert route_recordings(model, [narrow_test, wide_test]) == [
        (companion, [narrow_test]),
        (model, [wide_test]),
    ]
    routed = _scores(identify(model, [narrow_test], top_k=0))[str(narrow_test)]
    assert routed == _scores(identify(companion, [narrow_test], top_k=0))[str(narrow_test)]
    assert describe_model(model).narrowband_speakers == ["spk01", "spk02", "spk03"]
    assert describe_model(model).wideband_speakers is None
    # a speaker enrolled on wideband audio is not in the narrowband companion: everyone on the main model
    enroll_from_audio(model, {"spk03": voices[16000]["spk03"][:2]}, replace=True)
    assert sorted(ModelStore.open(companion).speakers()) == ["spk01", "spk02"]
    assert route_recordings(model, [narrow_test]) == [(model, [narrow_test])]
    assert route_recordings(model, [narrow_test], speaker="spk01") == [(companion, [narrow_test])]


def test_a_mixed_pool_trains_the_companion_on_its_wideband_recordings_only(
    tmp_path: Path, voices: dict
) -> None:
    wide = [path for files in voices[16000].values() for path in files]
    narrow = [path for files in voices[8000].values() for path in files[:2]]  # less audio: a 16 kHz front-end
    result = train_ubm_from_audio(tmp_path / "model", [*wide, *narrow], load_config(None, SMALL))
    assert result.n_files == len(wide) + len(narrow) and result.sample_rate == 16000
    assert result.companion == tmp_path / "model" / COMPANION_DIR
    # the companion's EM saw the wideband files' frames only: its UBM is the one trained on them alone
    alone = train_ubm_from_audio(tmp_path / "alone", wide, load_config(None, SMALL))
    np.testing.assert_array_equal(
        ModelStore.open(result.companion).load_ubm().means_,
        ModelStore.open(alone.companion).load_ubm().means_,
    )
    # an 8 kHz pool forced to a 16 kHz front-end has no wideband recording: no companion
    forced = load_config(None, [*SMALL, "features.sample_rate=16000"])
    assert train_ubm_from_audio(tmp_path / "forced", narrow * 3, forced).companion is None


def test_wideband_tests_are_scored_by_the_companion_and_narrowband_ones_by_the_main_model(
    banded: Path, voices: dict
) -> None:
    wide_tests = [files[3] for files in voices[16000].values()]
    narrow_tests = [files[3] for files in voices[8000].values()]
    mixed = [wide_tests[0], narrow_tests[0], wide_tests[1], narrow_tests[1]]
    routed = _scores(identify(banded, mixed, top_k=0))
    assert list(routed) == [str(path) for path in mixed]  # input order kept
    by_companion = _scores(identify(banded / COMPANION_DIR, wide_tests[:2], top_k=0))
    for path in wide_tests[:2]:
        assert routed[str(path)] == by_companion[str(path)]
    # the main model alone: the same directory without its companion
    for path in narrow_tests[:2]:
        assert route_recordings(banded, [path]) == [(banded, [path])]
    assert route_recordings(banded, wide_tests[:1]) == [(banded / COMPANION_DIR, wide_tests[:1])]
    checked = verify(banded, "spk01", mixed)
    assert [result.recording for result in checked.results] == [str(path) for path in mixed]
    wide_alone = verify(banded / COMPANION_DIR, "spk01", [wide_tests[0]]).results[0].score
    assert checked.results[0].score == pytest.approx(wide_alone, abs=0)


def test_a_speaker_enrolled_on_narrowband_audio_keeps_everyone_on_the_main_model(
    tmp_path: Path, banded: Path, voices: dict
) -> None:
    model = tmp_path / "model"
    pool = [path for files in voices[16000].values() for path in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.bands=auto"]))
    enroll_from_audio(model, {name: files[:2] for name, files in voices[16000].items()})
    wide_test = [voices[16000]["spk02"][3]]
    assert route_recordings(model, wide_test)[0][0] == model / COMPANION_DIR
    # re-enrolled from telephone-rate audio: out of the companion, so a ranking stays on one scale
    enroll_from_audio(model, {"spk03": voices[8000]["spk03"][:2]}, replace=True)
    assert sorted(ModelStore.open(model / COMPANION_DIR).speakers()) == ["spk01", "spk02"]
    assert route_recordings(model, wide_test) == [(model, wide_test)]
    assert route_recordings(model, wide_test, speaker="spk02")[0][0] == model / COMPANION_DIR
    assert route_recordings(model, wide_test, speaker="spk03") == [(model, wide_test)]
    # --add of narrowband audio takes a speaker out; removal takes it out of both
    enroll_from_audio(model, {"spk02": voices[8000]["spk02"][2:3]}, add=True)
    assert ModelStore.open(model / COMPANION_DIR).speakers() == ["spk01"]
    remove_speaker(model, "spk01")
    assert ModelStore.open(model / COMPANION_DIR).speakers() == []
    assert sorted(ModelStore.open(model).speakers()) == ["spk02", "spk03"]


def test_add_of_wideband_audio_grows_the_companion_speaker_too(tmp_path: Path, voices: dict) -> None:
    model = tmp_path / "model"
    pool = [path for files in voices[16000].values() for path in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.bands=auto"]))
    files = voices[16000]["spk01"]
    enroll_from_audio(model, {"spk01": files[:1]})
    enroll_from_audio(model, {"spk01": files[1:2]}, add=True)
    other = tmp_path / "other"
    train_ubm_from_audio(other, pool, load_config(None, [*SMALL, "features.bands=auto"]))
    enroll_from_audio(other, {"spk01": files[:2]})
    grown = ModelStore.open(model / COMPANION_DIR).load_speaker_stats("spk01")
    at_once = ModelStore.open(other / COMPANION_DIR).load_speaker_stats("spk01")
    np.testing.assert_allclose(grown.first, at_once.first, rtol=1e-5, atol=1e-4)


def test_cli_retrain_over_a_banded_model_replaces_its_companion(tmp_path: Path, voices: dict) -> None:
    pool = [str(path) for files in voices[16000].values() for path in files]
    small = [arg for setting in SMALL for arg in ("--set", setting)]
    result = cli_invoke("train-ubm", tmp_path / "model", *pool, *small, "--set", "features.bands=auto")
    check_cli_ok(result)
    assert companion_of(tmp_path / "model") is not None
    assert f"wideband companion up to 7600 Hz in {tmp_path / 'model' / COMPANION_DIR}" in result.stdout
    single = ("--set", "features.bands=single")
    check_cli_ok(cli_invoke("train-ubm", tmp_path / "model", *pool, *small, *single, "--overwrite"))
    assert companion_of(tmp_path / "model") is None


def test_cli_names_the_bands_the_models_were_given(tmp_path: Path, voices: dict) -> None:
    pool = [str(path) for files in voices[8000].values() for path in files]
    small = [arg for setting in SMALL for arg in ("--set", setting)]
    result = cli_invoke("train-ubm", tmp_path / "model", *pool, *small, "--set", "features.f_min_hz=100")
    check_cli_ok(result)
    assert "this model's band starts at 300 Hz" in result.stdout
    assert (
        f"narrowband companion from 100 Hz in {tmp_path / 'model' / NARROWBAND_COMPANION_DIR}"
        in result.stdout
    )


def test_the_service_scores_each_recording_with_the_model_the_cli_uses(banded: Path, voices: dict) -> None:
    from spkid.serve.service import SpeakerService

    mixed = [voices[16000]["spk01"][3], voices[8000]["spk02"][3], voices[16000]["spk03"][3]]
    service = SpeakerService(banded, allow_paths=True)
    served = service.identify(paths=[str(path) for path in mixed], top_k=0)
    assert [dict(found.scores) for found in served] == list(
        _scores(identify(banded, mixed, top_k=0)).values()
    )
    checked = service.verify("spk01", paths=[str(path) for path in mixed])
    expected = verify(banded, "spk01", mixed).results
    assert [(c.score, c.threshold) for c in checked] == [(c.score, c.threshold) for c in expected]
    # the two models' thresholds differ: each recording was decided on its own model's
    assert checked[0].threshold != checked[1].threshold


def test_trial_scoring_routes_each_trial_as_verification_does(
    tmp_path: Path, banded: Path, voices: dict
) -> None:
    from spkid.recognizer import score_trials

    root = tmp_path / "audio"
    for rate in (8000, 16000):  # test ids are file stems: one folder, distinct names per rate
        for files in voices[rate].values():
            for path in files[3:]:
                target = root / f"{path.stem}_{rate}.wav"
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(path.read_bytes())
    trials = tmp_path / "trials.txt"
    trials.write_text(
        "spk01 spk01_04_16000 target\nspk01 spk02_04_8000 nontarget\nspk02 spk02_04_16000 target\n"
    )
    result = score_trials(banded, trials, output=tmp_path / "scores.txt", audio_root=root)
    lines = [line.split() for line in result.output.read_text().splitlines()[1:]]
    assert [(enroll, test) for enroll, test, _ in lines] == [
        ("spk01", "spk01_04_16000"),
        ("spk01", "spk02_04_8000"),
        ("spk02", "spk02_04_16000"),
    ]
    expected = [
        verify(banded, "spk01", [root / "spk01_04_16000.wav"]).results[0].score,
        verify(banded, "spk01", [root / "spk02_04_8000.wav"]).results[0].score,
        verify(banded, "spk02", [root / "spk02_04_16000.wav"]).results[0].score,
    ]
    np.testing.assert_allclose([float(score) for _, _, score in lines], expected, rtol=1e-5, atol=1e-5)


def test_list_shows_the_wideband_companion(tmp_path: Path, voices: dict) -> None:

    model = tmp_path / "model"
    pool = [path for files in voices[16000].values() for path in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.bands=auto"]))
    enroll_from_audio(model, {"spk01": voices[16000]["spk01"][:2], "spk02": voices[8000]["spk02"][:2]})
    assert describe_model(model).wideband_speakers == ["spk01"]
    result = cli_invoke("list", model)
    check_cli_ok(result)
    assert "2 speakers (1 also in the wideband companion)" in result.stderr
    assert describe_model(model / COMPANION_DIR).wideband_speakers is None


def test_a_two_front_end_model_is_calibrated_as_one_system(
    tmp_path: Path, banded: Path, voices: dict
) -> None:
    model = tmp_path / "model"
    shutil.copytree(banded, model)
    mixed = [voices[16000]["spk01"][3], voices[8000]["spk01"][3]]
    raw = _scores(identify(model, mixed, top_k=0))
    scores = tmp_path / "scores.txt"
    scores.write_text(
        "spk01 a 2.0 target\nspk01 b -1.0 nontarget\nspk01 c 0.5 target\nspk01 d 0.0 nontarget\n"
    )
    check_cli_ok(cli_invoke("calibrate", model, scores))
    calibration = ModelStore.open(model).load_calibration()
    assert calibration is not None
    assert ModelStore.open(model / COMPANION_DIR).load_calibration() == calibration
    # each recording is still scored by the model whose band both sides have, then mapped by one calibration
    assert route_recordings(model, mixed) == [(model / COMPANION_DIR, mixed[:1]), (model, mixed[1:])]
    calibrated = _scores(identify(model, mixed, top_k=0))
    for recording, scores_before in raw.items():
        expected = {
            name: calibration["scale"] * score + calibration["offset"]
            for name, score in scores_before.items()
        }
        assert calibrated[recording] == pytest.approx(expected, rel=1e-9)
    # an interrupted calibrate (the companion holds another calibration): the main model scores everything
    ModelStore.open(model / COMPANION_DIR).save_calibration(
        {**calibration, "offset": calibration["offset"] + 1}
    )
    assert route_recordings(model, mixed) == [(model, mixed)]


def test_an_enrollment_that_fails_or_skips_a_speaker_keeps_its_companion_copy(
    tmp_path: Path, banded: Path, voices: dict
) -> None:
    model = tmp_path / "model"
    shutil.copytree(banded, model)

    def companion_means(name: str) -> np.ndarray:
        return ModelStore.open(model / COMPANION_DIR).load_speaker(name).means_

    before = {name: companion_means(name) for name in ("spk01", "spk02")}
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    # bad input: the error, and nothing stored lost (the speaker leaves the companion first, then comes back)
    check_cli_error(cli_invoke("enroll", model, "--speaker", "spk01", bad, "--replace"), str(bad))
    np.testing.assert_array_equal(companion_means("spk01"), before["spk01"])
    # --skip-bad: spk01 is left without a usable file and keeps both copies; spk02 is replaced in both
    enrolled = enroll_from_audio(
        model, {"spk01": [bad], "spk02": voices[16000]["spk02"][2:4]}, replace=True, skip_bad=True
    ).enrolled
    assert list(enrolled) == ["spk02"]
    assert sorted(ModelStore.open(model / COMPANION_DIR).speakers()) == ["spk01", "spk02", "spk03"]
    np.testing.assert_array_equal(companion_means("spk01"), before["spk01"])
    assert not np.array_equal(companion_means("spk02"), before["spk02"])
