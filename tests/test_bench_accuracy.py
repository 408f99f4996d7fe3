"""The accuracy benchmark's report (``benchmarks/bench_accuracy.py``): the rule that chose the defaults."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_accuracy = pytest.importorskip("bench_accuracy")


def runs(*eers: float) -> dict[int, dict[str, float]]:
    """Per-seed metrics with these EERs (fractions)."""
    return {
        seed: {"eer": eer, "top1": 1.0, "min_dcf": 0.0, "correct": 1, "n_tests": 1}
        for seed, eer in enumerate(eers)
    }


def test_worst_cases_names_the_largest_loss_and_where_it_exceeds_the_seed_spread() -> None:
    results = {
        "short": {"defaults": runs(0.10, 0.11), "none": runs(0.05, 0.06), "level": runs(0.12, 0.12)},
        "levels": {"defaults": runs(0.05, 0.05), "none": runs(0.11, 0.11), "level": runs(0.05, 0.06)},
        "noisy": {"defaults": runs(0.20, 0.30), "none": runs(0.20, 0.20), "level": runs(0.25, 0.25)},
    }
    cases = bench_accuracy.worst_cases(results, ["defaults", "none", "level"], list(results))
    # defaults lose 5 points on "short" (beyond their 1-point spread) and 5 on "noisy" (within their 10)
    assert cases["defaults"]["worst"] == pytest.approx(5.0)
    assert cases["defaults"]["beaten"] == ["short"]
    assert cases["none"]["worst"] == pytest.approx(6.0) and cases["none"]["where"] == "levels"
    assert cases["level"]["beaten"] == ["short", "noisy"]  # 0.5 points on "levels" is within its spread


def test_the_report_lists_every_spkid_system_once_best_worst_case_first() -> None:
    results = {"c": {"a": runs(0.1), "b": runs(0.3), "textbook": runs(0.5)}}
    report = bench_accuracy.summarise(results, ["a", "b", "textbook"], ["c"])
    block = report.split("largest EER loss")[1].splitlines()[1:3]
    assert [line.split()[0] for line in block] == ["a", "b"]
    assert "20.00 (c); beyond its spread on 1 of 1: c" in block[1]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(bench_accuracy).failed == 0


def test_the_report_says_what_cmvn_auto_chose_per_condition(tmp_path: Path) -> None:
    chosen = {seed: {**run, "loudness": "kept 0.84"} for seed, run in runs(0.1, 0.1).items()}
    results = {
        "c": {"defaults": chosen, "none": runs(0.2, 0.2)},
        "d": {"defaults": runs(0.1), "none": runs(0.1)},
    }
    report = bench_accuracy.summarise(results, ["defaults", "none"], ["c", "d"])
    block = report.split("defaults: what features.cmvn auto chose at enrollment (level consistency):")[1]
    assert block.splitlines()[1].split() == ["c", "kept", "0.84"]
    assert "none: what features.cmvn auto chose" not in report  # a system without the choice has no block
    scores = bench_accuracy.Scores(np.zeros((1, 1)), ["a"], ["a"], 0, "removed 0.43")
    scores.save(tmp_path / "s.npz")  # the choice survives the cache; an old cached file reads as ""
    assert bench_accuracy.Scores.load(tmp_path / "s.npz").loudness == "removed 0.43"
    np.savez(tmp_path / "old.npz", matrix=np.zeros((1, 1)), names=["a"], truths=["a"], n_failed=0)
    assert bench_accuracy.Scores.load(tmp_path / "old.npz").loudness == ""


def test_apparent_losses_are_beyond_the_defaults_spread_and_confirmed_on_other_seeds() -> None:
    def runs(*eers: float, start: int = 0) -> dict:
        return {seed: {"eer": eer} for seed, eer in enumerate(eers, start=start)}

    results = {
        "near": {"defaults": runs(0.10, 0.14), "x": runs(0.09, 0.09), "textbook": runs(0.01, 0.01)},
        "far": {"defaults": runs(0.10, 0.11), "x": runs(0.20, 0.20), "y": runs(0.02, 0.03)},
    }
    results["near"]["y"] = runs(0.3, 0.3)
    results["far"]["textbook"] = runs(0.5, 0.5)
    systems = ["defaults", "x", "y", "textbook"]
    assert bench_accuracy.apparent_losses(results, systems, ["near", "far"]) == {"far": "y"}  # not the peer
    assert bench_accuracy.apparent_losses(results, ["x", "y"], ["near", "far"]) == {}  # no defaults
    again = {"far": {"defaults": runs(0.10, 0.12, start=3), "y": runs(0.11, 0.11, start=3)}}
    (line,) = bench_accuracy.confirmation(again, {"far": "y"})
    assert line.endswith("did not hold") and "y on seeds 3, 4:" in line
