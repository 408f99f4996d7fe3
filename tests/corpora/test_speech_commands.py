"""Tests of the Speech Commands v0.02 preparer (speech-commands-sid protocol): a tiny fake tree in the
published layout (``fake_speech_commands`` in conftest.py), the error cases, the real test set counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ENROLLED, FAKE_CLIPS, POOL, SHARED_DATA, write_clip

from spkid.corpora.protocol import Protocol
from spkid.corpora.speech_commands import list_clips, prepare_speech_commands
from spkid.errors import DataError

REAL_ROOT = SHARED_DATA / "speech_commands_test_v0.02"


def ids(utterances) -> list[str]:
    return [utterance.id for utterance in utterances]


def test_list_clips_reads_both_formats_and_skips_what_is_not_a_clip(fake_speech_commands: Path):
    clips = list_clips(fake_speech_commands)
    assert ids(clips) == sorted(name.rsplit(".", 1)[0] for name in FAKE_CLIPS)
    by_id = {clip.id: clip for clip in clips}
    clip = by_id[f"_unknown_/bed_{ENROLLED[0]}_nohash_0"]
    assert clip.speaker == ENROLLED[0]
    assert clip.path == fake_speech_commands / "_unknown_" / f"bed_{ENROLLED[0]}_nohash_0.wav"
    assert by_id[f"yes/{ENROLLED[2]}_nohash_1"].path.suffix == ".flac"
    assert {clip.speaker for clip in clips} == {*ENROLLED, *POOL}
    assert not any(char.isspace() for clip in clips for char in clip.id)


def test_protocol_splits_in_sorted_relative_path_order(fake_speech_commands: Path):
    protocol = prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=2)
    assert protocol.name == "speech_commands:3:2"
    assert list(protocol.enroll) == ENROLLED
    for speaker in ENROLLED:
        # The _unknown_ clips sort first ('_' < 'a'), so they enroll; the word-folder clips are the tests.
        assert ids(protocol.enroll[speaker]) == [
            f"_unknown_/bed_{speaker}_nohash_0",
            f"_unknown_/wow_{speaker}_nohash_1",
        ]
    tests = [("no", 0), ("yes", 0), ("yes", 1)]
    assert ids(protocol.test) == sorted(f"{word}/{s}_nohash_{n}" for s in ENROLLED for word, n in tests)
    assert ids(protocol.train) == [
        f"_unknown_/cat_{POOL[0]}_nohash_3",
        f"no/{POOL[1]}_nohash_0",
        f"no/{POOL[1]}_nohash_1",
        f"yes/{POOL[0]}_nohash_0",
    ]
    assert {clip.speaker for clip in protocol.train} == set(POOL)
    assert len(protocol.trials) == len(protocol.test) * len(ENROLLED) == 27
    assert sum(trial.target for trial in protocol.trials) == 9
    assert all(
        trial.target == (trial.test.split("/")[-1].split("_")[0] == trial.enroll) for trial in protocol.trials
    )
    # min_clips is "at least": with 5 every enrolled speaker still qualifies; the rest go to the pool.
    assert list(prepare_speech_commands(fake_speech_commands, min_clips=5, n_enroll=4).enroll) == ENROLLED


def test_protocol_round_trips_through_json(fake_speech_commands: Path, tmp_path: Path):
    protocol = prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=2)
    protocol.save(tmp_path / "protocol.json")
    assert Protocol.load(tmp_path / "protocol.json") == protocol


def test_layout_errors(fake_speech_commands: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere: no such Speech Commands folder"):
        list_clips(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "_background_noise_").mkdir(parents=True)
    write_clip(empty / "_background_noise_" / "running_tap.wav", 0)
    with pytest.raises(DataError, match=r"empty: no <word>/<speaker>_nohash_<n>.wav or .flac clips"):
        prepare_speech_commands(empty)

    # Upper-case hex: not the layout.
    bad = write_clip(fake_speech_commands / "yes" / "0A1B2C3D_nohash_2.wav", 0)
    with pytest.raises(DataError, match=r"yes/0A1B2C3D_nohash_2.wav: expected <word>/<speaker>_nohash_<n>"):
        list_clips(fake_speech_commands)
    bad.unlink()
    # No word before the speaker.
    bad = write_clip(fake_speech_commands / "_unknown_" / f"{ENROLLED[0]}_nohash_2.flac", 0)
    with pytest.raises(DataError, match=r"_nohash_2.flac: expected _unknown_/<word>_<speaker>_nohash_<n>"):
        prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=2)
    bad.unlink()
    write_clip(fake_speech_commands / "yes" / f"{ENROLLED[0]}_nohash_0.flac", 0)  # the same clip twice
    with pytest.raises(DataError, match=rf"clip yes/{ENROLLED[0]}_nohash_0 also exists as"):
        list_clips(fake_speech_commands)


def test_split_errors(fake_speech_commands: Path):
    with pytest.raises(DataError, match=r"n_enroll \(3\) must be smaller than min_clips \(3\)"):
        prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=3)
    with pytest.raises(DataError, match="n_enroll must be at least 1, got 0"):
        prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=0)
    with pytest.raises(DataError, match=r"no speaker has at least min_clips=6 clips \(the most is 5\)"):
        prepare_speech_commands(fake_speech_commands, min_clips=6, n_enroll=2)
    with pytest.raises(DataError, match="the UBM pool is empty; raise min_clips"):
        prepare_speech_commands(fake_speech_commands, min_clips=2, n_enroll=1)


@pytest.mark.realdata
def test_real_speech_commands_protocol():
    """The speech-commands-sid counts of ../shared/data/README.md on the real test set."""
    if not REAL_ROOT.is_dir():
        pytest.skip(f"real-audio test needs {REAL_ROOT} (the shared Speech Commands test set); not here")
    protocol = prepare_speech_commands(REAL_ROOT)
    assert len(list_clips(REAL_ROOT)) == 4482
    assert len(protocol.enroll) == 53
    assert all(len(clips) == 10 for clips in protocol.enroll.values())
    assert len(protocol.test) == 2132
    assert len(protocol.train) == 1820
    assert len({clip.speaker for clip in protocol.train}) == 186
    assert not {clip.speaker for clip in protocol.train} & set(protocol.enroll)
    assert len(protocol.trials) == 2132 * 53 and sum(trial.target for trial in protocol.trials) == 2132
