"""``features.cmvn: auto``'s second rule: the enrollment's recordings, identified one by one with their own
left out, say whether the channel is removed harder (``spkid.recognizer.channel_rule``), and the model kept
then extracts every later recording that way."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.special import logsumexp

from spkid.blas import blas_threads
from spkid.corpora.synthetic import make_speakers
from spkid.features import extract, extract_many, normalise
from spkid.gmm import MixtureParameters
from spkid.metrics import eer
from spkid.recognizer import (
    Recognizer,
    channel_choice,
    describe_model,
    enroll_from_audio,
    identify,
    load_config,
    train_ubm_from_audio,
)
from spkid.recognizer.bands import COMPANION_DIR
from spkid.recognizer.channel_rule import (
    CHANNEL_EER_RATIO,
    HARDER_RELEVANCE_FRAMES,
    MIN_EER_GAIN,
    held_out_eer,
    held_out_scores,
    removes_channel_harder,
)
from spkid.recognizer.level_choice import LEVEL_CHOICE_FILE, LEVEL_KEPT_DIR, settle_level_choice
from spkid.store import ModelStore
from spkid.ubm import EnrollConfig

SMALL = ["ubm.n_components=8", "ubm.wideband_components=4", "ubm.max_iter=3", "score.cohort_size=2"]


def _log_likelihood(weights, means, variances, frames) -> float:
    """Mean per-frame log-likelihood of a diagonal GMM, written out (exact, float64)."""
    frames = np.asarray(frames, np.float64)[:, None, :]
    log_gauss = -0.5 * np.sum(np.log(2 * np.pi * variances) + (frames - means) ** 2 / variances, axis=2)
    return float(np.mean(logsumexp(np.log(weights) + log_gauss, axis=1)))


def _adapted_means(ubm: MixtureParameters, recordings: list[np.ndarray], relevance: float) -> np.ndarray:
    """Reynolds' mean-only MAP, written out."""
    frames = np.concatenate(recordings).astype(np.float64)
    log_gauss = -0.5 * np.sum(
        np.log(2 * np.pi * ubm.variances_) + (frames[:, None, :] - ubm.means_) ** 2 / ubm.variances_, axis=2
    )
    joint = np.log(ubm.weights_) + log_gauss
    posteriors = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    counts = posteriors.sum(axis=0)
    data_means = posteriors.T @ frames / np.maximum(counts, 1e-300)[:, None]
    alpha = (counts / (counts + relevance))[:, None]
    return alpha * data_means + (1 - alpha) * ubm.means_


