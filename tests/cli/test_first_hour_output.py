"""The first hour of a new user (issue #15), continued: what the CLI prints while it works and what its
results say. train-ubm's live display in a terminal, frame counts that agree across one run, --verbose for
enroll and identify, the score kind in identify/verify JSON, the end of ``make demo``, exit code 3 and the
SPDX license. Most tests run the real CLI in a fresh process (a terminal, a log file, or make)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    CLI,
    PROCESS_TIMEOUT_S,
    PROGRESS_LINE,
    REPO_ROOT,
    check_cli_error,
    check_cli_ok,
    cli_invoke,
    run_cli,
    run_cli_in_terminal,
    terminal_lines,
)

SETTINGS = ["--set", "ubm.n_components=8", "--set", "ubm.max_iter=4", "--set", "ubm.tol=0"]
STAMPED_INFO = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d info: "


def count(text: str) -> int:
    """``"10,728"`` -> 10728."""
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def enrolled(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model with every speaker of the synthetic corpus enrolled (on all their recordings)."""
    model = tmp_path_factory.mktemp("first_hour_output") / "model"
    check_cli_ok(cli_invoke("-q", "train-ubm", model, synthetic_corpus, *SETTINGS))
    check_cli_ok(cli_invoke("-q", "enroll", model, synthetic_corpus))
    return model


@pytest.fixture
def model(enrolled: Path, tmp_path: Path) -> Path:
    """A private copy of the enrolled model."""
    return Path(shutil.copytree(enrolled, tmp_path / "model"))


# ---------------------------------------------------------------------- train-ubm: live display, frame counts
LIVE_EM = re.compile(
    r"^EM .*━.* (\d+)/(\d+) \d+:\d\d:\d\d log-likelihood/frame (-?\d+\.\d{4}) "
    r"\(gain ([-+]\d\.\d\de[-+]\d+)\), ([\d,]+) frames, ~\d+ s left$"
)
HEADER = re.compile(r"^UBM EM: (\d+) components on ([\d,]+) frames \(([\d,]+) speech frames of (\d+) files")
SUMMARY = re.compile(
    r"^trained UBM \((\d+) components x 60 features, 16000 Hz front-end\) on (\d+) files: ([\d,]+) frames"
)


def test_train_ubm_shows_a_live_em_display_in_a_terminal(synthetic_corpus: Path, tmp_path: Path):
    done = run_cli_in_terminal("train-ubm", tmp_path / "m", synthetic_corpus, *SETTINGS)
    assert done.returncode == 0, done.stderr
    screen = terminal_lines(done.stderr)
    assert "\x1b[" in done.stderr  # drawn for a terminal (colours, redraws), not written as a log
    assert not [line for line in screen if PROGRESS_LINE.match(line)], screen  # no log lines in a terminal
    assert any(re.match(r"^features .*━.* 36/36 ", line) for line in screen), screen
    # The header says up front what EM trains on; the live bar ends on the last iteration with its figures.
    header = next(HEADER.match(line) for line in screen if HEADER.match(line))
    live = [LIVE_EM.match(line) for line in screen if line.startswith("EM ")]
    # the UBM's, its wideband companion's (bands: auto), then both again without CMVN (cmvn: auto)
    assert len(live) == 4 and all(live), screen
    for model in ("wideband companion UBM", "UBM without CMVN", "wideband companion UBM without CMVN"):
        assert any(line.startswith(f"{model} EM: 8 components") for line in screen), (model, screen)
    iteration, max_iter, log_likelihood, gain, frames = live[0].groups()
    assert (iteration, max_iter) == ("4", "4") and float(gain) > 0 and float(log_likelihood) < 0
    # Every frame count of the run agrees: the header, the live display and the summary on stdout.
    summary = SUMMARY.match(done.stdout)
    assert summary, done.stdout
    assert count(frames) == count(header.group(2)) == count(summary.group(3))
    assert header.group(1) == summary.group(1) == "8" and header.group(4) == summary.group(2) == "36"
    held = re.search(r"\(([\d,]+) speech frames, ([\d,]+) held out for the cohort\)", done.stdout)
    assert held and count(held.group(1)) == count(header.group(3))
    assert count(held.group(1)) - count(held.group(2)) == count(frames)
    assert (
        f"; {held.group(2)} held out as the cohort's impostor segments)"
        in screen[screen.index(header.string)]
    )


