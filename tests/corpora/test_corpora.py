"""Tests of the corpus preparers (LibriSpeech, VoxCeleb1, folders) and the protocol they return."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from spkid.corpora.folders import list_speakers, prepare_folders
from spkid.corpora.librispeech import list_subset, prepare_librispeech
from spkid.corpora.protocol import Protocol
from spkid.corpora.voxceleb1 import (
    prepare_voxceleb1_identification,
    prepare_voxceleb1_verification,
    read_iden_split,
    read_veri_trials,
)
from spkid.errors import DataError
from spkid.metrics import Trial

RATE = 16000


def write_audio(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = 0.1 * np.random.default_rng(seed).standard_normal(RATE // 10)
    soundfile.write(path, signal.astype(np.float32), RATE, format=fmt, subtype="PCM_16")
    return path


# ------------------------------------------------------------------------------------------ LibriSpeech
LIBRI_TEST = {"61": ["70968", "70970"], "1089": ["134686"], "908": ["157963"]}


@pytest.fixture()
def librispeech_root(tmp_path) -> Path:
    """A LibriSpeech tree: test-other with 3 speakers x 4 utterances over chapters, train-clean-100 with 2."""
    root = tmp_path / "LibriSpeech"
    seed = 0
    for speaker, chapters in LIBRI_TEST.items():
        for index in range(4):
            chapter = chapters[index % len(chapters)]
            seed += 1
            name = f"{speaker}-{chapter}-{index:04d}.flac"
            write_audio(root / "test-other" / speaker / chapter / name, seed)
        (root / "test-other" / speaker / chapters[0] / f"{speaker}-{chapters[0]}.trans.txt").write_text("x\n")
    for speaker, chapter in (("19", "198"), ("26", "495")):
        write_audio(root / "train-clean-100" / speaker / chapter / f"{speaker}-{chapter}-0000.flac", seed + 7)
    return root


def test_librispeech_subset_listing(librispeech_root):
    utterances = list_subset(librispeech_root / "test-other")
    assert len(utterances) == 12
    names = [u.path.name for u in utterances]
    assert names == sorted(names)
    first = utterances[0]
    assert first.id == first.path.stem and first.speaker == first.id.split("-")[0]
    assert soundfile.info(str(first.path)).format == "FLAC"


def test_librispeech_reference_protocol(librispeech_root):
    protocol = prepare_librispeech(librispeech_root, n_enroll=2)
    assert len(protocol.train) == 2 and {u.speaker for u in protocol.train} == {"19", "26"}
    assert sorted(protocol.enroll) == sorted(LIBRI_TEST)
    for speaker, items in protocol.enroll.items():
        all_names = sorted(p.name for p in (librispeech_root / "test-other" / speaker).glob("*/*.flac"))
        assert [u.path.name for u in items] == all_names[:2]  # first N in sorted file-name order
        assert [u.path.name for u in protocol.test if u.speaker == speaker] == all_names[2:]
    assert len(protocol.test) == 6
    assert len(protocol.trials) == 6 * 3
    assert sum(t.target for t in protocol.trials) == 6
    for trial in protocol.trials:
        assert trial.target == (trial.test.split("-")[0] == trial.enroll)
    # interleaved chapters: 61's file-name order mixes chapters 70968 and 70970
    assert [u.id for u in protocol.enroll["61"]] == ["61-70968-0000", "61-70968-0002"]


def test_librispeech_errors(librispeech_root, tmp_path):
    with pytest.raises(DataError, match="speaker 1089 has 4 utterances; the protocol needs more than 4"):
        prepare_librispeech(librispeech_root, n_enroll=4)
    with pytest.raises(DataError, match="no such LibriSpeech subset folder"):
        prepare_librispeech(librispeech_root, test_subset="dev-clean")
    with pytest.raises(DataError, match="the UBM must not see tests"):
        prepare_librispeech(librispeech_root, train_subset="test-other")
    bad = librispeech_root / "test-other" / "61" / "70968" / "62-70968-0009.flac"
    write_audio(bad, 99)
    with pytest.raises(DataError, match=r"62-70968-0009.flac: expected <speaker>/<chapter>/"):
        list_subset(librispeech_root / "test-other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is this a LibriSpeech subset"):
        list_subset(tmp_path / "empty")


@pytest.mark.realdata
def test_real_librispeech_protocol(librispeech_train, librispeech_test):
    protocol = prepare_librispeech(librispeech_test.parent)
    assert len(protocol.train) == 251 and len(protocol.enroll) == 10
    assert len(protocol.test) == 50 and len(protocol.trials) == 500
    assert sum(t.target for t in protocol.trials) == 50


# ------------------------------------------------------------------------------------------ VoxCeleb1
VOX = {  # speaker -> videos -> utterance numbers
    "id10001": {"1zcIwhmdeo4": [1, 2], "7gWzIy6yIIk": [1]},
    "id10002": {"0_laIeN-Q44": [1, 2, 3]},
    "id10270": {"x6uYqmx31kE": [1, 2], "8jEAjG6SegY": [8]},
    "id10271": {"1gtz-CUIygI": [1, 2]},
}


@pytest.fixture()
def voxceleb_root(tmp_path) -> Path:
    root = tmp_path / "voxceleb1"
    seed = 0
    lines = []
    for speaker, videos in VOX.items():
        for video, numbers in videos.items():
            for position, number in enumerate(numbers):
                seed += 1
                relative = f"{speaker}/{video}/{number:05d}.wav"
                write_audio(root / "wav" / relative, seed)
                lines.append(f"{3 if position == len(numbers) - 1 and len(numbers) > 1 else 1} {relative}")
    (root / "iden_split.txt").write_text("\n".join(lines) + "\n")
    (root / "veri_test2.txt").write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10271/1gtz-CUIygI/00002.wav\n"
        "1 id10271/1gtz-CUIygI/00001.wav id10271/1gtz-CUIygI/00002.wav\n"
        "0 id10271/1gtz-CUIygI/00001.wav id10270/x6uYqmx31kE/00002.wav\n"
    )
    return root


def test_voxceleb_verification_protocol(voxceleb_root):
    protocol = prepare_voxceleb1_verification(voxceleb_root)
    assert {u.speaker for u in protocol.train} == {"id10001", "id10002"}  # dev speakers only
    assert len(protocol.train) == 6
    assert sorted(protocol.enroll) == ["id10270-x6uYqmx31kE-00001", "id10271-1gtz-CUIygI-00001"]
    assert [u.id for u in protocol.test] == [
        "id10270-8jEAjG6SegY-00008",
        "id10270-x6uYqmx31kE-00002",
        "id10271-1gtz-CUIygI-00002",
    ]
    assert [t.target for t in protocol.trials] == [True, False, True, False]
    assert protocol.trials[0] == Trial("id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008", True)
    enroll_utt = protocol.enroll["id10270-x6uYqmx31kE-00001"][0]
    assert enroll_utt.path == voxceleb_root / "wav" / "id10270" / "x6uYqmx31kE" / "00001.wav"
    assert enroll_utt.path.is_file() and enroll_utt.speaker == "id10270"
    limited = prepare_voxceleb1_verification(voxceleb_root, max_train_per_speaker=1)
    assert [u.id for u in limited.train] == ["id10001-1zcIwhmdeo4-00001", "id10002-0_laIeN-Q44-00001"]


def test_voxceleb_identification_protocol(voxceleb_root):
    splits = read_iden_split(voxceleb_root)
    assert (len(splits[1]), len(splits[2]), len(splits[3])) == (7, 0, 4)
    protocol = prepare_voxceleb1_identification(voxceleb_root, with_trials=True)
    assert sorted(protocol.enroll) == sorted(VOX)
    assert all(u.speaker in protocol.enroll for u in protocol.test)
    assert {u.id for u in protocol.test}.isdisjoint(u.id for items in protocol.enroll.values() for u in items)
    assert len(protocol.trials) == len(protocol.test) * len(VOX)
    assert prepare_voxceleb1_identification(voxceleb_root).trials == ()


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("1 id10270/x6uYqmx31kE/00001.wav", r"veri_test2.txt:2: expected '<1\|0> <enroll.wav> <test.wav>'"),
        ("2 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav", r"veri_test2.txt:2: expected"),
        ("1 id10270/00001.wav id10270/8jEAjG6SegY/00008.wav", r"veri_test2.txt:2: expected <speaker>/"),
        ("1 id10270/../x/00001.wav id10270/8jEAjG6SegY/00008.wav", r"veri_test2.txt:2: expected <speaker>/"),
        ("0 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav", r":2: label 0 contradicts"),
        ("1 id10270/x6uYqmx31kE/00009.wav id10270/8jEAjG6SegY/00008.wav", r":2: .*00009.wav is missing"),
    ],
)
def test_voxceleb_malformed_trial_lists(voxceleb_root, line, pattern):
    path = voxceleb_root / "veri_test2.txt"
    path.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n" + line + "\n")
    with pytest.raises(DataError, match=pattern):
        read_veri_trials(voxceleb_root)


def test_voxceleb_malformed_split_and_layout(voxceleb_root, tmp_path):
    (voxceleb_root / "iden_split.txt").write_text("1 id10001/1zcIwhmdeo4/00001.wav\n4 id10001/x/00001.wav\n")
    with pytest.raises(DataError, match=r"iden_split.txt:2: expected '<1\|2\|3> "):
        read_iden_split(voxceleb_root)
    (voxceleb_root / "iden_split.txt").write_text("3 id10009/nope/00001.wav\n")
    with pytest.raises(DataError, match=r"iden_split.txt:1: id10009/nope/00001.wav is not under"):
        read_iden_split(voxceleb_root)
    with pytest.raises(DataError, match=r"no wav/ folder"):
        prepare_voxceleb1_verification(tmp_path)
    with pytest.raises(DataError, match=r"veri_test.txt: no such list file"):
        read_veri_trials(voxceleb_root, "veri_test.txt")


# ------------------------------------------------------------------------------------------ folders
@pytest.fixture()
def folders_root(tmp_path) -> Path:
    root = tmp_path / "people"
    for index in range(4):
        write_audio(root / "alice" / f"a{index}.wav", index)
    write_audio(root / "bob" / "day 1" / "b0.flac", 10, fmt="FLAC")
    write_audio(root / "bob" / "day 2" / "b1.wav", 11)
    write_audio(root / "bob" / "b2.wav", 12)
    write_audio(root / "carol" / "only.wav", 13)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not audio")
    write_audio(root / ".hidden" / "x.wav", 14)
    write_audio(root / "loose.wav", 15)
    return root


def test_folders_listing(folders_root):
    speakers = list_speakers(folders_root)
    assert list(speakers) == ["alice", "bob", "carol"]
    assert [u.id for u in speakers["bob"]] == ["bob/b2.wav", "bob/day 1/b0.flac", "bob/day 2/b1.wav"]


def test_folders_split_by_fraction_and_count(folders_root):
    protocol = prepare_folders(folders_root, enroll_fraction=0.5)
    assert [len(protocol.enroll[s]) for s in ("alice", "bob", "carol")] == [2, 2, 1]  # 1.5 rounds half up
    assert [u.id for u in protocol.test] == ["alice/a2.wav", "alice/a3.wav", "bob/day 2/b1.wav"]
    assert len(protocol.trials) == 3 * 3 and sum(t.target for t in protocol.trials) == 3
    assert {u.id for u in protocol.train} == {u.id for items in protocol.enroll.values() for u in items}
    counted = prepare_folders(folders_root, n_enroll=3)
    assert [len(counted.enroll[s]) for s in ("alice", "bob", "carol")] == [3, 3, 1]
    everything = prepare_folders(folders_root, enroll_fraction=1.0)
    assert everything.test == () and everything.trials == ()


def test_folders_seeded_shuffle_is_deterministic(folders_root):
    first = prepare_folders(folders_root, n_enroll=2, seed=7)
    assert first == prepare_folders(folders_root, n_enroll=2, seed=7)
    assert set(first.enroll["alice"]) | {u for u in first.test if u.speaker == "alice"} == set(
        list_speakers(folders_root)["alice"]
    )
    orders = {
        tuple(u.id for u in prepare_folders(folders_root, n_enroll=2, seed=seed).enroll["alice"])
        for seed in range(8)
    }
    assert len(orders) > 1  # the seed actually shuffles


def test_folders_errors(folders_root, tmp_path):
    with pytest.raises(DataError, match=r"enroll_fraction must be in \(0, 1\]"):
        prepare_folders(folders_root, enroll_fraction=0.0)
    with pytest.raises(DataError, match="n_enroll must be at least 1"):
        prepare_folders(folders_root, n_enroll=0)
    with pytest.raises(DataError, match="no such folder"):
        prepare_folders(tmp_path / "missing")
    (tmp_path / "empty" / "dave").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no <speaker>/<recording> audio found"):
        prepare_folders(tmp_path / "empty")


def test_protocol_json_round_trip(folders_root, tmp_path):
    protocol = prepare_folders(folders_root, n_enroll=2)
    protocol.save(tmp_path / "protocol.json")
    assert Protocol.load(tmp_path / "protocol.json") == protocol
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(DataError, match=r"bad.json: protocol document is malformed"):
        Protocol.load(tmp_path / "bad.json")
