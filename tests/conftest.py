"""Shared fixtures: where the real LibriSpeech subset lives, and small synthetic corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
LIBRISPEECH = SHARED_DATA / "LibriSpeech"


def librispeech_subset(name: str) -> Path:
    """Return the path of a LibriSpeech subset, skipping the calling test when it is absent."""
    subset = LIBRISPEECH / name
    if not subset.is_dir():
        pytest.skip(f"real-audio test needs {subset} (the shared LibriSpeech subset); not present here")
    return subset


@pytest.fixture(scope="session")
def librispeech_train() -> Path:
    """``../shared/data/LibriSpeech/train-clean-100`` (UBM pool), or skip."""
    return librispeech_subset("train-clean-100")


@pytest.fixture(scope="session")
def librispeech_test() -> Path:
    """``../shared/data/LibriSpeech/test-other`` (10 speakers x 10 utterances), or skip."""
    return librispeech_subset("test-other")


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded synthetic corpus ``<root>/<speaker>/<utt>.wav`` (6 speakers x 6 utterances, 16 kHz)."""
    from spkid.corpora.synthetic import make_speakers

    root = tmp_path_factory.mktemp("synthetic_corpus")
    make_speakers(root, n_speakers=6, n_utterances=6, duration_s=3.0, sample_rate=16000, seed=1234)
    return root


# ------------------------------------------------------------------------------------------------ CLI helpers
def cli_invoke(*args: object):
    """Run ``spkid ARGS`` in this process through typer's runner (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from spkid.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


def check_cli_ok(result) -> None:
    """Exit code 0, with the output shown when it is not."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def check_cli_error(result, *fragments: str) -> str:
    """Exit code 1 and one ``error:`` line on stderr containing every fragment, no traceback; the line."""
    assert result.exit_code == 1, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert all(line.startswith("warning: ") for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]