def test_train_ubm_frame_counts_agree_with_a_subsample_and_a_reduced_ubm(
    synthetic_corpus: Path, tmp_path: Path
):
    # 4,096 components are too many for this pool (512 fit); each iteration draws 3,000 of its frames.
    settings = ["--set", "ubm.n_components=4096", "--set", "ubm.max_iter=2", "--set", "ubm.max_frames=3000"]
    log = tmp_path / "train.log"
    done = run_cli("train-ubm", tmp_path / "m", synthetic_corpus, *settings, stderr_file=log)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    header_line = next(line for line in lines if "UBM EM: " in line and "components on" in line)
    header = HEADER.match(header_line[20:])  # after the timestamp
    assert header, header_line
    assert header_line.endswith(", a random 3,000 of them per iteration"), header_line
    per_iteration = [int(m.group(1)) for m in (re.search(r", (\d+) frames, ", x) for x in lines) if m]
    assert per_iteration == [3000] * 8, lines  # the UBM, its wideband companion, both without CMVN
    summary = SUMMARY.match(done.stdout)
    assert summary, done.stdout
    assert header.group(1) == summary.group(1) == "512"  # the reduced size, said before EM and after
    assert count(header.group(2)) == count(header.group(3)) == count(summary.group(3))
    assert any("training 512 components" in line for line in lines if line.startswith("warning: "))


