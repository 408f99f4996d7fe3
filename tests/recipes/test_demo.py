"""Tests of ``spkid demo``: the end-to-end run on a synthetic corpus, its table, its output folder rules."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spkid.cli import app
from spkid.errors import DataError
from spkid.metrics import eer, min_dcf
from spkid.recipes import DemoSettings, run_demo

TINY = DemoSettings(n_background_speakers=3, n_target_speakers=3, n_utterances=3, n_enroll=2, n_components=8)


def scores_by_test(output: Path) -> tuple[dict[str, dict[str, float]], dict[str, bool]]:
    """``{test: {speaker: score}}`` from the demo's score file and the labels of its trial list."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for line in (output / "scores.txt").read_text().splitlines():
        if line.startswith("#"):  # what the scores are
            continue
        enroll, test, value = line.split()
        scores[test][enroll] = float(value)
    labels = {}
    for line in (output / "trials.txt").read_text().splitlines():
        enroll, test, label = line.split()
        labels[f"{enroll} {test}"] = label == "target"
    return scores, labels


def test_cli_demo_runs_end_to_end_and_prints_the_table(tmp_path: Path):
    output = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--output", str(output)])
    assert result.exit_code == 0, result.output
    table = result.stdout
    settings = DemoSettings()
    n_tests = settings.n_target_speakers * (settings.n_utterances - settings.n_enroll)
    assert re.search(rf"enrolled speakers\s+{settings.n_target_speakers}\n", table)
    assert re.search(rf"held-out recordings\s+{n_tests}\n", table)
    assert f"DET curve written to {output / 'det.png'}" in table
    # Each figure beside its expected range, a one-line reading, then what to run next (issue #15).
    assert re.search(r"identification accuracy\s+[\d.]+%\s+expected [\d.]+%-[\d.]+%\n", table)
    assert re.search(r"^reading: ", table, re.M)
    next_lines = table.split("next, on your own audio:\n")[1].splitlines()
    assert [line.split()[:2] for line in next_lines] == [
        ["spkid", "train-ubm"],
        ["spkid", "enroll"],
        ["spkid", "identify"],
    ]
    assert (output / "det.png").read_bytes()[:4] == b"\x89PNG"
    assert "demo: training a 64-component UBM" in result.stderr

    # The table's numbers agree with the files the demo left behind (identify vs. the score file).
    scores, labels = scores_by_test(output)
    assert len(scores) == n_tests
    hits = [max(row, key=row.get) == Path(test).parent.name for test, row in scores.items()]
    accuracy = float(re.search(r"identification accuracy\s+([\d.]+)%", table).group(1)) / 100
    assert accuracy == pytest.approx(np.mean(hits), abs=1e-3)
    target = [row[e] for t, row in scores.items() for e in row if labels[f"{e} {t}"]]
    nontarget = [row[e] for t, row in scores.items() for e in row if not labels[f"{e} {t}"]]
    reported_eer = float(re.search(r"EER\s+([\d.]+)%", table).group(1)) / 100
    assert reported_eer == pytest.approx(eer(target, nontarget), abs=1e-4)
    reported_dcf = float(re.search(r"minDCF \(p_target=0.01\)\s+([\d.]+)", table).group(1))
    assert reported_dcf == pytest.approx(min_dcf(target, nontarget), abs=1e-4)
    # Better than chance by a wide margin on these well-separated synthetic voices.
    assert accuracy >= 0.75 and reported_eer <= 0.15


def test_demo_reruns_in_its_own_folder_but_refuses_foreign_ones(tmp_path: Path):
    output = tmp_path / "demo"
    first = run_demo(output, settings=TINY)
    second = run_demo(output, settings=TINY)  # a previous demo is replaced, same seed, same results
    assert second.accuracy == first.accuracy and second.eer == first.eer
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a spkid demo folder"):
        run_demo(foreign, settings=TINY)
    assert (foreign / "thesis.tex").read_text() == "precious"
    result = CliRunner().invoke(app, ["demo", "--output", str(foreign)])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
