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
from spkid.errors import FeatureError, SpkidError, StoreError
from spkid.features import FeatureConfig, extract
from spkid.recognizer import (
    describe_model,
    enroll_from_audio,
    identify,
    load_config,
    remove_speaker,
    train_ubm_from_audio,
)
from spkid.recognizer.bands import COMPANION_DIR
from spkid.recognizer.level_choice import (
    ENROLLING_LOCK,
    LEVEL_CHOICE_FILE,
    LEVEL_KEPT_DIR,
    settle_level_choice,
)
from spkid.recognizer.level_rule import KEEP_LEVEL_CONSISTENCY as BOUND
from spkid.recognizer.level_rule import level_consistency, level_interval
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


@pytest.mark.parametrize(("share", "sizes"), [(0.6, [4] * 5), (0.3, [3] * 8), (0.8, [2, 3, 5, 2, 4, 6])])
def test_level_interval_covers_the_share_as_often_as_it_says(share: float, sizes: list[int]) -> None:
    rng = np.random.default_rng(7)
    covered, estimates = 0, []
    for _ in range(2000):  # a level per speaker (variance share) plus noise per recording (1 - share)
        levels = {
            f"s{i}": list(rng.normal(0.0, np.sqrt(share)) + rng.normal(0.0, np.sqrt(1 - share), size))
            for i, size in enumerate(sizes)
        }
        low, high = level_interval(levels, confidence=0.8)
        covered += low <= share <= high
        estimates.append(level_consistency(levels))
    tolerance = 0.03 if len(set(sizes)) == 1 else 0.05  # exact for equal sizes, close otherwise
    assert covered / 2000 == pytest.approx(0.8, abs=tolerance)
    assert np.median(estimates) < share  # what the interval mends: few speakers measure the share low
    assert level_interval({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0]}) is None
    assert level_interval({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0]}) == (1.0, 1.0)


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


@pytest.mark.parametrize(("n_joined", "kept"), [(1, True), (4, False)])
def test_telephone_recordings_with_a_wideband_pool_keep_the_loudness_only_when_short(
    tmp_path: Path, voices: dict, trained: Path, n_joined: int, kept: bool
) -> None:
    narrowband = {}  # 8 kHz recordings of 2 s (n_joined 1) or 8 s (4 utterances joined), a level per speaker
    for i, (name, files) in enumerate(voices.items()):
        (tmp_path / name).mkdir()
        narrowband[name] = []
        for j in range(3):
            joined = [soundfile.read(files[(j + k) % len(files)])[0] for k in range(n_joined)]
            narrowband[name].append(tmp_path / name / f"{j}.wav")
            soundfile.write(narrowband[name][-1], np.concatenate(joined)[::2] * 10 ** (-9.0 * i / 20), 8000)
    shutil.copytree(trained, tmp_path / "model")
    choice = enroll_from_audio(tmp_path / "model", narrowband).level_choice
    assert choice is not None and choice.other_band and choice.kept is kept
    assert choice.median_s == pytest.approx(2.0 * n_joined, abs=0.05)
    assert ("but are short" if kept else "and are long") in choice.describe()


