"""Tests of the trial-list and score-file I/O (percent-encoded ids) and joining scores with their labels."""

from __future__ import annotations

import numpy as np
import pytest

from spkid.errors import DataError
from spkid.metrics.protocol import (
    ScoredTrial,
    Trial,
    read_scores,
    read_trials,
    split_scores,
    write_scores,
    write_trials,
)


def test_trial_list_round_trip(tmp_path):
    trials = [Trial("alice", "alice/a 1.wav", True), Trial("bob", "x%y#z", False), Trial("bob", "t", True)]
    write_trials(tmp_path / "trials", trials)
    assert (tmp_path / "trials").read_text().splitlines()[0] == "alice alice/a%201.wav target"
    assert read_trials(tmp_path / "trials") == trials
    write_trials(tmp_path / "unlabelled", [Trial("a", "b")])
    assert read_trials(tmp_path / "unlabelled") == [Trial("a", "b", None)]


def test_kaldi_trial_list_is_read_as_is(tmp_path):
    text = "# comment\nid10270-a id10270-b target\n\nid10270-a id10300-c nontarget\n"
    (tmp_path / "trials").write_text(text)
    assert read_trials(tmp_path / "trials") == [
        Trial("id10270-a", "id10270-b", True),
        Trial("id10270-a", "id10300-c", False),
    ]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a b target\na b c d\n", r"trials:2: expected 'enroll_id test_id \[target\|nontarget\]'"),
        ("a b yes\n", r"trials:1: label must be 'target' or 'nontarget', got 'yes'"),
        ("a b target\na b\n", r"trials:2: mixes labelled and unlabelled trials"),
    ],
)
def test_malformed_trial_lists(tmp_path, text, pattern):
    (tmp_path / "trials").write_text(text)
    with pytest.raises(DataError, match=pattern):
        read_trials(tmp_path / "trials")


def test_score_file_round_trip_and_split(tmp_path):
    scores = [ScoredTrial("a", "t1", 1.2345678901234567), ScoredTrial("b", "t1", -3e-9), ("a", "t2", 0.5)]
    write_scores(tmp_path / "scores", scores)
    loaded = read_scores(tmp_path / "scores")
    assert loaded == [
        ScoredTrial("a", "t1", 1.2345678901234567),
        ScoredTrial("b", "t1", -3e-9),
        ScoredTrial("a", "t2", 0.5),
    ]
    trials = [Trial("a", "t1", True), Trial("b", "t1", False), Trial("a", "t2", False)]
    target, nontarget = split_scores(loaded, trials)
    np.testing.assert_array_equal(target, [1.2345678901234567])
    np.testing.assert_array_equal(nontarget, [-3e-9, 0.5])
    with pytest.raises(DataError, match=r"no score for trial b t2"):
        split_scores(loaded, [*trials, Trial("b", "t2", True)])
    with pytest.raises(DataError, match=r"has no target/nontarget label"):
        split_scores(loaded, [Trial("a", "t1")])


def test_labelled_score_lines_round_trip_only_where_labels_are_read(tmp_path):
    write_scores(
        tmp_path / "scores", [ScoredTrial("a", "t 1", 0.25, True), ScoredTrial("b", "t1", -1.0, False)]
    )
    assert (tmp_path / "scores").read_text() == "a t%201 0.25 target\nb t1 -1.0 nontarget\n"
    assert read_scores(tmp_path / "scores", labels=True) == [
        ScoredTrial("a", "t 1", 0.25, True),
        ScoredTrial("b", "t1", -1.0, False),
    ]
    with pytest.raises(DataError, match=r"scores:1: expected 'enroll_id test_id score', got"):
        read_scores(tmp_path / "scores")  # where labels are not read, a fourth field is an error, as before
    (tmp_path / "scores").write_text("a t1 0.25 yes\n")
    with pytest.raises(DataError, match=r"scores:1: label must be 'target' or 'nontarget', got 'yes'"):
        read_scores(tmp_path / "scores", labels=True)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a b\n", r"scores:1: expected 'enroll_id test_id score'"),
        ("a b 1.0\na b high\n", r"scores:2: score 'high' is not a number"),
        ("a b nan\n", r"scores:1: score 'nan' is not finite"),
    ],
)
def test_malformed_score_files(tmp_path, text, pattern):
    (tmp_path / "scores").write_text(text)
    with pytest.raises(DataError, match=pattern):
        read_scores(tmp_path / "scores")
    with pytest.raises(DataError, match=r"missing: no such file"):
        read_scores(tmp_path / "missing")