def test_held_out_scores_equal_a_direct_computation() -> None:
    rng = np.random.default_rng(11)
    ubm = MixtureParameters(
        np.array([0.3, 0.7]), rng.normal(size=(2, 3)), rng.uniform(0.5, 2.0, size=(2, 3)), dtype=np.float64
    )
    recordings = {
        name: [rng.normal(centre, 1.0, size=(int(rng.integers(40, 90)), 3)) for _ in range(n)]
        for name, centre, n in (("a", -0.5, 3), ("b", 0.0, 2), ("c", 0.7, 4), ("d", 0.2, 1))
    }
    target, nontarget = held_out_scores(ubm, recordings, EnrollConfig(relevance_factor=4.0), top_c=None)
    ubm_of = (ubm.weights_, ubm.means_, ubm.variances_)
    full = {name: _adapted_means(ubm, values, 4.0) for name, values in recordings.items()}
    expected_target, expected_nontarget = [], []
    for name in sorted(recordings):  # "d" has one recording: a model, never held out
        held = recordings[name]
        if len(held) < 2:
            continue
        for i, frames in enumerate(held):
            own = _adapted_means(ubm, [x for j, x in enumerate(held) if j != i], 4.0)
            baseline = _log_likelihood(*ubm_of, frames)
            expected_target.append(_log_likelihood(ubm.weights_, own, ubm.variances_, frames) - baseline)
            for other in sorted(recordings):
                if other != name:
                    model = _log_likelihood(ubm.weights_, full[other], ubm.variances_, frames)
                    expected_nontarget.append(model - baseline)
    np.testing.assert_allclose(target, expected_target, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(nontarget, expected_nontarget, rtol=1e-4, atol=1e-4)
    config = EnrollConfig(relevance_factor=4.0)
    assert held_out_eer(ubm, recordings, config, top_c=None) == pytest.approx(eer(target, nontarget))
    two = {name: recordings[name] for name in ("a", "b", "d")}  # 2 speakers with two recordings
    assert held_out_scores(ubm, two, config) is None and held_out_eer(ubm, two, config) is None


@pytest.mark.parametrize(
    ("chosen", "harder", "expected"),
    [
        (0.04, 0.01, True),
        (0.04, 0.04 * CHANNEL_EER_RATIO + 1e-6, False),  # not half
        (0.8 * MIN_EER_GAIN, 0.0, False),  # halved, but by less than one error in 50
        (None, 0.0, False),
        (0.04, None, False),
    ],
)
def test_the_channel_is_removed_harder_only_on_a_clear_gain(chosen, harder, expected: bool) -> None:
    assert removes_channel_harder(chosen, harder) is expected


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]]]:
    made = make_speakers(
        tmp_path_factory.mktemp("made"), n_speakers=5, n_utterances=4, duration_s=2.0, seed=8
    )
    model = tmp_path_factory.mktemp("auto") / "model"
    pool = [file for files in made.values() for file in files]
    train_ubm_from_audio(model, pool, load_config(None, [*SMALL, "features.cmvn=auto"]))
    voices, folder = {}, tmp_path_factory.mktemp("voices")  # a level per speaker: the choice is clear
    for i, (name, files) in enumerate(made.items()):
        (folder / name).mkdir()
        voices[name] = [folder / name / file.name for file in files]
        for file, copy in zip(files, voices[name], strict=True):
            samples, rate = soundfile.read(file)
            soundfile.write(copy, samples * 10 ** (-9.0 * i / 20), rate)
    return model, voices


def test_the_first_enrollment_measures_both_and_says_so(tmp_path: Path, trained) -> None:
    model, voices = trained
    shutil.copytree(model, tmp_path / "model")
    speakers = {name: files[:3] for name, files in voices.items()}
    choice = settle_level_choice(tmp_path / "model", speakers, final=True)  # all there are, as in a recipe
    enroll_from_audio(tmp_path / "model", speakers)
    assert choice is not None and choice.held_out is not None and None not in choice.held_out
    harder = removes_channel_harder(*choice.held_out)
    assert choice.relevance_frames == (HARDER_RELEVANCE_FRAMES if harder else None)
    assert "identified one by one" in choice.describe()
    stored = json.loads((tmp_path / "model" / LEVEL_CHOICE_FILE).read_text())
    assert stored["held_out"] == list(choice.held_out)