def test_one_speaker_at_a_time_ends_where_all_at_once_does(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    four = {name: voices[name] for name in list(voices)[:4]}
    speakers = at_levels(four, tmp_path / "audio", lambda speaker, recording: 15.0 - 15.0 * speaker)
    at_once, one_by_one = tmp_path / "at_once", tmp_path / "one_by_one"
    shutil.copytree(trained, at_once)
    shutil.copytree(trained, one_by_one)
    assert enroll_from_audio(at_once, speakers).level_choice.kept
    a, b, c, d = speakers
    choices = [enroll_from_audio(one_by_one, {"gone": speakers[d]}).level_choice]
    remove_speaker(one_by_one, "gone")  # removed before the choice: stays out
    choices.append(enroll_from_audio(one_by_one, {a: speakers[a][:1]}).level_choice)
    choices.append(enroll_from_audio(one_by_one, {a: speakers[a][1:]}, add=True).level_choice)
    choices += [enroll_from_audio(one_by_one, {name: speakers[name]}).level_choice for name in (b, c, d)]
    assert [choice.pending for choice in choices] == [True] * 5 + [False] and choices[-1].kept
    assert choices[-2].consistency is not None and choices[-2].interval[0] < BOUND  # 3 speakers: unclear
    assert choices[-1].n_speakers == 4 and choices[-1].n_recordings == 12 and choices[-1].interval[0] >= BOUND
    assert "choice waits for 3 speakers" in choices[0].describe()
    assert describe_model(one_by_one).cmvn == "none" and not (one_by_one / LEVEL_KEPT_DIR).exists()
    assert ModelStore.open(one_by_one).speakers() == ModelStore.open(at_once).speakers() == [a, b, c, d]
    tests = [files[3] for files in four.values()]
    scores = [identify(path, tests).results for path in (one_by_one, at_once)]
    for ours, theirs in zip(*scores, strict=True):
        assert dict(ours.scores) == pytest.approx(dict(theirs.scores), rel=1e-5)


def test_an_unclear_share_waits_for_more_speakers_then_chooses_on_all(
    tmp_path: Path, voices: dict, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    speakers = at_levels(voices, tmp_path / "audio", lambda speaker, recording: 15.0 - 15.0 * speaker)
    at_once, one_by_one = tmp_path / "at_once", tmp_path / "one_by_one"
    shutil.copytree(trained, at_once)
    shutil.copytree(trained, one_by_one)
    assert enroll_from_audio(at_once, speakers).level_choice.kept
    names = list(speakers)
    monkeypatch.setattr("spkid.recognizer.level_rule.LEVEL_CONFIDENCE", 0.99999)  # every interval unclear
    choices = [enroll_from_audio(one_by_one, {name: speakers[name]}).level_choice for name in names[:4]]
    assert all(choice.pending for choice in choices)
    assert choices[-1].interval[0] < BOUND <= choices[-1].interval[1] and choices[-1].consistency > BOUND
    assert "choice waits for more speakers (" in choices[-1].describe()
    assert "% interval " in choices[-1].describe() and "4 speakers" in choices[-1].describe()
    monkeypatch.undo()
    last = enroll_from_audio(one_by_one, {names[4]: speakers[names[4]]}).level_choice
    assert not last.pending and last.kept and last.n_speakers == 5 and last.interval[0] >= BOUND
    assert describe_model(one_by_one).cmvn == "none" and not (one_by_one / LEVEL_KEPT_DIR).exists()
    tests = [files[3] for files in voices.values()]
    scores = [identify(path, tests).results for path in (one_by_one, at_once)]
    for ours, theirs in zip(*scores, strict=True):
        assert dict(ours.scores) == pytest.approx(dict(theirs.scores), rel=1e-5)


def test_ten_speakers_without_three_to_measure_stop_the_wait(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    singles = [file for files in voices.values() for file in files[:2]]  # 10 speakers of one recording
    choice = enroll_from_audio(model, {f"s{i:02d}": [file] for i, file in enumerate(singles)}).level_choice
    assert choice is not None and not choice.pending and not choice.kept and choice.consistency is None
    assert "too few speakers with two recordings" in choice.describe()
    assert not (model / LEVEL_KEPT_DIR).exists() and describe_model(model).cmvn == "adaptive_level"


def test_a_speaker_missing_from_the_second_model_settles_on_the_main_one(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    first = enroll_from_audio(model, {"spk01": voices["spk01"][:2]}).level_choice
    assert first is not None and first.pending and (model / LEVEL_KEPT_DIR).is_dir()
    assert describe_model(model).cmvn == "pending"
    ModelStore.open(model / LEVEL_KEPT_DIR).remove_speaker("spk01")  # as if interrupted between the models
    again = enroll_from_audio(model, {"spk01": voices["spk01"][:2]}, replace=True).level_choice
    assert again is not None and again.pending  # re-enrolled into both: the choice still waits
    ModelStore.open(model / LEVEL_KEPT_DIR).remove_speaker("spk01")
    assert enroll_from_audio(model, {"spk02": voices["spk02"][:2]}).level_choice is None
    assert not (model / LEVEL_KEPT_DIR).exists() and describe_model(model).cmvn == "adaptive_level"


def test_enrollments_run_one_at_a_time_while_the_choice_waits(
    tmp_path: Path, voices: dict, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import os

    import spkid.recognizer.enrollment as enrollment

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    held = []
    real = enrollment.record_levels

    def probe(model_dir, measured, *args):  # noqa: ANN001, ANN002, ANN202 - a spy on the real function
        other = os.open(Path(model_dir) / LEVEL_KEPT_DIR / ENROLLING_LOCK, os.O_RDWR)
        try:  # another enrollment (another open file) would wait here
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(list(measured))
        finally:
            os.close(other)
        return real(model_dir, measured, *args)

    monkeypatch.setattr(enrollment, "record_levels", probe)
    assert enroll_from_audio(model, {"spk01": voices["spk01"][:2]}).level_choice.pending
    assert held == [["spk01"]]


def test_a_damaged_second_model_stops_the_enrollment_with_a_way_out(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    enroll_from_audio(model, {"spk01": voices["spk01"][:2]})
    (model / LEVEL_KEPT_DIR / "manifest.json").write_text("{broken")
    with pytest.raises(StoreError, match=r"level-kept/manifest.json: unreadable model manifest .*; delete "):
        enroll_from_audio(model, {"spk02": voices["spk02"][:2]})
    assert ModelStore.open(model).speakers() == ["spk01"]  # nothing stored is lost
    shutil.rmtree(model / LEVEL_KEPT_DIR)  # the way out the message gives
    assert enroll_from_audio(model, {"spk02": voices["spk02"][:2]}).level_choice is None
    assert ModelStore.open(model).speakers() == ["spk01", "spk02"]


def test_a_bad_file_in_the_enrollment_that_would_choose_stops_it_before_the_choice(
    tmp_path: Path, voices: dict, trained: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    for name in ("spk01", "spk02"):
        assert enroll_from_audio(model, {name: voices[name][:2]}).level_choice.pending
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    with pytest.raises(SpkidError, match="broken.wav"):  # the enrollment's own error
        enroll_from_audio(model, {"spk03": [*voices["spk03"][:2], broken]})
    assert (model / LEVEL_KEPT_DIR / "manifest.json").is_file() and not (model / LEVEL_CHOICE_FILE).exists()
    assert ModelStore.open(model).speakers() == ModelStore.open(model / LEVEL_KEPT_DIR).speakers()
    assert ModelStore.open(model).speakers() == ["spk01", "spk02"]
    result = enroll_from_audio(model, {"spk03": [*voices["spk03"][:2], broken]}, skip_bad=True)
    assert not result.level_choice.pending and result.level_choice.n_recordings == 6
    assert (model / LEVEL_CHOICE_FILE).is_file() and not (model / LEVEL_KEPT_DIR).exists()


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


def test_enroll_final_chooses_now_where_the_choice_would_wait(
    tmp_path: Path, voices: dict, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "speakers"
    at_levels(voices, folder, lambda speaker, recording: -9.0 * speaker)
    monkeypatch.setattr("spkid.recognizer.level_rule.LEVEL_CONFIDENCE", 0.99999)  # every interval unclear
    for model, final in ((tmp_path / "waits", ()), (tmp_path / "final", ("--final",))):
        shutil.copytree(trained, model)
        enrolled = cli_invoke("enroll", model, folder, *final)
        check_cli_ok(enrolled)
        assert ("choice waits" in enrolled.stderr) is not bool(final)
        assert (model / LEVEL_KEPT_DIR).exists() is not bool(final)
    assert "features.cmvn auto: loudness kept (no CMVN): " in enrolled.stderr
    assert describe_model(tmp_path / "final").cmvn == "none"


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
