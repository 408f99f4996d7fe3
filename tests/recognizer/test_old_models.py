"""A model directory written before later format changes still loads and scores exactly as it did.

The fixture in ``tests/fixtures/model_v1`` was written by an older spkid (see its README); its expected
features, scores and decisions were recorded by that version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from spkid.recognizer import Recognizer, identify, verify

FIXTURE = FIXTURES / "model_v1"


@pytest.fixture
def old_model(tmp_path: Path) -> Path:
    copy = tmp_path / "model_v1"
    shutil.copytree(FIXTURE, copy)
    return copy


def _expected() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def test_old_model_extracts_the_same_features(old_model: Path) -> None:
    expected = np.load(FIXTURE / "expected_features.npz")
    recordings = sorted((old_model / "audio").glob("*.wav"))
    extracted = Recognizer.open(old_model / "model").extract(recordings)
    assert [path.stem for path in extracted.paths] == [path.stem for path in recordings]
    for path, features in zip(extracted.paths, extracted, strict=True):
        reference = expected[path.stem]
        assert features.shape == reference.shape, path.name
        np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-5, err_msg=path.name)


def test_old_model_identifies_with_the_same_scores(old_model: Path) -> None:
    expected = {item["recording"]: item for item in _expected()["identify"]}
    outcome = identify(old_model / "model", [old_model / "audio"], top_k=0, open_set=True)
    assert len(outcome.results) == len(expected)
    for result in outcome.results:
        reference = expected[Path(result.recording).name]
        assert [name for name, _ in result.scores] == [item["speaker"] for item in reference["scores"]]
        np.testing.assert_allclose(
            [score for _, score in result.scores],
            [item["score"] for item in reference["scores"]],
            rtol=1e-5,
            atol=1e-5,
        )
        accepted = reference["speaker"] != "unknown"
        assert (result.accepted if hasattr(result, "accepted") else result.speaker != "unknown") == accepted


def test_old_model_verifies_with_the_same_thresholds(old_model: Path) -> None:
    expected = {item["recording"]: item for item in _expected()["verify"]}
    outcome = verify(old_model / "model", "spk01", [old_model / "audio"])
    assert len(outcome.results) == len(expected)
    for result in outcome.results:
        reference = expected[Path(result.recording).name]
        assert result.score == pytest.approx(reference["score"], rel=1e-5, abs=1e-5)
        assert result.threshold == pytest.approx(reference["threshold"], rel=1e-5, abs=1e-5)
        assert result.accepted == reference["accepted"]
