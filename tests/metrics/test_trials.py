"""Tests of trial lists as ``spkid score`` reads them (Kaldi, VoxCeleb), the recording resolver, and
labelled score files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spkid.errors import DataError
from spkid.metrics import RecordingResolver, evaluate, read_labelled_scores, read_trial_list


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
