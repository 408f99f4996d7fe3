"""Nothing enrolled is ever lost: SIGKILL the real ``spkid enroll`` process at random points, and race two.

Each repeat enrolls a few new speakers in a separate ``spkid enroll`` process and kills it with SIGKILL,
either after a random delay or at a random step of the store's write protocol (just before or after a temp
file is created, synced, renamed or removed). Afterwards the store must open, hold every speaker enrolled
before, and hold each speaker of the interrupted run either complete (equal to a clean enrollment) or not at
all. Two concurrent ``spkid enroll`` processes adding different speakers must both land.

``SPKID_KILL_REPEATS`` sets the number of repeats (default 2 for CI; run 20 locally).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import spkid.atomic
from spkid.cli import app
from spkid.corpora.synthetic import make_speakers
from spkid.store import ModelStore

REPEATS = int(os.environ.get("SPKID_KILL_REPEATS", "2"))
SMALL = ["--set", "ubm.n_components=8", "--set", "ubm.max_iter=5", "--set", "score.cohort_size=4"]
SOURCES = ["spk01", "spk02", "spk03", "spk04"]
PROCESS_TIMEOUT_S = 300

# The real CLI in a child process. With SPKID_TEST_KILL_AT_STEP=n it SIGKILLs itself at the n-th step of the
# store's write protocol: just before or just after each temp-file creation, fsync, rename or unlink.
CLI_WITH_KILL_HOOK = """
import os, signal, sys
kill_at = int(os.environ.get("SPKID_TEST_KILL_AT_STEP", "0"))
if kill_at:
    import spkid.atomic as atomic
    steps = 0
    def step():
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    def hooked(function):
        def call(*args, **kwargs):
            step()
            result = function(*args, **kwargs)
            step()
            return result
        return call
    atomic.tempfile.mkstemp = hooked(atomic.tempfile.mkstemp)
    for name in ("fsync", "replace", "unlink"):
        setattr(atomic.os, name, hooked(getattr(atomic.os, name)))
from spkid.cli import app
sys.argv[0] = "spkid"
app()
"""


def spawn_enroll(model: Path, speakers_dir: Path, *, kill_at_step: int = 0) -> subprocess.Popen:
    """Start ``spkid enroll MODEL SPEAKERS_DIR`` as its own process."""
    env = {**os.environ, "SPKID_TEST_KILL_AT_STEP": str(kill_at_step)}
    return subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_KILL_HOOK, "enroll", str(model), str(speakers_dir), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Wait for the process (killing it if the test gives up); its return code and stderr."""
    try:
        _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stderr


def speakers_dir_for(root: Path, names: dict[str, str]) -> Path:
    """A SPEAKERS_DIR whose folder ``name`` holds the recordings of corpus speaker ``names[name]``."""
    speakers_dir = root / f"batch_{len(list(root.glob('batch_*'))):03d}"
    for name, source in names.items():
        shutil.copytree(root / "corpus" / source, speakers_dir / name)
    return speakers_dir


