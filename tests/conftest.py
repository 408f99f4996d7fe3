"""Shared fixtures and helpers: where the real corpora live, small synthetic corpora, the CLI runner and its
checks, and the hypothesis settings and strategies of the robustness tests.

Test modules in the sub-folders import these with ``from conftest import ...`` (``tests`` is on pytest's
``pythonpath``, see pyproject.toml).
"""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
LIBRISPEECH = SHARED_DATA / "LibriSpeech"
RATE_HZ = 16000
#: ``spkid`` options for a small, fast model (16 components) where a CLI test trains one.
SMALL_MODEL = ["--set", "ubm.n_components=16", "--set", "score.cohort_size=6", "--set", "ubm.max_iter=5"]


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


def split_by_speaker(corpus: Path, root: Path, n_enroll: int = 3) -> dict[str, Path]:
    """Copy each speaker folder of ``corpus`` into ``root/enroll/<spk>/`` (its first ``n_enroll`` files) and
    ``root/test/<spk>/`` (the rest); returns ``{"enroll": ..., "test": ...}``."""
    for speaker_dir in sorted(p for p in corpus.iterdir() if p.is_dir()):
        files = sorted(speaker_dir.glob("*.wav"))
        for part, chosen in (("enroll", files[:n_enroll]), ("test", files[n_enroll:])):
            (root / part / speaker_dir.name).mkdir(parents=True)
            for file in chosen:
                shutil.copy(file, root / part / speaker_dir.name / file.name)
    return {"enroll": root / "enroll", "test": root / "test"}


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded synthetic corpus ``<root>/<speaker>/<utt>.wav`` (6 speakers x 6 utterances, 16 kHz)."""
    from spkid.corpora.synthetic import make_speakers

    root = tmp_path_factory.mktemp("synthetic_corpus")
    make_speakers(root, n_speakers=6, n_utterances=6, duration_s=3.0, sample_rate=16000, seed=1234)
    return root


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, list[Path]]]:
    """The same synthetic voices at 8 and 16 kHz: ``{rate: {speaker: files}}`` (3 speakers x 4 utterances of
    2 s; the two-front-end tests)."""
    from spkid.corpora.synthetic import make_speakers

    root = tmp_path_factory.mktemp("voices")
    return {
        rate: make_speakers(
            root / str(rate), n_speakers=3, n_utterances=4, duration_s=2.0, sample_rate=rate, seed=7
        )
        for rate in (8000, 16000)
    }


# ------------------------------------------------------------------------------------------------ CLI helpers
def cli_invoke(*args: object):
    """Run ``spkid ARGS`` in this process through typer's runner (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from spkid.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


PROCESS_TIMEOUT_S = 300
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
# The real console entry point in a child process (as tests/store/test_enroll_kill.py runs it).
CLI = "import sys\nfrom spkid.cli import app\nsys.argv[0] = 'spkid'\napp()\n"


def _cli_command(args: tuple[object, ...]) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        **THREADS,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return [sys.executable, "-c", CLI, *(str(arg) for arg in args)], env


def run_cli(*args: object, stderr_file: Path | None = None) -> subprocess.CompletedProcess:
    """``spkid ARGS`` in a fresh Python process; stderr to ``stderr_file`` (not a terminal) when given."""
    command, env = _cli_command(args)
    if stderr_file is None:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=PROCESS_TIMEOUT_S)
    with open(stderr_file, "w") as stream:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=stream, text=True, env=env, timeout=PROCESS_TIMEOUT_S
        )
    done.stderr = Path(stderr_file).read_text()
    return done


def run_cli_in_terminal(*args: object, columns: int = 200) -> subprocess.CompletedProcess:
    """``spkid ARGS`` in a fresh process whose stderr is a terminal (a pty), as a user at a shell sees it.

    ``stderr`` of the result is everything written to the terminal, escape sequences and all (see
    :func:`terminal_lines`); stdout is a plain file.
    """
    import pty

    command, env = _cli_command(args)
    env.update({"TERM": "xterm-256color", "COLUMNS": str(columns)})
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=slave, env=env)
        os.close(slave)
        written = bytearray()
        try:
            while True:
                ready, _, _ = select.select([master], [], [], PROCESS_TIMEOUT_S)
                if not ready:  # a guard against a hung child, not a timing
                    process.kill()
                    raise AssertionError(f"spkid {args}: no output on the terminal for {PROCESS_TIMEOUT_S} s")
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                written += chunk
        finally:
            os.close(master)
        returncode = process.wait(timeout=PROCESS_TIMEOUT_S)
        stdout.seek(0)
        return subprocess.CompletedProcess(
            command, returncode, stdout.read(), written.decode(errors="replace")
        )


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_lines(transcript: str) -> list[str]:
    """What stays on the screen of a terminal transcript: escape sequences dropped, and of each line
    rewritten in place (``\\r``, as a live display redraws) its last state."""
    text = ANSI_ESCAPE.sub("", transcript).replace("\r\n", "\n")
    lines = [[part for part in line.split("\r") if part.strip()] for line in text.split("\n")]
    return [parts[-1].rstrip() for parts in lines if parts]


def terminal_states(transcript: str) -> list[str]:
    """Every state each line of a terminal transcript went through (each redraw of a live display)."""
    text = ANSI_ESCAPE.sub("", transcript).replace("\r\n", "\n")
    return [part.rstrip() for line in text.split("\n") for part in line.split("\r") if part.strip()]