@pytest.fixture
def always_harder(tmp_path: Path, trained, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A copy of the trained model, and the rule made to take the harder removal whenever it is measured."""
    model, voices = trained
    shutil.copytree(model, tmp_path / "model")
    monkeypatch.setattr(channel_choice, "removes_channel_harder", lambda chosen, harder: True)
    return tmp_path / "model", voices


def test_when_it_removes_the_channel_harder_every_later_recording_is_extracted_so(always_harder) -> None:
    model, voices = always_harder
    ubms = {folder: ModelStore.open(model / folder).load_ubm() for folder in (".", COMPANION_DIR)}
    speakers = {name: files[:3] for name, files in voices.items()}
    choice = settle_level_choice(model, speakers, final=True)
    enroll_from_audio(model, speakers)
    assert choice is not None and choice.kept is False and choice.relevance_frames == HARDER_RELEVANCE_FRAMES
    assert "channel removed harder" in choice.describe()
    assert not (model / LEVEL_KEPT_DIR).exists()
    assert describe_model(model).cmvn == "adaptive_level, 300 frames of relevance"  # what spkid list says
    for folder in (".", COMPANION_DIR):  # the main model and its companion, their UBMs as trained
        store = ModelStore.open(model / folder)
        assert store.feature_config["cmvn"] == "adaptive_level"
        assert store.feature_config["cmvn_relevance_frames"] == HARDER_RELEVANCE_FRAMES
        np.testing.assert_array_equal(store.load_ubm().means_, ubms[folder].means_)
        assert store.load_feature_stats() is not None  # adaptive_level's pool statistics kept
    # every later recording goes through that front-end: the scores are those of its features
    recognizer = Recognizer.open(model / COMPANION_DIR)  # a wideband test: scored by the wideband companion
    assert recognizer.feature_config.cmvn_relevance_frames == HARDER_RELEVANCE_FRAMES
    config = recognizer.feature_config
    test = voices["spk02"][3]
    frames = extract(test, config, stats=recognizer.feature_stats)
    usual = extract(
        test, dataclasses.replace(config, cmvn_relevance_frames=3000.0), stats=recognizer.feature_stats
    )
    assert not np.allclose(frames, usual, atol=1e-3)  # the two front-ends differ on this recording
    expected = recognizer.score_matrix(recognizer.speakers(), [frames])[0]
    found = identify(model, [test], top_k=5).results[0]
    names = sorted(recognizer.speakers())
    np.testing.assert_allclose([dict(found.scores)[name] for name in names], expected, rtol=1e-5, atol=1e-5)
    assert enroll_from_audio(model, {"late": voices["spk01"][3:]}).level_choice is None


def test_speakers_enrolled_while_the_choice_waited_leave_the_relevance_alone(always_harder) -> None:
    """Their statistics were stored from the usual front-end: the check needs the model's first speakers."""
    model, voices = always_harder
    names = sorted(voices)
    first = enroll_from_audio(model, {name: voices[name][:3] for name in names[:2]}).level_choice
    assert first is not None and first.pending  # 2 speakers cannot measure it
    enroll_from_audio(model, {name: voices[name][:3] for name in names[2:]})
    choice = settle_level_choice(model, {}, final=True)  # as a recipe's enroll stage does
    assert choice is not None and not choice.pending and choice.held_out is None
    assert choice.relevance_frames is None
    assert ModelStore.open(model).feature_config.get("cmvn_relevance_frames") != HARDER_RELEVANCE_FRAMES


def test_the_check_reads_at_most_check_speakers_speakers(
    tmp_path: Path, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, voices = trained
    shutil.copytree(model, tmp_path / "model")
    monkeypatch.setattr(channel_choice, "CHECK_SPEAKERS", 2)  # fewer than the 3 it needs: nothing measured
    choice = settle_level_choice(tmp_path / "model", {n: f[:3] for n, f in voices.items()}, final=True)
    assert choice is not None and not choice.pending and choice.held_out is None


@pytest.mark.parametrize("relevance", [None, HARDER_RELEVANCE_FRAMES])
def test_the_check_normalises_the_unnormalised_features_as_extraction_does(trained, relevance) -> None:
    """The check derives both front-ends' features from the no-CMVN model's: they must equal extraction's."""
    model, voices = trained
    main, unnormalised = Recognizer.open(model), Recognizer.open(model / LEVEL_KEPT_DIR)
    config = main.feature_config
    if relevance is not None:
        config = dataclasses.replace(config, cmvn_relevance_frames=relevance)
    files = [files[0] for files in voices.values()]
    raw = unnormalised.extract(files)
    with blas_threads(1):
        derived = [normalise(frames, config, main.feature_stats) for frames in raw]
    for ours, extracted in zip(derived, extract_many(files, config, stats=main.feature_stats), strict=True):
        np.testing.assert_array_equal(ours, extracted)
