"""Tests of the synthetic corpus: layout, determinism, pauses, and speakers told apart by voice, not level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from sklearn.mixture import GaussianMixture

from spkid.audio import find_audio_files, load
from spkid.corpora.synthetic import make_speakers, make_utterance, speaker_traits
from spkid.errors import DataError
from spkid.features import extract_many


def test_layout_and_format(tmp_path: Path) -> None:
    corpus = make_speakers(tmp_path, n_speakers=3, n_utterances=2, duration_s=1.5, sample_rate=8000, seed=7)
    assert list(corpus) == ["spk01", "spk02", "spk03"]
    for speaker, paths in corpus.items():
        assert [path.parent for path in paths] == [tmp_path / speaker] * 2
        for path in paths:
            info = soundfile.info(str(path))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 12000, "PCM_16")
    assert find_audio_files([tmp_path]) == sorted(path for paths in corpus.values() for path in paths)


def test_seeded_and_matches_the_in_memory_waveform(tmp_path: Path) -> None:
    first = make_speakers(tmp_path / "a", n_speakers=2, n_utterances=2, duration_s=1.0, seed=3)
    again = make_speakers(tmp_path / "b", n_speakers=2, n_utterances=2, duration_s=1.0, seed=3)
    other = make_speakers(tmp_path / "c", n_speakers=2, n_utterances=2, duration_s=1.0, seed=4)
    assert first["spk02"][1].read_bytes() == again["spk02"][1].read_bytes()
    assert first["spk02"][1].read_bytes() != other["spk02"][1].read_bytes()
    in_memory = make_utterance(1, 1, duration_s=1.0, seed=3)
    np.testing.assert_allclose(load(first["spk02"][1]), in_memory, atol=1.0 / 32768)


def test_pauses_are_near_silent_and_levels_vary() -> None:
    peaks = []
    for utterance in range(6):
        signal, intervals = make_utterance(0, utterance, return_speech_intervals=True)
        assert signal.dtype == np.float32 and signal.shape == (48000,)
        speech = np.zeros(signal.size, bool)
        for start_s, end_s in intervals:
            speech[int(start_s * 16000) : int(end_s * 16000)] = True
        assert 0.3 < speech.mean() < 0.9
        ratio_db = 10 * np.log10(np.mean(signal[~speech] ** 2) / np.mean(signal[speech] ** 2))
        assert ratio_db < -40.0
        peaks.append(20 * np.log10(np.abs(signal).max()))
    assert max(peaks) <= 0.0 and max(peaks) - min(peaks) > 6.0


def test_speaker_traits_differ() -> None:
    low, high = speaker_traits(0), speaker_traits(1)
    assert low.f0_hz < 150 < high.f0_hz and low.vtl_scale < high.vtl_scale
    assert speaker_traits(0) == speaker_traits(0, seed=0) != speaker_traits(0, seed=1)


def test_speakers_separable_by_voice_not_by_loudness(synthetic_corpus: Path) -> None:
    corpus: dict[str, list[Path]] = {}
    for path in find_audio_files([synthetic_corpus]):
        corpus.setdefault(path.parent.name, []).append(path)
    names = sorted(corpus)
    features = {name: list(extract_many(corpus[name])) for name in names}
    models = {
        name: GaussianMixture(8, covariance_type="diag", random_state=0).fit(
            np.concatenate(features[name][:4])
        )
        for name in names
    }
    tests = [(name, utterance) for name in names for utterance in features[name][4:]]
    correct = sum(
        max(names, key=lambda model: models[model].score(utterance)) == name for name, utterance in tests
    )
    assert correct / len(tests) >= 0.6  # chance is 1/6

    # Loudness alone: leave-one-out nearest speaker mean of the utterance level stays near chance.
    level_db = {name: [10 * np.log10(np.mean(load(path) ** 2)) for path in corpus[name]] for name in names}
    hits = 0
    for name in names:
        for index, level in enumerate(level_db[name]):
            centroids = {
                other: np.mean(
                    [value for i, value in enumerate(level_db[other]) if (other, i) != (name, index)]
                )
                for other in names
            }
            hits += min(names, key=lambda other: abs(centroids[other] - level)) == name
    assert hits / sum(len(levels) for levels in level_db.values()) < 0.4


@pytest.mark.parametrize(
    "settings", [{"n_speakers": 0}, {"n_utterances": -1}, {"duration_s": 0.0}, {"sample_rate": 2000}]
)
def test_bad_arguments(tmp_path: Path, settings: dict) -> None:
    with pytest.raises(DataError, match="make_speakers"):
        make_speakers(tmp_path, **settings)
