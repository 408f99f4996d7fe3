"""``features.cmvn: auto``: train-ubm trains a loudness-removing and a loudness-keeping model, and the first
enrollment keeps the one its recordings call for, leaving a model equal to one trained with that setting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import check_cli_ok, cli_invoke
from scipy.stats import f_oneway

from spkid.corpora.synthetic import make_speakers
from spkid.errors import FeatureError
from spkid.features import FeatureConfig, extract
from spkid.recognizer import describe_model, enroll_from_audio, identify, load_config, train_ubm_from_audio
from spkid.recognizer.bands import COMPANION_DIR
from spkid.recognizer.level_choice import (
    LEVEL_CHOICE_FILE,
    LEVEL_KEPT_DIR,
    level_consistency,
    settle_level_choice,
)
from spkid.store import ModelStore

SMALL = ["ubm.n_components=8", "ubm.wideband_components=4", "ubm.max_iter=3", "score.cohort_size=2"]


def test_level_consistency_equals_the_one_way_anova_share() -> None:
    rng = np.random.default_rng(3)
    groups = [rng.normal(mean, 1.0, size) for mean, size in ((0, 4), (2, 3), (5, 6), (1, 2))]
    n, k = sum(len(group) for group in groups), len(groups)
    statistic = f_oneway(*groups).statistic  # MS between / MS within, an independent computation
    expected = 1.0 - n / (statistic * (k - 1) + n - k)
    levels = {f"s{i}": group.tolist() for i, group in enumerate(groups)}
    assert level_consistency(levels) == pytest.approx(expected, rel=1e-12)
    shifted = {name: [value + 40.0 for value in values] for name, values in levels.items()}
    assert level_consistency(shifted) == pytest.approx(expected, rel=1e-9)  # a common gain changes nothing


def test_level_consistency_falls_with_a_level_per_recording_and_needs_three_speakers() -> None:
    rng = np.random.default_rng(4)
    speaker_levels = rng.normal(0.0, 5.0, 20)
    steady = {f"s{i}": list(level + rng.normal(0.0, 1.0, 5)) for i, level in enumerate(speaker_levels)}
    gains = {name: [value + rng.uniform(-24, 0) for value in values] for name, values in steady.items()}
    assert level_consistency(steady) > 0.8 > 0.5 > level_consistency(gains)
    assert level_consistency({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0]}) is None  # 2 with two recordings
    assert level_consistency({"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [1.0, 1.0]}) == 0.0


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    return make_speakers(
        tmp_path_factory.mktemp("voices"), n_speakers=5, n_utterances=4, duration_s=2.0, seed=5
    )


def at_levels(voices: dict[str, list[Path]], folder: Path, gain_db) -> dict[str, list[Path]]:
    """Copies of the first 3 recordings of each of ``voices``, scaled by ``gain_db(speaker, recording)`` dB
    (indices)."""
    copies: dict[str, list[Path]] = {}
    for i, (name, files) in enumerate(voices.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        copies[name] = []
        for j, file in enumerate(files[:3]):
            samples, rate = soundfile.read(file)
            copies[name].append(folder / name / file.name)
            soundfile.write(copies[name][-1], samples * 10 ** (gain_db(i, j) / 20), rate)
    return copies


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, voices: dict) -> Path:
    """A ``cmvn: auto`` model on the voices, not enrolled (copy it before enrolling)."""
    model = tmp_path_factory.mktemp("auto") / "model"
    pool = [file for files in voices.values() for file in files]
    result = train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.cmvn=auto"]))
    assert result.level_kept == model / LEVEL_KEPT_DIR
    return model


def test_train_ubm_with_auto_trains_a_model_with_and_one_without_loudness(trained: Path) -> None:
    assert ModelStore.open(trained).feature_config["cmvn"] == "adaptive_level"
    assert ModelStore.open(trained / COMPANION_DIR).feature_config["cmvn"] == "adaptive_level"
    assert ModelStore.open(trained / LEVEL_KEPT_DIR).feature_config["cmvn"] == "none"
    assert ModelStore.open(trained / LEVEL_KEPT_DIR / COMPANION_DIR).feature_config["cmvn"] == "none"
    assert describe_model(trained).cmvn == "pending"  # what spkid list says until the first enrollment


def _direct_model(tmp_path: Path, voices: dict, cmvn: str) -> Path:
    pool = [file for files in voices.values() for file in files]
    train_ubm_from_audio(tmp_path / cmvn, pool, load_config(None, [*SMALL, f"features.cmvn={cmvn}"]))
    return tmp_path / cmvn


@pytest.mark.parametrize(
    ("gain_db", "kept", "cmvn"),
    [
        (lambda speaker, recording: -9.0 * speaker, True, "none"),  # each speaker at a level of their own
        (lambda speaker, recording: -6.0 * ((speaker + 2 * recording) % 5), False, "adaptive_level"),
    ],
)
def test_the_first_enrollment_keeps_the_model_its_recordings_call_for(
    tmp_path: Path, voices: dict, trained: Path, gain_db, kept: bool, cmvn: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    speakers = at_levels(voices, tmp_path / "audio", gain_db)
    result = enroll_from_audio(model, speakers)
    assert result.level_choice is not None and result.level_choice.kept is kept
    assert result.level_choice.n_speakers == 5 and result.level_choice.n_recordings == 15
    assert not (model / LEVEL_KEPT_DIR).exists()
    assert json.loads((model / LEVEL_CHOICE_FILE).read_text())["kept"] is kept
    assert ModelStore.open(model).feature_config["cmvn"] == cmvn
    assert ModelStore.open(model / COMPANION_DIR).feature_config["cmvn"] == cmvn
    assert describe_model(model).cmvn == cmvn
    # the model left is the one trained with that setting: same UBMs, same scores
    direct = _direct_model(tmp_path, voices, cmvn)
    enroll_from_audio(direct, speakers)
    for folder in (Path(), Path(COMPANION_DIR)):
        left, reference = (ModelStore.open(path / folder).load_ubm() for path in (model, direct))
        np.testing.assert_array_equal(left.means_, reference.means_)
    tests = [files[3] for files in voices.values()]
    scores = [identify(path, tests).results for path in (model, direct)]
    assert [dict(found.scores) for found in scores[0]] == [dict(found.scores) for found in scores[1]]
    # a later enrollment has nothing to choose
    assert enroll_from_audio(model, {"late": voices["spk01"][3:]}).level_choice is None


def test_telephone_recordings_with_a_wideband_pool_remove_the_loudness(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    narrowband = {}
    for i, (name, files) in enumerate(voices.items()):
        (tmp_path / name).mkdir()
        narrowband[name] = []
        for file in files[:3]:
            samples, rate = soundfile.read(file)
            narrowband[name].append(tmp_path / name / file.name)
            soundfile.write(narrowband[name][-1], samples[::2] * 10 ** (-9.0 * i / 20), rate // 2)
    shutil.copytree(trained, tmp_path / "model")
    choice = enroll_from_audio(tmp_path / "model", narrowband).level_choice
    assert choice is not None and choice.other_band and not choice.kept
    assert "another band than the UBM pool's" in choice.describe()


def test_too_few_speakers_to_measure_remove_the_loudness(tmp_path: Path, voices: dict, trained: Path) -> None:
    shutil.copytree(trained, tmp_path / "model")
    two = {name: files for name, files in list(voices.items())[:2]}
    choice = enroll_from_audio(tmp_path / "model", two).level_choice
    assert choice is not None and choice.consistency is None and not choice.kept
    assert "too few speakers" in choice.describe()
    assert ModelStore.open(tmp_path / "model").feature_config["cmvn"] == "adaptive_level"


def test_an_interrupted_switch_is_finished_by_the_next_enrollment(
    tmp_path: Path, voices: dict, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    speakers = at_levels(voices, tmp_path / "audio", lambda speaker, recording: -9.0 * speaker)
    calls = []

    def crash(*args: object) -> None:  # the root is the no-CMVN model; its cohort and companion are not
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelStore, "save_cohort", crash)
    with pytest.raises(KeyboardInterrupt):
        enroll_from_audio(model, speakers)
    monkeypatch.undo()
    assert calls and (model / LEVEL_KEPT_DIR).is_dir()
    assert ModelStore.open(model / COMPANION_DIR).feature_config["cmvn"] == "adaptive_level"  # not yet
    (model / "manifest.json").unlink()  # as if interrupted while ModelStore.create rewrote the directory
    result = enroll_from_audio(model, speakers)
    assert result.level_choice is not None and result.level_choice.kept
    assert not (model / LEVEL_KEPT_DIR).exists()
    assert ModelStore.open(model / COMPANION_DIR).feature_config["cmvn"] == "none"
    assert (model / "cohort.npz").is_file() and len(ModelStore.open(model).speakers()) == 5
    assert ModelStore.open(model).feature_config["cmvn"] == "none"


def test_a_model_without_a_second_model_has_nothing_to_settle(tmp_path: Path, voices: dict) -> None:
    model = _direct_model(tmp_path, voices, "adaptive_level")
    assert settle_level_choice(model, voices) is None
    assert settle_level_choice(tmp_path / "missing", voices) is None  # ModelStore.open then says "no model"


def test_features_are_never_extracted_with_auto_itself(voices: dict) -> None:
    file = next(iter(voices.values()))[0]
    with pytest.raises(FeatureError, match="features.cmvn='auto' is settled by train-ubm"):
        extract(file, FeatureConfig(cmvn="auto"))


def test_the_cli_says_what_train_ubm_made_and_what_the_first_enrollment_chose(
    tmp_path: Path, voices: dict
) -> None:
    pool = [file for files in voices.values() for file in files]
    settings = [item for setting in [*SMALL, "features.cmvn=auto"] for item in ("--set", setting)]
    trained = cli_invoke("train-ubm", tmp_path / "model", *pool, *settings)
    check_cli_ok(trained)
    assert "features.cmvn auto: a second model without CMVN in" in trained.stdout
    folder = tmp_path / "speakers"
    at_levels(voices, folder, lambda speaker, recording: -9.0 * speaker)
    enrolled = cli_invoke("enroll", tmp_path / "model", folder)
    check_cli_ok(enrolled)
    assert "features.cmvn auto: loudness kept (no CMVN): " in enrolled.stderr  # stdout: one line per speaker
    assert [line.split()[0] for line in enrolled.stdout.splitlines()] == ["enrolled"] * 5


def test_train_ubm_with_auto_decodes_the_pool_once_per_front_end(
    tmp_path: Path, voices: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spkid.features.batch as batch

    decoded = []
    real = batch.extract_many

    def counting(paths, config, **options):  # noqa: ANN001, ANN003, ANN202 - a spy on the real function
        paths = list(paths)
        decoded.append((config.f_min_hz, config.f_max_hz, config.cmvn, len(paths)))
        return real(paths, config, **options)

    monkeypatch.setattr(batch, "extract_many", counting)
    pool = [file for files in voices.values() for file in files]
    train_ubm_from_audio(tmp_path / "model", pool, load_config(None, [*SMALL, "features.cmvn=auto"]))
    # the main band and the wideband companion, each decoded once (un-normalised) for both models
    assert sorted(decoded) == [(20.0, 7600.0, "none", 20), (300.0, 3800.0, "none", 20)]