# ------------------------------------------------------------------------- --verbose for enroll, identify
def test_verbose_enroll_and_identify_show_timestamped_steps(model: Path, synthetic_corpus: Path):
    wavs = sorted((synthetic_corpus / "spk01").glob("*.wav"))
    done = run_cli("--verbose", "enroll", model, "--speaker", "newcomer", *wavs[:2])
    assert done.returncode == 0 and done.stdout == "enrolled newcomer (2 files)\n", done
    assert re.search(STAMPED_INFO + r"features of 2 files in \d+\.\d\d s \(0 skipped\)$", done.stderr, re.M)
    first = re.search(
        STAMPED_INFO + r"speaker 'newcomer': MAP-adapted from 2 recordings \((\d+) frames\), stored in ",
        done.stderr,
        re.M,
    )
    assert first and int(first.group(1)) > 0, done.stderr
    done = run_cli("enroll", model, "--speaker", "newcomer", "--add", wavs[2], "-v")
    added = re.search(
        STAMPED_INFO + r"speaker 'newcomer': statistics added from 1 recordings", done.stderr, re.M
    )
    assert done.returncode == 0 and added, done.stderr
    plain = run_cli("enroll", model, "--speaker", "other", wavs[3])
    assert plain.returncode == 0 and "info:" not in plain.stderr, plain.stderr

    verbose = run_cli("identify", model, *wavs[4:6], "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    for step in ("opened the model", "features of 2 recordings", "scored 2 recordings"):
        assert re.search(STAMPED_INFO + rf"identify: {step}.* in \d+\.\d{{3}} s$", verbose.stderr, re.M), step
    plain = run_cli("identify", model, *wavs[4:6])
    assert "info:" not in plain.stderr and plain.stdout == verbose.stdout  # detail on stderr only


# ----------------------------------------------------------------------- JSON says what the scores are
def all_trials(path: Path, corpus: Path) -> Path:
    wavs = sorted(corpus.rglob("*.wav"))
    speakers = sorted(p.name for p in corpus.iterdir() if p.is_dir())
    path.write_text(
        "".join(
            f"{s} {w.relative_to(corpus).as_posix()} {'target' if w.parent.name == s else 'nontarget'}\n"
            for w in wavs
            for s in speakers
        )
    )
    return path


def test_identify_and_verify_json_say_what_the_scores_are(
    model: Path, synthetic_corpus: Path, tmp_path: Path
):
    wav, other = (sorted((synthetic_corpus / name).glob("*.wav"))[0] for name in ("spk02", "spk03"))
    text = cli_invoke("identify", model, wav)
    check_cli_ok(text)
    kind = re.search(r"^scores: (.+)$", text.stderr, re.M).group(1)
    assert kind.startswith("raw score: frame-averaged LLR"), kind
    done = run_cli("identify", model, wav, other, "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert isinstance(results, list) and len(results) == 2  # still a list of results: readers keep working
    assert [item["score_kind"] for item in results] == [kind, kind]
    assert results[0]["speaker"] == "spk02" and "scores" in results[0]
    verdicts = json.loads(cli_invoke("verify", model, "-s", "spk02", wav, "--json").stdout)
    assert verdicts[0]["score_kind"] == kind

    # After calibrate: the JSON says calibrated, as the score file's "#" line does.
    trials = all_trials(tmp_path / "trials.txt", synthetic_corpus)
    audio = ["--audio-root", synthetic_corpus]
    check_cli_ok(cli_invoke("-q", "score", model, trials, *audio, "-o", tmp_path / "dev.txt"))
    check_cli_ok(cli_invoke("-q", "calibrate", model, tmp_path / "dev.txt", "--trials", trials))
    check_cli_ok(cli_invoke("-q", "score", model, trials, *audio, "-o", tmp_path / "calibrated.txt"))
    header = (tmp_path / "calibrated.txt").read_text().splitlines()[0]
    calibrated = json.loads(cli_invoke("identify", model, wav, "--json").stdout)[0]["score_kind"]
    assert calibrated.startswith("calibrated LLR") and header == f"# spkid scores: {calibrated}"
    # A file of identify JSON with score_kind is still read by evaluate --confusion.
    (tmp_path / "ids.json").write_text(done.stdout)
    confusion = cli_invoke("evaluate", tmp_path / "ids.json", "--confusion", tmp_path / "c.png")
    check_cli_ok(confusion)
    assert "identification accuracy 100.00% (2 tests)" in confusion.stdout


# -------------------------------------------------------------------------------------- docs and packaging
def test_make_demo_ends_by_saying_how_to_put_spkid_on_the_path(tmp_path: Path):
    # A stand-in for the .venv that `make install` fills: its spkid runs this checkout's CLI.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    spkid = venv / "bin" / "spkid"
    spkid.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(CLI)} "$@"\n')
    spkid.chmod(spkid.stat().st_mode | stat.S_IXUSR)
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(REPO_ROOT / "Makefile"),
            "-o",
            "install",
            "demo",
            f"VENV={venv}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "reading: every figure is in its expected range" in done.stdout, done.stdout
    assert lines[-1].startswith(f"next: '. {venv}/bin/activate' puts spkid on your PATH"), lines[-1]
    assert "README.md" in lines[-1]
    commands = lines[lines.index("next, on your own audio:") + 1 : -1]
    assert [line.split()[:2] for line in commands] == [
        ["spkid", "train-ubm"],
        ["spkid", "enroll"],
        ["spkid", "identify"],
    ]
    # and the README's tour begins with that very step
    readme = (REPO_ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme.split("## A ten-line tour", 1)[1].split("```", 2)[1]


def test_exit_code_3_and_the_json_score_kind_are_documented():
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    bad_input = " ".join((REPO_ROOT / "docs" / "bad-input.md").read_text().split())
    for text in (readme, bad_input):
        assert "`verify` and `identify --open-set`" in text and "exit 3 when any" in text
    assert '`"score_kind"`' in readme
    for command in ("verify", "identify"):
        help_text = " ".join(cli_invoke(command, "--help").stdout.split())
        assert "3 when any is rejected" in help_text and "score_kind" in help_text


def test_pyproject_license_is_an_spdx_string():
    # A license table or "License ::" classifiers make setuptools >= 77 print deprecation warnings on every
    # install.
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert isinstance(project["license"], str) and re.fullmatch(
        r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", project["license"]
    )
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    assert any(
        re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in pyproject["build-system"]["requires"]
    )


# ------------------------------------------------------------ Kaldi data dirs: pipes for train-ubm, enroll
def piped_data_dir(root: Path, wavs: list[Path], *, first: str = "cat {path} |") -> Path:
    """A Kaldi data dir of ``wavs`` with ``spk2utt``, whose first ``wav.scp`` entry is a shell pipe."""
    root.mkdir(parents=True)
    speakers: dict[str, list[str]] = {}
    lines = []
    for index, wav in enumerate(wavs):
        utterance = f"{wav.parent.name}-{wav.stem}"
        lines.append(f"{utterance} {first.format(path=shlex.quote(str(wav))) if index == 0 else wav}\n")
        speakers.setdefault(wav.parent.name, []).append(utterance)
    (root / "wav.scp").write_text("".join(lines))
    (root / "spk2utt").write_text("".join(f"{name} {' '.join(ids)}\n" for name, ids in speakers.items()))
    return root


def test_train_ubm_and_enroll_run_a_pipe_entry_only_with_allow_pipes(synthetic_corpus: Path, tmp_path: Path):
    from spkid.store import ModelStore

    wavs = sorted(synthetic_corpus.rglob("*.wav"))
    data = piped_data_dir(tmp_path / "data", wavs)
    small = ["--set", "ubm.n_components=8", "--set", "ubm.max_iter=2", "--set", "score.cohort_size=4"]
    line_one = f"{data / 'wav.scp'}:1:"
    refused = cli_invoke("train-ubm", tmp_path / "refused", data, *small)
    check_cli_error(refused, line_one, "shell pipe", "--allow-pipes")
    assert not (tmp_path / "refused").exists()  # refused before any work
    done = run_cli("-q", "train-ubm", tmp_path / "piped", data, *small, "--allow-pipes")  # a fresh process
    assert done.returncode == 0, done.stderr
    check_cli_ok(cli_invoke("-q", "train-ubm", tmp_path / "plain", synthetic_corpus, *small))
    piped, plain = ModelStore.open(tmp_path / "piped"), ModelStore.open(tmp_path / "plain")
    assert (piped.load_ubm().means_ == plain.load_ubm().means_).all()  # the pipe gave the file's audio

    check_cli_error(cli_invoke("enroll", tmp_path / "piped", data), line_one, "shell pipe", "--allow-pipes")
    assert ModelStore.open(tmp_path / "piped").speakers() == []
    enrolled = run_cli("enroll", tmp_path / "piped", data, "--allow-pipes")
    assert enrolled.returncode == 0 and "enrolled spk01 (6 files)" in enrolled.stdout, enrolled.stderr
    check_cli_ok(cli_invoke("-q", "enroll", tmp_path / "plain", synthetic_corpus))
    for name in ModelStore.open(tmp_path / "plain").speakers():
        assert (
            ModelStore.open(tmp_path / "piped").load_speaker(name).means_
            == ModelStore.open(tmp_path / "plain").load_speaker(name).means_
        ).all(), name
    # A pipe that fails names its line too.
    failing = piped_data_dir(tmp_path / "failing", wavs[:6], first="exit 7 # {path} |")
    check_cli_error(
        cli_invoke("enroll", tmp_path / "piped", failing, "--allow-pipes", "--replace"),
        f"{failing / 'wav.scp'}:1:",
        "pipe command failed (exit 7",
    )