def check_cli_ok(result) -> None:
    """Exit code 0, with the output shown when it is not."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"


PROGRESS_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def check_cli_error(result, *fragments: str, allow_warnings: bool = False) -> str:
    """Exit code 1 and one ``error:`` line on stderr containing every fragment, no traceback; the line.

    The error line is all stderr holds, unless ``allow_warnings``: then ``warning:`` lines may come before it.
    """
    assert result.exit_code == 1, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    # Timestamped progress lines (train-ubm's EM iterations when stderr is not a terminal) may come first.
    lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert len(lines) == 1 or allow_warnings, result.stderr
    assert all(line.startswith("warning: ") for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


# ------------------------------------------------------------------------------------------------ robustness
# SPKID_HYPOTHESIS_EXAMPLES=1000 for a deeper local search; CI keeps it short.
PROPERTY = settings(
    max_examples=int(os.environ.get("SPKID_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def wav_bytes(samples: np.ndarray, subtype: str = "PCM_16") -> bytes:
    """``samples`` as the bytes of a WAV file at ``RATE_HZ``."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE_HZ, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder shared by the tests of one module."""
    return tmp_path_factory.mktemp("robustness_audio")


def check_model(model, X: np.ndarray) -> None:
    """A valid fitted model: finite parameters, weights summing to 1, positive variances, finite scores."""
    assert np.all(np.isfinite(model.weights_)) and np.all(model.weights_ >= 0)
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.variances_))
    assert np.all(model.variances_ > 0)
    assert all(np.isfinite(value) for value in model.history_)
    assert np.all(np.isfinite(model.score_samples(X)))


@st.composite
def degenerate_frames(draw) -> tuple[np.ndarray, int]:
    """Frames with duplicated rows, constant dimensions, and/or far fewer rows than components."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 6))
    n_components = draw(st.sampled_from([1, 2, 4, 8, 16]))
    n_distinct = draw(st.integers(1, 60))
    scale = draw(st.sampled_from([1e-4, 1.0, 1e4]))
    offset = draw(st.sampled_from([0.0, 1.0, -1e3]))
    distinct = offset + scale * rng.standard_normal((n_distinct, n_features))
    repeats = draw(st.integers(1, 50))
    X = np.repeat(distinct, repeats, axis=0)
    for dim in draw(st.sets(st.integers(0, n_features - 1))):
        X[:, dim] = draw(st.sampled_from([0.0, 3.5, -1e3]))
    if draw(st.booleans()):  # a few rows copied many times among the others
        X = np.concatenate([X, np.repeat(X[:1], draw(st.integers(1, 200)), axis=0)])
    return rng.permutation(X).astype(draw(st.sampled_from([np.float32, np.float64]))), n_components


# ------------------------------------------------------------------------------------ Speech Commands
SPEECH_COMMANDS_RATE_HZ = 16000
ENROLLED = ["0a1b2c3d", "4e5f6a7b", "c0ffee00"]  # 5 clips each
POOL = ["deadbeef", "f00dcafe"]  # 2 clips each


def clip_names(speaker: str, ext: str) -> list[str]:
    """Five clips of an enrolled speaker over two words and ``_unknown_``, in sorted relative-path order."""
    return [
        f"_unknown_/bed_{speaker}_nohash_0{ext}",
        f"_unknown_/wow_{speaker}_nohash_1{ext}",
        f"no/{speaker}_nohash_0{ext}",
        f"yes/{speaker}_nohash_0{ext}",
        f"yes/{speaker}_nohash_1{ext}",
    ]


#: Relative path of every clip of the fake tree (the third speaker in FLAC, as in ../shared/data).
FAKE_CLIPS = [
    *clip_names(ENROLLED[0], ".wav"),
    *clip_names(ENROLLED[1], ".wav"),
    *clip_names(ENROLLED[2], ".flac"),
    f"yes/{POOL[0]}_nohash_0.wav",
    f"_unknown_/cat_{POOL[0]}_nohash_3.wav",
    f"no/{POOL[1]}_nohash_0.flac",
    f"no/{POOL[1]}_nohash_1.flac",
]


def write_clip(path: Path, seed: int) -> Path:
    """0.1 s of seeded noise as a 16-bit clip at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = 0.1 * np.random.default_rng(seed).standard_normal(SPEECH_COMMANDS_RATE_HZ // 10)
    soundfile.write(path, signal.astype(np.float32), SPEECH_COMMANDS_RATE_HZ, subtype="PCM_16")
    return path


@pytest.fixture()
def fake_speech_commands(tmp_path: Path) -> Path:
    """A tiny Speech Commands tree in the published layout, plus what a release holds beside the clips."""
    root = tmp_path / "speech_commands"
    for seed, relative in enumerate(FAKE_CLIPS):
        write_clip(root / relative, seed)
    # Not clips: the release's noise and silence folders, its top-level documents, stray non-audio files.
    write_clip(root / "_background_noise_" / "white_noise.wav", 100)
    write_clip(root / "_silence_" / "clip_000.wav", 101)
    (root / "README.md").write_text("Speech Commands\n")
    (root / "testing_list.txt").write_text("yes/0a1b2c3d_nohash_0.wav\n")
    (root / "yes" / ".DS_Store").write_bytes(b"\0")
    (root / "no" / "notes.txt").write_text("not audio\n")
    return root