def check_store(model: Path, before: set[str], reference: dict, origin: dict[str, str], new: dict[str, str]):
    """The store opens, keeps ``before``, and holds only complete speakers, at most ``new`` ones more.

    ``origin`` maps every speaker enrolled so far to its corpus speaker (updated with ``new``); every speaker
    present must equal the reference enrollment of its corpus speaker. Returns the names present.
    """
    origin.update(new)
    store = ModelStore.open(model)
    present = set(store.speakers())
    assert before <= present, f"lost {sorted(before - present)}"
    assert present - before <= set(new), f"unexpected {sorted(present - before - set(new))}"
    for name in sorted(present):
        model_now = store.load_speaker(name)  # checks the content hash, shapes, finiteness
        expected = reference[origin[name]]
        np.testing.assert_allclose(model_now.means_, expected.means_, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(model_now.variances_, expected.variances_)
    return present


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A corpus, a model with spk01 and spk02 enrolled, and reference models of every corpus speaker."""
    root = tmp_path_factory.mktemp("enroll_kill")
    make_speakers(root / "corpus", n_speakers=len(SOURCES), n_utterances=2, duration_s=1.5, seed=5)
    model = root / "model"
    runner = CliRunner()
    result = runner.invoke(app, ["-q", "train-ubm", str(model), str(root / "corpus"), *SMALL])
    assert result.exit_code == 0, result.output
    reference_model = root / "reference"
    shutil.copytree(model, reference_model)
    result = runner.invoke(app, ["-q", "enroll", str(reference_model), str(root / "corpus")])
    assert result.exit_code == 0, result.output
    reference_store = ModelStore.open(reference_model)
    reference = {name: reference_store.load_speaker(name) for name in SOURCES}
    speakers_dir = speakers_dir_for(root, {"spk01": "spk01", "spk02": "spk02"})
    assert runner.invoke(app, ["-q", "enroll", str(model), str(speakers_dir)]).exit_code == 0
    return {"root": root, "model": model, "reference": reference}


def test_sigkill_during_spkid_enroll_never_loses_speakers(system: dict, tmp_path: Path):
    model = Path(shutil.copytree(system["model"], tmp_path / "model"))
    root, reference = system["root"], system["reference"]
    rng = random.Random(20240611)
    before = set(ModelStore.open(model).speakers())
    assert before == {"spk01", "spk02"}
    origin = {"spk01": "spk01", "spk02": "spk02"}
    run_s = None  # how long a run takes to reach its writes (first step-killed run, then finished runs)
    outcomes = []
    for repeat in range(REPEATS):
        sources = {f"r{repeat:02d}-{letter}": rng.choice(SOURCES) for letter in "abc"}
        speakers_dir = speakers_dir_for(root, sources)
        started = time.monotonic()
        if repeat % 2 == 0:  # a random step of the write protocol (3 speakers x ~8 steps; beyond: no kill)
            kill_at = rng.randint(1, 28)
            process = spawn_enroll(model, speakers_dir, kill_at_step=kill_at)
            how = f"step {kill_at}"
        else:  # a random moment, mostly late in the run (after start-up): extraction, adaptation, writing
            delay_s = run_s * (rng.uniform(0.0, 1.0) if repeat % 4 == 1 else rng.uniform(0.6, 1.15))
            process = spawn_enroll(model, speakers_dir)
            try:
                process.wait(timeout=delay_s)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
            how = f"{delay_s:.2f} s"
        code, stderr = finish(process)
        if run_s is None or code == 0:  # the latest whole run: the machine's load changes the timing
            run_s = time.monotonic() - started
        assert code in (0, -signal.SIGKILL), f"repeat {repeat} ({how}): exit {code}\n{stderr}"
        present = check_store(model, before, reference, origin, sources)
        if code == 0:
            assert set(sources) <= present, f"repeat {repeat}: a finished enroll lost speakers"
        outcomes.append((how, "killed" if code else "finished", sorted(present - before)))
        before = present

    # The next writer clears the kills' stale temp files, and the model still works end to end.
    sources = {"after": "spk03"}
    runner = CliRunner()
    result = runner.invoke(app, ["-q", "enroll", str(model), str(speakers_dir_for(root, sources))])
    assert result.exit_code == 0, result.output
    before = check_store(model, before, reference, origin, sources)
    assert "after" in before
    assert list(model.rglob(spkid.atomic.TEMP_PREFIX + "*")) == []
    listing = runner.invoke(app, ["list", str(model)])
    assert listing.exit_code == 0 and sorted(listing.stdout.split()) == sorted(before)
    identified = runner.invoke(app, ["identify", str(model), str(root / "corpus" / "spk04"), "-k", "1"])
    assert identified.exit_code == 0, identified.output
    print(f"kills (when, outcome, speakers added): {outcomes}")


def test_two_concurrent_spkid_enrolls_both_land(system: dict, tmp_path: Path):
    model = Path(shutil.copytree(system["model"], tmp_path / "model"))
    root, reference = system["root"], system["reference"]
    before = set(ModelStore.open(model).speakers())
    origin = {"spk01": "spk01", "spk02": "spk02"}
    for repeat in range(REPEATS):
        batches = [
            {f"c{repeat:02d}-{side}{index}": SOURCES[(index + offset) % len(SOURCES)] for index in range(3)}
            for side, offset in (("x", 0), ("y", 2))
        ]
        processes = [spawn_enroll(model, speakers_dir_for(root, batch)) for batch in batches]
        for process in processes:
            code, stderr = finish(process)
            assert code == 0, f"repeat {repeat}: exit {code}\n{stderr}"
        sources = {**batches[0], **batches[1]}
        present = check_store(model, before, reference, origin, sources)
        assert present == before | set(sources), f"repeat {repeat}: missing {sorted(set(sources) - present)}"
        before = present
