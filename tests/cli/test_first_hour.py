"""The first hour of a new user (issue #15): calibrated score files, unambiguous open-set output and exit
codes, progress lines, small CLI fixes. Several tests run the real CLI in a fresh process."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_MODEL, check_cli_error, check_cli_ok, cli_invoke, run_cli, split_by_speaker

from spkid.metrics import cllr, read_scores, read_trials, split_scores

SMALL = SMALL_MODEL


@pytest.fixture(scope="module")
def corpus(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic corpus split per speaker (``enroll/``, ``test/``) and a model enrolled on it."""
    root = tmp_path_factory.mktemp("first_hour")
    split_by_speaker(synthetic_corpus, root)
    model = root / "model"
    check_cli_ok(cli_invoke("-q", "train-ubm", model, root / "enroll", *SMALL))
    check_cli_ok(cli_invoke("-q", "enroll", model, root / "enroll"))
    return {"root": root, "enroll": root / "enroll", "test": root / "test", "model": model}


@pytest.fixture
def model(corpus: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the enrolled model."""
    return Path(shutil.copytree(corpus["model"], tmp_path / "model"))


def write_trials(path: Path, test_root: Path, speakers: list[str], part: int | None = None) -> Path:
    """Every test recording against every speaker (``part`` 0/1: every other recording only)."""
    wavs = sorted(test_root.rglob("*.wav"))
    if part is not None:
        wavs = wavs[part::2]
    path.write_text(
        "".join(
            f"{speaker} {wav.relative_to(test_root).as_posix()} "
            f"{'target' if wav.parent.name == speaker else 'nontarget'}\n"
            for wav in wavs
            for speaker in speakers
        )
    )
    return path


def trial_cllr(scores: Path, trials: Path) -> float:
    target, nontarget = split_scores(read_scores(scores), read_trials(trials))
    return cllr(target, nontarget)


# ------------------------------------------------------------------------------ (1) calibrated score files
def test_score_writes_calibrated_llrs_after_calibrate_and_cllr_falls(corpus, model: Path, tmp_path: Path):
    speakers = sorted(p.name for p in corpus["enroll"].iterdir())
    dev = write_trials(tmp_path / "dev.txt", corpus["test"], speakers, part=0)
    evaluation = write_trials(tmp_path / "eval.txt", corpus["test"], speakers, part=1)
    audio = ["--audio-root", corpus["test"]]
    check_cli_ok(cli_invoke("score", model, dev, *audio, "-o", tmp_path / "dev_scores.txt"))
    check_cli_ok(cli_invoke("score", model, evaluation, *audio, "-o", tmp_path / "raw_before.txt"))
    header = (tmp_path / "raw_before.txt").read_text().splitlines()[0]
    assert header.startswith("# spkid scores: raw score: frame-averaged LLR"), header
    check_cli_ok(cli_invoke("calibrate", model, tmp_path / "dev_scores.txt", "--trials", dev))

    # A fresh process: the stored calibration is what `spkid score` now writes.
    done = run_cli("score", model, evaluation, *audio, "-o", tmp_path / "calibrated.txt")
    assert done.returncode == 0, done.stderr
    assert "calibrated LLR" in done.stdout
    text = (tmp_path / "calibrated.txt").read_text().splitlines()
    assert text[0].startswith("# spkid scores: calibrated LLR"), text[0]
    assert len(text) == 1 + len(read_trials(evaluation))  # readers skip the "#" line
    check_cli_ok(cli_invoke("score", model, evaluation, *audio, "-o", tmp_path / "raw.txt", "--raw"))
    raw, calibrated = read_scores(tmp_path / "raw.txt"), read_scores(tmp_path / "calibrated.txt")
    assert [s.score for s in raw] == pytest.approx(
        [s.score for s in read_scores(tmp_path / "raw_before.txt")]
    )
    assert [s.score for s in raw] != pytest.approx([s.score for s in calibrated])
    # Calibrated on one half of the trials, evaluated on the other: Cllr falls.
    before, after = (
        trial_cllr(tmp_path / "raw.txt", evaluation),
        trial_cllr(tmp_path / "calibrated.txt", evaluation),
    )
    assert after < before, (before, after)
    shown = json.loads(
        cli_invoke("evaluate", tmp_path / "calibrated.txt", "--trials", evaluation, "--json").stdout
    )
    assert shown["metrics"]["cllr"] == pytest.approx(after)


def test_quiet_score_prints_nothing_on_stdout(corpus, model: Path, tmp_path: Path):
    trials = write_trials(tmp_path / "trials.txt", corpus["test"], ["spk01"])
    done = run_cli("-q", "score", model, trials, "--audio-root", corpus["test"], "-o", tmp_path / "s.txt")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    assert len(read_scores(tmp_path / "s.txt")) == len(read_trials(trials))


# ------------------------------------------------------------------- (2) + (3) open-set output, exit codes
def test_open_set_rejection_is_null_not_a_name_and_exits_3(corpus, model: Path):
    # A speaker may be called "unknown": no name is reserved for a rejection.
    own = sorted((corpus["enroll"] / "spk02").glob("*.wav"))
    check_cli_ok(cli_invoke("-q", "enroll", model, "--speaker", "unknown", *own))
    wav = sorted((corpus["test"] / "spk02").glob("*.wav"))[0]
    closed = json.loads(cli_invoke("identify", model, wav, "--json", "-k", "0").stdout)[0]
    assert closed["accepted"] is True and closed["threshold"] is None
    best = closed["scores"][0]["score"]
    done = run_cli("identify", model, wav, "--json", "--open-set", "--threshold", best + 1)
    assert done.returncode == 3, done.stderr
    rejected = json.loads(done.stdout)[0]
    assert rejected["speaker"] is None and rejected["accepted"] is False
    assert rejected["threshold"] == pytest.approx(best + 1)
    below = cli_invoke("identify", model, wav, "--json", "--open-set", "--threshold", best - 1)
    assert below.exit_code == 0
    accepted = json.loads(below.stdout)[0]
    assert accepted["speaker"] == closed["speaker"] and accepted["accepted"] is True
    assert accepted["threshold"] == pytest.approx(best - 1)
    # Text output shows the decision and its threshold.
    text = cli_invoke("identify", model, wav, "--open-set", "--threshold", best + 1, "-k", "2")
    assert text.exit_code == 3
    first = text.stdout.splitlines()[0]
    assert "rejected" in first and f"threshold {best + 1:+.4f}" in first, first
    text = cli_invoke("identify", model, wav, "--open-set", "--threshold", best - 1, "-k", "2")
    assert f"{closed['speaker']} (accepted" in text.stdout and f"threshold {best - 1:+.4f}" in text.stdout


def test_verify_exits_3_when_any_recording_is_rejected(corpus, model: Path):
    own = sorted((corpus["test"] / "spk03").glob("*.wav"))
    verdicts = json.loads(cli_invoke("verify", model, "-s", "spk03", *own, "--json").stdout)
    lowest = min(item["score"] for item in verdicts)
    done = run_cli("verify", model, "-s", "spk03", *own, "--threshold", lowest)
    assert done.returncode == 0 and done.stdout.count("accept spk03") == len(own), done.stderr
    done = run_cli("verify", model, "-s", "spk03", *own, "--threshold", lowest + 1e-6)
    assert done.returncode == 3 and "reject spk03" in done.stdout, done.stderr
    assert cli_invoke("verify", model, "-s", "nobody", own[0]).exit_code == 1  # errors stay 1
    assert cli_invoke("verify", model, own[0]).exit_code == 2  # usage stays 2
    for command in ("verify", "identify"):
        assert "3 when any is rejected" in " ".join(cli_invoke(command, "--help").stdout.split())


def test_text_scores_are_aligned_and_say_what_they_are(corpus, model: Path):
    wav = sorted((corpus["test"] / "spk01").glob("*.wav"))[0]
    result = cli_invoke("identify", model, wav, "-k", "0")
    check_cli_ok(result)
    assert "scores: raw score: frame-averaged LLR" in result.stderr
    ranked = result.stdout.splitlines()[1:]
    assert len(ranked) == 6 and len({line.rindex(".") for line in ranked}) == 1  # decimal points aligned
    assert len({len(line) for line in ranked}) == 1


# ---------------------------------------------------------------------------------- (6) progress in a log
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UBM EM iteration (\d+)/(\d+): log-likelihood per frame (-?\d+\.\d+), "
    r"gain (n/a|[-+]\d\.\d+e[-+]\d+), (\d+) frames, \d+\.\d+ s, ~\d+ s left$"
)


def test_train_ubm_logs_one_timestamped_line_per_iteration_when_stderr_is_a_file(corpus, tmp_path: Path):
    log = tmp_path / "train.log"
    settings = ["--set", "ubm.n_components=8", "--set", "ubm.max_iter=4", "--set", "ubm.tol=0"]
    done = run_cli("train-ubm", tmp_path / "m", corpus["enroll"], *settings, stderr_file=log)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    # bands: auto on this wideband pool trains a wideband companion UBM after the main one, and cmvn: auto
    # both again without CMVN: four models, each with its header and its 4 iteration lines
    headers = [i for i, line in enumerate(lines) if " EM: 8 components on" in line]
    models = [
        "UBM EM",
        "wideband companion UBM EM",
        "UBM without CMVN EM",
        "wideband companion UBM without CMVN EM",
    ]
    assert len(headers) == 4 and all(
        f" {model}: " in lines[i] for model, i in zip(models, headers, strict=True)
    )
    for start, end in zip(headers, [*headers[1:], len(lines)], strict=True):
        assert len([line for line in lines[start:end] if " EM iteration " in line]) == 4
    lines = lines[: headers[1]]
    iterations = [LOG_LINE.match(line) for line in lines if " EM iteration " in line]
    assert len(iterations) == 4 and all(iterations), lines
    assert [int(m.group(1)) for m in iterations] == [1, 2, 3, 4] and {m.group(2) for m in iterations} == {"4"}
    likelihoods = [float(m.group(3)) for m in iterations]
    assert likelihoods == sorted(likelihoods)  # EM never lowers the likelihood
    # The frame counts agree: the header said up front what EM trains on, and the summary says the same.
    header = next(line for line in lines if "UBM EM: 8 components on" in line)
    trained = int(re.search(r"on ([\d,]+) frames", header).group(1).replace(",", ""))
    assert {int(m.group(5)) for m in iterations} == {trained}
    summary = re.search(r"files: ([\d,]+) frames", done.stdout)
    assert summary and int(summary.group(1).replace(",", "")) == trained, done.stdout
    held = re.search(r"\(([\d,]+) speech frames, ([\d,]+) held out", done.stdout)
    assert held and f"({held.group(1)} speech frames" in header and f"; {held.group(2)} held out" in header


def test_verbose_shows_timestamped_detail(corpus, model: Path, tmp_path: Path):
    trials = write_trials(tmp_path / "trials.txt", corpus["test"], ["spk01"])
    result = cli_invoke(
        "--verbose", "score", model, trials, "--audio-root", corpus["test"], "-o", tmp_path / "s"
    )
    check_cli_ok(result)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d info: scored \d+ of \d+ trials", result.stderr, re.M)
    quiet = cli_invoke("score", model, trials, "--audio-root", corpus["test"], "-o", tmp_path / "s")
    assert "info:" not in quiet.stderr


# ------------------------------------------------------------------------------- (7) Kaldi data directories
def kaldi_dir(root: Path, wavs: list[Path], *, spk2utt: bool, pipe_first: bool = False) -> Path:
    """A Kaldi data dir of ``wavs`` (utterance id ``<speaker>-<stem>``); the first entry a pipe if asked."""
    root.mkdir(parents=True)
    lines, speakers = [], {}
    for index, wav in enumerate(wavs):
        utterance = f"{wav.parent.name}-{wav.stem}"
        value = f"cat {wav} |" if pipe_first and index == 0 else str(wav)
        lines.append(f"{utterance} {value}\n")
        speakers.setdefault(wav.parent.name, []).append(utterance)
    (root / "wav.scp").write_text("".join(lines))
    if spk2utt:
        (root / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in speakers.items()))
    return root


def same_scores(results: list[dict], expected: list[dict]) -> None:
    """The same ranking and scores (to float32 rounding: one side may come from another process)."""
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert [e["speaker"] for e in got["scores"]] == [e["speaker"] for e in want["scores"]]
        assert [e["score"] for e in got["scores"]] == pytest.approx(
            [e["score"] for e in want["scores"]], rel=1e-5
        )


def test_kaldi_data_dirs_give_the_folder_results(corpus, tmp_path: Path):
    from spkid.store import ModelStore

    enroll_wavs = sorted(corpus["enroll"].rglob("*.wav"))
    test_wavs = sorted(corpus["test"].rglob("*.wav"))
    settings = ["--set", "ubm.n_components=8", "--set", "ubm.max_iter=3", "--set", "score.cohort_size=4"]
    # train-ubm from a data dir: the same UBM as from the folder
    check_cli_ok(cli_invoke("-q", "train-ubm", tmp_path / "folder_model", corpus["enroll"], *settings))
    data = kaldi_dir(tmp_path / "train", enroll_wavs, spk2utt=True)
    check_cli_ok(cli_invoke("-q", "train-ubm", tmp_path / "kaldi_model", data, *settings))
    folder_store, kaldi_store = (
        ModelStore.open(tmp_path / "folder_model"),
        ModelStore.open(tmp_path / "kaldi_model"),
    )
    np.testing.assert_array_equal(folder_store.load_ubm().means_, kaldi_store.load_ubm().means_)
    # enroll: speakers from spk2utt, the same models as from folders
    check_cli_ok(cli_invoke("-q", "enroll", tmp_path / "folder_model", corpus["enroll"]))
    enrolled = cli_invoke("enroll", tmp_path / "kaldi_model", data)
    check_cli_ok(enrolled)
    assert "enrolled spk01 (3 files)" in enrolled.stdout
    for name in ModelStore.open(tmp_path / "folder_model").speakers():
        np.testing.assert_array_equal(
            ModelStore.open(tmp_path / "kaldi_model").load_speaker(name).means_,
            ModelStore.open(tmp_path / "folder_model").load_speaker(name).means_,
        )
    # identify model/ wav.scp: one result per utterance id, the scores of the folder route (fresh process)
    tests = kaldi_dir(tmp_path / "test", test_wavs, spk2utt=False)
    done = run_cli("identify", tmp_path / "kaldi_model", tests / "wav.scp", "--json", "-k", "0")
    assert done.returncode == 0, done.stderr
    by_id = json.loads(done.stdout)
    folder = json.loads(
        cli_invoke("identify", tmp_path / "folder_model", corpus["test"], "--json", "-k", "0").stdout
    )
    assert [item["recording"] for item in by_id] == [f"{w.parent.name}-{w.stem}" for w in test_wavs]
    same_scores(by_id, folder)
    # a pipe entry: refused naming the line, run with --allow-pipes (same result)
    piped = kaldi_dir(tmp_path / "piped", test_wavs[:2], spk2utt=False, pipe_first=True)
    refused = cli_invoke("identify", tmp_path / "kaldi_model", piped, "--json")
    check_cli_error(refused, f"{piped / 'wav.scp'}:1:", "shell pipe", "--allow-pipes")
    allowed = cli_invoke("identify", tmp_path / "kaldi_model", piped, "--json", "-k", "0", "--allow-pipes")
    check_cli_ok(allowed)
    same_scores(json.loads(allowed.stdout), folder[:2])


def test_enrolling_a_folder_of_loose_files_suggests_speaker(corpus, model: Path):
    loose = corpus["enroll"] / "spk01"
    check_cli_error(cli_invoke("enroll", model, loose), str(loose), "--speaker NAME")


# ------------------------------------------------------------------------------------------ (5) small ones
def test_help_shows_plain_usage_and_no_bool_placeholder():
    done = run_cli("train-ubm", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Usage: spkid train-ubm [OPTIONS] MODEL_DIR AUDIO_PATH..." in text and "{" not in text
    for command in ("identify", "verify", "evaluate", "score", "list"):
        help_text = cli_invoke(command, "--help").stdout
        assert "<bool>" not in help_text and "{" not in help_text.split("Usage:")[1].splitlines()[0]
    assert "<bool>" not in cli_invoke("--help").stdout


def test_evaluate_json_prints_counts_as_ints(tmp_path: Path):
    scores = tmp_path / "labelled.txt"
    scores.write_text("a x 2.0 target\na y -1.0 nontarget\nb y 0.5 target\nb x -2.0 nontarget\n")
    metrics = json.loads(cli_invoke("evaluate", scores, "--json").stdout)["metrics"]
    assert metrics["n_target"] == 2 and isinstance(metrics["n_target"], int)
    assert isinstance(metrics["n_nontarget"], int) and isinstance(metrics["eer"], float)


def test_a_bad_file_error_of_a_batch_command_mentions_skip_bad(corpus, model: Path, tmp_path: Path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    good = sorted((corpus["test"] / "spk01").glob("*.wav"))[0]
    check_cli_error(cli_invoke("identify", model, good, broken), "broken.wav", "--skip-bad")
    check_cli_error(cli_invoke("enroll", model, "-s", "newcomer", good, broken), "broken.wav", "--skip-bad")
    missing = cli_invoke("identify", model, tmp_path / "missing.wav")  # not a bad file: no hint
    assert "--skip-bad" not in check_cli_error(missing, "missing.wav")


def test_a_short_clip_is_identified_with_a_warning(corpus, model: Path, tmp_path: Path):
    import soundfile

    source = sorted((corpus["test"] / "spk01").glob("*.wav"))[0]
    signal, rate = soundfile.read(source, dtype="float32")
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, signal[int(0.5 * rate) : int(0.7 * rate)], rate)  # the 0.2 s of issue #15
    result = cli_invoke("identify", model, clip, source)
    check_cli_ok(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "clip.wav" in warnings[0] and "too short to trust" in warnings[0], warnings
    assert "clip.wav" in result.stdout


# ------------------------------------------------------------------------------- (9) confusion from the CLI
def test_evaluate_confusion_draws_the_identify_json(corpus, tmp_path: Path):
    identified = cli_invoke("identify", corpus["model"], corpus["test"], "--json", "-q")
    check_cli_ok(identified)
    (tmp_path / "ids.json").write_text(identified.stdout)
    done = run_cli("evaluate", tmp_path / "ids.json", "--confusion", tmp_path / "confusion.png")
    assert done.returncode == 0, done.stderr
    document = json.loads(identified.stdout)
    correct = sum(Path(item["recording"]).parent.name == item["speaker"] for item in document)
    assert f"identification accuracy {correct / len(document):.2%} ({len(document)} tests)" in done.stdout
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.json").write_text("{not json")
    check_cli_error(
        cli_invoke("evaluate", tmp_path / "bad.json", "--confusion", tmp_path / "c.png"), "bad.json"
    )
