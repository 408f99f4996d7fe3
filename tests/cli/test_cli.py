"""Tests of the spkid command line through typer's CliRunner: every command, success and failure paths."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SMALL_MODEL, check_cli_error, check_cli_ok, cli_invoke, split_by_speaker

import spkid
from spkid.audio import resample
from spkid.errors import StoreError
from spkid.features import FeatureConfig, GlobalStats, extract
from spkid.recognizer import load_config
from spkid.recognizer.bands import COMPANION_DIR, band_configs
from spkid.recognizer.level_choice import LEVEL_KEPT_DIR
from spkid.recognizer.routing import route_recordings
from spkid.score import ScoreConfig, Scorer
from spkid.store import ModelStore

# Small models keep every test fast; the settings are stored in the model by train-ubm.
SMALL = SMALL_MODEL


@pytest.fixture(scope="session")
def split_corpus(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic corpus split per speaker: ``enroll/<spk>/`` (first 3 files), ``test/<spk>/`` (rest)."""
    return split_by_speaker(synthetic_corpus, tmp_path_factory.mktemp("split"))


@pytest.fixture(scope="session")
def trained_model(split_corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with a 16-component UBM trained on the enrollment half, no speakers."""
    model = tmp_path_factory.mktemp("models") / "trained"
    check_cli_ok(cli_invoke("--quiet", "train-ubm", model, split_corpus["enroll"], *SMALL))
    return model


@pytest.fixture(scope="session")
def enrolled_model(trained_model: Path, split_corpus: dict[str, Path], tmp_path_factory) -> Path:
    """``trained_model`` plus every speaker of the enrollment half."""
    model = tmp_path_factory.mktemp("models") / "enrolled"
    shutil.copytree(trained_model, model)
    check_cli_ok(cli_invoke("enroll", model, split_corpus["enroll"], "--quiet"))
    return model


@pytest.fixture
def model_copy(enrolled_model: Path, tmp_path: Path) -> Path:
    """A private copy of the enrolled model, for tests that change it."""
    return Path(shutil.copytree(enrolled_model, tmp_path / "model"))


def test_version_and_help_of_every_command():
    result = cli_invoke("--version")
    check_cli_ok(result)
    assert result.stdout.strip() == f"spkid {spkid.__version__}"
    commands = [
        "train-ubm",
        "enroll",
        "identify",
        "verify",
        "list",
        "remove",
        "score",
        "evaluate",
        "run",
        "demo",
    ]
    for command in [*commands, "download", "calibrate", "fuse"]:
        result = cli_invoke(command, "--help")
        check_cli_ok(result)
        assert "Example" in result.stdout and f"spkid {command}" in result.stdout, command


def test_help_paragraphs_wrap_at_the_terminal_width_not_at_the_docstring_lines(monkeypatch):
    """The docstring breaks 'enroll = an enrolled speaker or a recording,' / 'test = ...' across lines; on a
    wide terminal the paragraph is one line."""
    monkeypatch.setenv("COLUMNS", "250")
    lines = cli_invoke("score", "--help").stdout.splitlines()
    assert any("speaker or a recording, test = a recording path" in line for line in lines)


def test_train_ubm_reports_and_stores_every_config_section(trained_model: Path):
    store = ModelStore.open(trained_model)
    assert store.ubm_shape[0] == 16
    assert store.ubm_config["max_iter"] == 5 and store.score_config["cohort_size"] == 6
    # The configs' defaults, the rate chosen from the 16 kHz pool; bands: auto gives a wideband pool's
    # main model the telephone band's bottom and a wideband companion; cmvn: auto makes the model
    # adaptive_level (it stores the pool's statistics) and a second one without CMVN, until enrollment.
    defaults = load_config(None).features
    assert defaults.cmvn == "auto"
    for folder, cmvn in ((trained_model, "adaptive_level"), (trained_model / LEVEL_KEPT_DIR, "none")):
        main, companion = band_configs(dataclasses.replace(defaults, cmvn=cmvn).resolve(16000))
        assert ModelStore.open(folder).feature_config == main.to_dict() and main.f_min_hz == 300.0
        assert ModelStore.open(folder / COMPANION_DIR).feature_config == companion.to_dict()
    assert (trained_model / "frontend.npz").is_file() and not (
        trained_model / LEVEL_KEPT_DIR / "frontend.npz"
    ).exists()
    assert store.has_cohort() and store.speakers() == []


def test_train_ubm_failures(trained_model: Path, split_corpus: dict[str, Path], tmp_path: Path):
    check_cli_error(
        cli_invoke("train-ubm", trained_model, split_corpus["enroll"]), "already exists", "--overwrite"
    )
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "m", split_corpus["enroll"], "--set", "ubm.n_compnents=8"),
        "ubm.n_compnents",
        "did you mean",
    )
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "m", split_corpus["enroll"], "--set", "nosection"),
        "section.key=value",
    )
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "m", tmp_path / "missing"), "missing", "no such file or directory"
    )
    (tmp_path / "empty").mkdir()
    check_cli_error(cli_invoke("train-ubm", tmp_path / "m", tmp_path / "empty"), "empty", "no audio files")
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "m", split_corpus["enroll"], "--config", tmp_path / "no.yaml"),
        "no.yaml",
    )
    assert not (tmp_path / "m" / "manifest.json").exists()
    result = cli_invoke("train-ubm", tmp_path / "m", split_corpus["enroll"], "--components", "0")
    assert result.exit_code == 2  # a usage error, reported by typer


def test_debug_shows_the_exception_instead_of_one_line(tmp_path: Path):
    result = cli_invoke("--debug", "list", tmp_path / "nothing")
    assert result.exit_code == 1 and isinstance(result.exception, StoreError)
    check_cli_error(cli_invoke("list", tmp_path / "nothing"), "no model at", "train-ubm")


def test_missing_model_dir_is_one_clear_error_for_every_command(tmp_path: Path, split_corpus):
    missing = tmp_path / "no-model"
    wav = next(split_corpus["test"].rglob("*.wav"))
    for args in (
        ["list", missing],
        ["identify", missing, wav],
        ["verify", missing, "--speaker", "spk01", wav],
        ["enroll", missing, split_corpus["enroll"]],
        ["remove", missing, "--speaker", "spk01"],
        ["score", missing, tmp_path / "trials.txt", "--output", tmp_path / "s.txt"],
    ):
        check_cli_error(cli_invoke(*args), "no model at", str(missing))


def test_identify_with_no_speakers_enrolled(trained_model: Path, split_corpus):
    wav = next(split_corpus["test"].rglob("*.wav"))
    check_cli_error(cli_invoke("identify", trained_model, wav), "no speakers enrolled", "spkid enroll")


def test_enroll_folder_then_list(enrolled_model: Path, split_corpus):
    result = cli_invoke("list", enrolled_model)
    check_cli_ok(result)
    speakers = sorted(p.name for p in split_corpus["enroll"].iterdir())
    assert result.stdout.split() == speakers
    assert "UBM 16 x" in result.stderr  # the summary goes to stderr, so stdout stays one name per line
    summary = json.loads(cli_invoke("list", enrolled_model, "--json").stdout)
    assert summary["speakers"] == speakers and summary["n_components"] == 16


def test_enroll_existing_name_needs_replace(model_copy: Path, split_corpus):
    files = sorted((split_corpus["enroll"] / "spk01").glob("*.wav"))
    check_cli_error(
        cli_invoke("enroll", model_copy, "--speaker", "spk01", *files),
        "spk01",
        "already enrolled",
        "--replace",
    )
    result = cli_invoke("enroll", model_copy, "--speaker", "spk01", *files, "--replace", "-q")
    check_cli_ok(result)
    assert "enrolled spk01 (3 files)" in result.stdout
    single = cli_invoke("enroll", model_copy, "--speaker", "spk01", files[0], "--replace", "-q")
    check_cli_ok(single)
    assert single.stdout.strip() == "enrolled spk01 (1 file)"


def test_enroll_one_named_speaker_and_bad_names(model_copy: Path, split_corpus):
    files = sorted((split_corpus["test"] / "spk02").glob("*.wav"))
    check_cli_ok(cli_invoke("enroll", model_copy, "--speaker", "newcomer", *files))
    assert "newcomer" in cli_invoke("list", model_copy).stdout.split()
    for bad in ("../x", "a/b", ".hidden", "x" * 300):
        check_cli_error(cli_invoke("enroll", model_copy, "--speaker", bad, *files), "speaker name")
    # Two paths without --speaker is a usage error (typer's exit code 2).
    assert cli_invoke("enroll", model_copy, files[0], files[1]).exit_code == 2


def test_enroll_skip_bad(model_copy: Path, split_corpus, tmp_path: Path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"this is not a wav file at all")
    good = sorted((split_corpus["test"] / "spk03").glob("*.wav"))
    check_cli_error(cli_invoke("enroll", model_copy, "--speaker", "x", *good, bad), "broken.wav")
    assert "x" not in cli_invoke("list", model_copy).stdout.split()
    result = cli_invoke("enroll", model_copy, "--speaker", "x", *good, bad, "--skip-bad", "-q")
    check_cli_ok(result)
    assert "enrolled x (3 files)" in result.stdout
    assert "skipped:" in result.stderr and "broken.wav" in result.stderr
    check_cli_error(cli_invoke("enroll", model_copy, "--speaker", "y", bad, "--skip-bad"), "nothing enrolled")


def test_identify_json_matches_direct_scoring(enrolled_model: Path, split_corpus):
    tests = sorted(split_corpus["test"].rglob("*.wav"))
    result = cli_invoke("identify", enrolled_model, split_corpus["test"], "--json", "--top-k", "0", "--quiet")
    check_cli_ok(result)
    document = json.loads(result.stdout)  # one JSON document for all recordings
    assert [item["recording"] for item in document] == [str(path) for path in tests]
    # wideband tests and speakers: the default model's wideband companion scores them (bands: auto)
    assert route_recordings(enrolled_model, tests) == [(enrolled_model / COMPANION_DIR, tests)]
    store = ModelStore.open(enrolled_model / COMPANION_DIR)
    speakers = store.load_speakers()
    scorer = Scorer(store.load_ubm(), speakers, top_c=ScoreConfig().top_c)  # the stored score setting
    config = FeatureConfig.from_dict(store.feature_config)
    stored = store.load_feature_stats()  # None: the defaults need no pool statistics
    stats = None if stored is None else GlobalStats.from_arrays(stored)
    correct = 0
    for item, path in zip(document, tests, strict=True):
        assert set(item) == {"recording", "speaker", "accepted", "threshold", "scores", "score_kind"}
        assert item["accepted"] is True and item["threshold"] is None  # closed set
        assert len(item["scores"]) == len(speakers)  # --top-k 0 lists every speaker
        values = [entry["score"] for entry in item["scores"]]
        assert values == sorted(values, reverse=True) and item["speaker"] == item["scores"][0]["speaker"]
        reference = dict(zip(scorer.names, scorer.llr(extract(path, config, stats=stats)), strict=True))
        for entry in item["scores"]:
            assert entry["score"] == pytest.approx(reference[entry["speaker"]], abs=1e-5)
        correct += item["speaker"] == path.parent.name
    assert correct >= 0.8 * len(tests)


def test_identify_top_k_and_open_set(enrolled_model: Path, split_corpus):
    wav = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[0]
    document = json.loads(cli_invoke("identify", enrolled_model, wav, "--json", "--top-k", "2").stdout)
    assert len(document) == 1 and len(document[0]["scores"]) == 2
    best = document[0]["scores"][0]["score"]
    above = json.loads(
        cli_invoke("identify", enrolled_model, wav, "--json", "--open-set", "--threshold", best + 1).stdout
    )
    assert above[0]["speaker"] is None and above[0]["accepted"] is False
    assert above[0]["threshold"] == pytest.approx(best + 1) and above[0]["scores"][0][
        "score"
    ] == pytest.approx(best)
    below = json.loads(
        cli_invoke("identify", enrolled_model, wav, "--json", "--open-set", "--threshold", best - 1).stdout
    )
    assert below[0]["speaker"] == document[0]["speaker"]
    text = cli_invoke("identify", enrolled_model, wav, "-k", "3", "-q")
    check_cli_ok(text)
    assert text.stdout.splitlines()[0] == f"{wav}: {document[0]['speaker']}"
    assert len(text.stdout.splitlines()) == 4


# scipy.ndimage: only the energy VAD, not the default front-end
HEAVY_MODULES = ("matplotlib", "sklearn", "librosa", "scipy.signal", "scipy.ndimage", "joblib")


@pytest.mark.parametrize("command", ["identify", "verify"])
def test_identify_and_verify_import_no_heavy_modules(
    enrolled_model: Path, split_corpus, command: str, tmp_path: Path
):
    """Each of those imports costs a second or more of every call that never plots, calibrates or needs
    librosa (a fresh process shows it); 8 kHz input is resampled without librosa too."""
    wav = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[0]
    signal, rate = soundfile.read(wav, dtype="float32")
    narrowband = tmp_path / "narrowband.wav"
    soundfile.write(narrowband, resample(signal, rate, 8000), 8000)
    claim = ["--speaker", "spk01"] if command == "verify" else []
    arguments = [command, str(enrolled_model), *claim, str(wav), str(narrowband)]
    program = (
        "import sys\n"
        "from spkid.cli import app\n"
        f"sys.argv = ['spkid', *{arguments!r}]\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    code = exit.code\n"
        f"print('heavy:', sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules), 'exit:', code)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    # verify exits 3 when it rejects a recording (the tiny test model's cohort threshold is strict)
    expected = ["heavy: [] exit: 0"] + (["heavy: [] exit: 3"] if command == "verify" else [])
    assert done.stdout.splitlines()[-1] in expected, done.stdout + done.stderr


def test_verify_accepts_at_and_above_threshold(enrolled_model: Path, split_corpus):
    own = sorted((split_corpus["test"] / "spk02").glob("*.wav"))
    result = cli_invoke("verify", enrolled_model, "--speaker", "spk02", *own, "--json", "-q")
    verdicts = json.loads(result.stdout)
    assert result.exit_code == (0 if all(item["accepted"] for item in verdicts) else 3)
    assert [item["recording"] for item in verdicts] == [str(path) for path in own]
    lowest = min(item["score"] for item in verdicts)
    strict = json.loads(
        cli_invoke("verify", enrolled_model, "-s", "spk02", *own, "--json", "--threshold", lowest).stdout
    )
    assert all(item["accepted"] for item in strict)
    stricter = cli_invoke("verify", enrolled_model, "-s", "spk02", *own, "--threshold", lowest + 1e-6)
    assert stricter.stdout.count("reject") >= 1
    check_cli_error(
        cli_invoke("verify", enrolled_model, "--speaker", "nobody", own[0]), "'nobody'", "not enrolled"
    )
    assert cli_invoke("verify", enrolled_model, own[0]).exit_code == 2  # --speaker is required


def test_remove(model_copy: Path):
    result = cli_invoke("remove", model_copy, "--speaker", "spk04")
    check_cli_ok(result)
    assert "spk04" not in cli_invoke("list", model_copy).stdout.split()
    check_cli_error(cli_invoke("remove", model_copy, "--speaker", "spk04"), "'spk04'", "not enrolled")


def write_kaldi_trials(path: Path, test_root: Path, speakers: list[str]) -> list[tuple[str, str, bool]]:
    trials = [
        (speaker, wav.relative_to(test_root).as_posix(), wav.parent.name == speaker)
        for wav in sorted(test_root.rglob("*.wav"))
        for speaker in speakers
    ]
    path.write_text("".join(f"{e} {t} {'target' if y else 'nontarget'}\n" for e, t, y in trials))
    return trials


def test_score_and_evaluate_kaldi_trials(enrolled_model: Path, split_corpus, tmp_path: Path):
    speakers = sorted(p.name for p in split_corpus["enroll"].iterdir())
    trials = write_kaldi_trials(tmp_path / "trials.txt", split_corpus["test"], speakers)
    scores = tmp_path / "scores.txt"
    result = cli_invoke(
        "score", enrolled_model, tmp_path / "trials.txt", "--audio-root", split_corpus["test"], "-o", scores
    )
    check_cli_ok(result)
    lines = [line.split() for line in scores.read_text().splitlines() if not line.startswith("#")]
    assert [(e, t) for e, t, _ in lines] == [(e, t) for e, t, _ in trials]
    target = np.array([float(s) for (_, _, s), (_, _, y) in zip(lines, trials, strict=True) if y])
    nontarget = np.array([float(s) for (_, _, s), (_, _, y) in zip(lines, trials, strict=True) if not y])
    assert target.mean() > nontarget.mean()

    plot = tmp_path / "det.png"
    result = cli_invoke("evaluate", scores, "--trials", tmp_path / "trials.txt", "--plot", plot)
    check_cli_ok(result)
    assert (
        "EER" in result.stdout and "minDCF (p_target=0.001)" in result.stdout and "minCllr" in result.stdout
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluated = cli_invoke("evaluate", scores, "--trials", tmp_path / "trials.txt", "--json")
    metrics = json.loads(evaluated.stdout)["metrics"]
    from spkid.metrics import eer, min_dcf

    assert metrics["eer"] == pytest.approx(eer(target, nontarget))
    assert metrics["min_dcf_0.01"] == pytest.approx(min_dcf(target, nontarget, p_target=0.01))
    assert metrics["n_target"] == target.size and metrics["n_nontarget"] == nontarget.size

    # Labelled score lines need no trial list; unlabelled ones do.
    labelled = tmp_path / "labelled.txt"
    labelled.write_text(
        "".join(
            f"{e} {t} {s} {'target' if y else 'nontarget'}\n"
            for (e, t, s), (_, _, y) in zip(lines, trials, strict=True)
        )
    )
    again = json.loads(cli_invoke("evaluate", labelled, "--json").stdout)["metrics"]
    assert again["eer"] == pytest.approx(metrics["eer"])
    check_cli_error(cli_invoke("evaluate", scores), "carry no labels", "--trials")


def test_score_voxceleb_format_adapts_utterance_models(enrolled_model: Path, split_corpus, tmp_path: Path):
    wavs = sorted(split_corpus["test"].rglob("*.wav"))
    relative = [wav.relative_to(split_corpus["test"]).as_posix() for wav in wavs]
    pairs = [(relative[i], relative[j]) for i in range(len(wavs)) for j in range(len(wavs)) if i != j][::7]
    lines = [
        f"{int(wavs[relative.index(a)].parent == wavs[relative.index(b)].parent)} {a} {b}" for a, b in pairs
    ]
    (tmp_path / "veri.txt").write_text("\n".join(lines) + "\n")
    scores = tmp_path / "scores.txt"
    check_cli_ok(
        cli_invoke(
            "score", enrolled_model, tmp_path / "veri.txt", "--audio-root", split_corpus["test"], "-o", scores
        )
    )
    assert len(scores.read_text().splitlines()) == len(pairs) + 1  # and the "#" line
    check_cli_ok(cli_invoke("evaluate", scores, "--trials", tmp_path / "veri.txt"))
    (tmp_path / "bad.txt").write_text("spk01 nowhere/missing.wav target\n")
    args = ["-o", scores, "--audio-root", split_corpus["test"]]
    check_cli_error(cli_invoke("score", enrolled_model, tmp_path / "bad.txt", *args), "missing.wav")
    (tmp_path / "unknown.txt").write_text(f"stranger {relative[0]} target\n")
    check_cli_error(
        cli_invoke("score", enrolled_model, tmp_path / "unknown.txt", *args),
        "'stranger'",
        "neither an enrolled",
    )


def test_quiet_and_global_flags_after_the_command(enrolled_model: Path, split_corpus):
    for args in (["--quiet", "list", enrolled_model], ["list", enrolled_model, "--quiet"]):
        result = cli_invoke(*args)
        check_cli_ok(result)
        assert result.stderr == ""


def test_8khz_round_trip(split_corpus, tmp_path: Path):
    """A feature setting chosen at train-ubm is stored and used by every later command."""
    model = tmp_path / "narrowband"
    speakers = ["spk01", "spk02"]
    check_cli_ok(
        cli_invoke(
            "train-ubm",
            model,
            *(split_corpus["enroll"] / s for s in speakers),
            *SMALL,
            "--set",
            "features.sample_rate=8000",
            "-q",
        )
    )
    assert json.loads(cli_invoke("list", model, "--json").stdout)["sample_rate"] == 8000
    for speaker in speakers:
        check_cli_ok(
            cli_invoke("enroll", model, "--speaker", speaker, split_corpus["enroll"] / speaker, "-q")
        )
    wav = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[0]
    document = json.loads(cli_invoke("identify", model, wav, "--json", "-q").stdout)
    store = ModelStore.open(model)
    scorer = Scorer(store.load_ubm(), store.load_speakers(), top_c=ScoreConfig().top_c)
    config = FeatureConfig.from_dict(store.feature_config)
    stored = store.load_feature_stats()  # None: the defaults need no pool statistics
    stats = None if stored is None else GlobalStats.from_arrays(stored)
    assert config.sample_rate == 8000
    narrowband = dict(zip(scorer.names, scorer.llr(extract(wav, config, stats=stats)), strict=True))
    for entry in document[0]["scores"]:
        assert entry["score"] == pytest.approx(narrowband[entry["speaker"]], abs=1e-5)
    wideband = scorer.llr(extract(wav, dataclasses.replace(config, sample_rate=16000), stats=stats))
    assert not np.allclose(wideband, [narrowband[name] for name in scorer.names])


class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        data = self.server.files.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_download_from_a_local_mirror(tmp_path: Path, synthetic_corpus: Path):
    flac = "1-2-0000.flac"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(next(synthetic_corpus.rglob("*.wav")), arcname=f"LibriSpeech/test-other/1/2/{flac}")
    archive = buffer.getvalue()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ArchiveHandler)
    server.files = {"test-other.tar.gz": archive}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/resources/12"
        # The published checksum does not match the fixture archive: nothing is extracted.
        check_cli_error(
            cli_invoke(
                "download",
                "librispeech",
                "--subset",
                "test-other",
                "--dest",
                tmp_path / "a",
                "--base-url",
                url,
                "-q",
            ),
            "test-other",
        )
        assert not (tmp_path / "a" / "LibriSpeech").exists()
        md5 = hashlib.md5(archive).hexdigest()
        result = cli_invoke(
            "download",
            "librispeech",
            "--subset",
            "test-other",
            "--dest",
            tmp_path / "b",
            "--base-url",
            url,
            "--md5",
            md5,
            "-q",
        )
        check_cli_ok(result)
        assert (tmp_path / "b" / "LibriSpeech" / "test-other" / "1" / "2" / flac).is_file()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    check_cli_error(cli_invoke("download", "voxceleb1", "--subset", "dev", "--dest", tmp_path), "voxceleb1")


def test_incompatible_models_are_refused(model_copy: Path, split_corpus):
    wav = next(split_corpus["test"].rglob("*.wav"))
    manifest_path = model_copy / "manifest.json"
    original = json.loads(manifest_path.read_text())
    older = json.loads(manifest_path.read_text())
    del older["feature_config"]["n_mels"]  # a model written before this setting existed
    manifest_path.write_text(json.dumps(older))
    check_cli_error(cli_invoke("identify", model_copy, wav), "features differ", "n_mels")
    newer = dict(original, spkid_version="99.0.0")
    manifest_path.write_text(json.dumps(newer))
    check_cli_error(cli_invoke("identify", model_copy, wav), "spkid 99.0.0", str(manifest_path))


def test_batch_commands_skip_bad_files_only_when_asked(model_copy: Path, split_corpus, tmp_path: Path):
    pool = tmp_path / "pool"
    shutil.copytree(split_corpus["enroll"] / "spk01", pool)
    (pool / "zz_truncated.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    check_cli_error(cli_invoke("train-ubm", tmp_path / "m", pool, *SMALL), "zz_truncated.wav")
    result = cli_invoke("train-ubm", tmp_path / "m", pool, *SMALL, "--skip-bad", "-q")
    check_cli_ok(result)
    assert (
        "on 3 files" in result.stdout and "skipped:" in result.stderr and "zz_truncated.wav" in result.stderr
    )
    only_bad = tmp_path / "bad_pool"
    only_bad.mkdir()
    (only_bad / "a.wav").write_bytes(b"")
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "m2", only_bad, *SMALL, "--skip-bad"), "no usable audio"
    )

    # score: a trial whose recording is unusable stops the run, or is left unscored with --skip-bad.
    shutil.copy(pool / "zz_truncated.wav", tmp_path / "broken.wav")
    wav = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[0]
    trials = tmp_path / "trials.txt"
    trials.write_text(f"spk01 {wav} target\nspk02 {tmp_path / 'broken.wav'} nontarget\n")
    scores = tmp_path / "scores.txt"
    check_cli_error(cli_invoke("score", model_copy, trials, "-o", scores), "broken.wav")
    result = cli_invoke("score", model_copy, trials, "-o", scores, "--skip-bad")
    check_cli_ok(result)
    assert "1 trials unscored" in result.stdout and len(scores.read_text().splitlines()) == 2


def test_calibrate_then_identify_reports_calibrated_llrs(model_copy: Path, split_corpus, tmp_path: Path):
    speakers = sorted(p.name for p in split_corpus["enroll"].iterdir())
    write_kaldi_trials(tmp_path / "trials.txt", split_corpus["test"], speakers)
    scores = tmp_path / "scores.txt"
    check_cli_ok(
        cli_invoke(
            "score", model_copy, tmp_path / "trials.txt", "--audio-root", split_corpus["test"], "-o", scores
        )
    )
    wav = sorted((split_corpus["test"] / "spk03").glob("*.wav"))[0]
    raw = json.loads(cli_invoke("identify", model_copy, wav, "--json", "-k", "0").stdout)[0]["scores"]
    result = cli_invoke("calibrate", model_copy, scores, "--trials", tmp_path / "trials.txt")
    check_cli_ok(result)
    assert "stored calibration" in result.stdout
    # An independent fit of the same prior-weighted logistic regression (scikit-learn).
    from sklearn.linear_model import LogisticRegression

    score_lines = [line.split() for line in scores.read_text().splitlines() if not line.startswith("#")]
    values = {(e, t): float(s) for e, t, s in score_lines}
    labels = [line.split()[2] == "target" for line in (tmp_path / "trials.txt").read_text().splitlines()]
    x = np.array(list(values.values()))
    y = np.array(labels, dtype=int)
    weights = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum()) * len(y)
    # Platt's targets: a target trial is (N+ + 1) / (N+ + 2) of a target, a non-target 1 / (N- + 2) of one
    soft = np.where(y == 1, (y.sum() + 1) / (y.sum() + 2), 1 / ((1 - y).sum() + 2))
    fit = LogisticRegression(C=1e6).fit(
        np.r_[x, x][:, None],
        np.r_[np.ones_like(y), np.zeros_like(y)],
        sample_weight=np.r_[weights * soft, weights * (1 - soft)],
    )
    calibrated = json.loads(cli_invoke("identify", model_copy, wav, "--json", "-k", "0").stdout)[0]["scores"]
    before = {entry["speaker"]: entry["score"] for entry in raw}
    after = {entry["speaker"]: entry["score"] for entry in calibrated}
    for name in before:
        expected = fit.coef_[0, 0] * before[name] + fit.intercept_[0]
        assert after[name] == pytest.approx(expected, abs=0.05 * max(1.0, abs(expected)))
    verdict = json.loads(cli_invoke("verify", model_copy, "-s", "spk03", wav, "--json").stdout)[0]
    assert verdict["threshold"] == pytest.approx(np.log(99.0))  # Bayes threshold at p_target = 0.01
    check_cli_error(cli_invoke("calibrate", model_copy, scores), "carry no labels")


def test_stored_s_norm_is_applied(split_corpus, tmp_path: Path):
    """With score.normalization=snorm at train time identify reports S-normalised scores (checked by hand)."""
    from spkid.score import Cohort

    model = tmp_path / "snorm"
    check_cli_ok(
        cli_invoke(
            "train-ubm",
            model,
            split_corpus["enroll"],
            *SMALL,
            "--set",
            "score.normalization=snorm",
            "--set",
            "score.cohort_size=10",
            "-q",
        )
    )
    check_cli_ok(cli_invoke("enroll", model, split_corpus["enroll"], "-q"))
    wav = sorted((split_corpus["test"] / "spk05").glob("*.wav"))[0]
    document = json.loads(cli_invoke("identify", model, wav, "--json", "-k", "0").stdout)[0]
    assert route_recordings(model, [wav]) == [(model / COMPANION_DIR, [wav])]  # wideband: the companion's
    store = ModelStore.open(model / COMPANION_DIR)
    ubm, speakers = store.load_ubm(), store.load_speakers()
    cohort = Cohort.from_arrays(store.load_cohort(), ubm)
    assert len(cohort.segments) == len(cohort.models) == 10  # score.cohort_size
    stored = store.load_feature_stats()  # None: the defaults need no pool statistics
    stats = None if stored is None else GlobalStats.from_arrays(stored)
    features = extract(wav, FeatureConfig.from_dict(store.feature_config), stats=stats)
    raw = Scorer(ubm, speakers).llr(features)
    on_cohort = Scorer(ubm, speakers).llr_many(cohort.segments)  # (n_cohort, n_speakers): Z-norm statistics
    cohort_models = Scorer(ubm, {str(i): m for i, m in enumerate(cohort.models)}).llr(features)  # T-norm
    z_part = (raw - on_cohort.mean(axis=0)) / on_cohort.std(axis=0)
    t_part = (raw - cohort_models.mean()) / cohort_models.std()
    expected = dict(zip(speakers, 0.5 * (z_part + t_part), strict=True))
    for entry in document["scores"]:
        assert entry["score"] == pytest.approx(expected[entry["speaker"]], abs=1e-4)
    assert document["speaker"] == max(expected, key=expected.get)


def test_warnings_go_to_stderr_unless_quiet(enrolled_model: Path, split_corpus, tmp_path: Path):
    source = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[0]
    signal, rate = soundfile.read(source, dtype="float32")
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.clip(signal * 50.0, -1.0, 1.0), rate, subtype="PCM_16")  # recorded far too loud
    result = cli_invoke("identify", enrolled_model, loud)
    check_cli_ok(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "loud.wav" in warnings[0] and "clipped" in warnings[0], result.stderr
    quiet = cli_invoke("identify", enrolled_model, loud, "--quiet")
    check_cli_ok(quiet)
    assert "warning" not in quiet.stderr and quiet.stdout == result.stdout


def test_warnings_from_worker_processes_go_to_stderr_unless_quiet(
    enrolled_model: Path, split_corpus, tmp_path: Path
):
    sources = sorted((split_corpus["test"] / "spk01").glob("*.wav"))[:2]
    for index, source in enumerate(sources):
        signal, rate = soundfile.read(source, dtype="float32")
        gain = 50.0 if index == 0 else 1.0  # only the first is recorded far too loud
        clipped = np.clip(signal * gain, -1.0, 1.0)
        soundfile.write(tmp_path / f"take{index}.wav", clipped, rate, subtype="PCM_16")
    result = cli_invoke("identify", enrolled_model, tmp_path / "take0.wav", tmp_path / "take1.wav", "-j", "2")
    check_cli_ok(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "take0.wav" in warnings[0] and "clipped" in warnings[0], result.stderr
    quiet = cli_invoke(
        "identify", enrolled_model, tmp_path / "take0.wav", tmp_path / "take1.wav", "-j", "2", "--quiet"
    )
    check_cli_ok(quiet)
    assert "clipped" not in quiet.stderr and quiet.stdout == result.stdout


@pytest.mark.parametrize("arguments", [["list"], ["identify", "-k", "0"], ["--help"]])
def test_a_closed_output_pipe_ends_quietly(enrolled_model: Path, split_corpus, arguments: list[str]):
    """``spkid list model | head -1``: the reader goes away; no ``error:`` line, no traceback, exit 1."""
    command = [*arguments, str(enrolled_model)] if arguments != ["--help"] else arguments
    if arguments[0] == "identify":
        command.append(str(split_corpus["test"]))
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from spkid.cli import app; app()", *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "error" not in done.stderr.lower() and "Traceback" not in done.stderr, done.stderr


def test_the_cli_imports_only_declared_packages():
    """typer no longer installs click (it carries its own copy): the CLI must not import click, which only a
    development install happens to have (`make demo` on a fresh machine failed on `import click`)."""
    program = (
        "import sys\n"
        "sys.modules['click'] = None  # any 'import click' now fails\n"
        "from spkid.cli import app\n"
        "sys.argv = ['spkid', '--version']\n"
        "app()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "spkid" in done.stdout, done.stderr
