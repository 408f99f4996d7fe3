"""``spkid serve`` for real: the server in a subprocess on a free loopback port, driven over HTTP."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import REPO_ROOT, check_cli_ok, cli_invoke

from spkid.errors import ConfigError
from spkid.serve import ServeSettings, read_token

httpx = pytest.importorskip("httpx", reason="the server test needs httpx (pip install 'spkid[dev]')")
pytest.importorskip("fastapi", reason="spkid serve needs the serve extra (pip install 'spkid[serve]')")

SMALL = ["--set", "ubm.n_components=8", "--set", "score.cohort_size=4", "--set", "ubm.max_iter=3"]
TOKEN = "test-token-123"
MAX_DURATION_S = 5.0
STARTUP_DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def corpus(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model trained on 3 files of every speaker, all but the last speaker enrolled; the test files."""
    root = tmp_path_factory.mktemp("serve")
    speakers = sorted(p for p in synthetic_corpus.iterdir() if p.is_dir())
    for speaker in speakers:
        for index, file in enumerate(sorted(speaker.glob("*.wav"))):
            part = "enroll" if index < 3 else "test"
            (root / part / speaker.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(file, root / part / speaker.name / file.name)
    model = root / "model"
    check_cli_ok(cli_invoke("--quiet", "train-ubm", model, root / "enroll", *SMALL))
    for speaker in speakers[:-1]:
        check_cli_ok(
            cli_invoke("--quiet", "enroll", model, "--speaker", speaker.name, root / "enroll" / speaker.name)
        )
    return {"root": root, "model": model, "new": root / "enroll" / speakers[-1].name, "test": root / "test"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(command: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``spkid serve`` and poll until it answers /health (with a deadline).

    Its output goes to the file ``log``, not a pipe nobody reads while it runs (a full pipe would stall it).
    """
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:  # poll for readiness, with a deadline
        if process.poll() is not None:
            pytest.fail(f"spkid serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"spkid serve not ready after {STARTUP_DEADLINE_S} s: {log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(corpus: dict[str, Path]) -> Iterator[str]:
    """The base URL of a running ``spkid serve`` (token required, 5-s duration limit)."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SPKID_SERVE_TOKEN": TOKEN}
    command = [sys.executable, "-c", "from spkid.cli import app; app()", "serve", str(corpus["model"])]
    command += ["--port", str(port), "--max-duration", str(MAX_DURATION_S), "--max-upload-mb", "1"]
    log = corpus["root"] / "server.log"
    process = _start(command, port, env, log)
    yield f"http://127.0.0.1:{port}"
    process.terminate()  # SIGTERM: a graceful shutdown, then exit status 0
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text()


#: ``spkid serve`` whose /identify, once the request has arrived, says so (a file) and waits for the test to
#: create another file: a request held in flight for as long as the test needs, without timing.
HELD_SERVER = """
import sys, time
from pathlib import Path
from spkid.serve.service import SpeakerService

arrived, release = Path(sys.argv[1]), Path(sys.argv[2])
identify = SpeakerService.identify

def held_identify(self, *args, **kwargs):
    arrived.touch()
    while not release.exists():
        time.sleep(0.01)
    return identify(self, *args, **kwargs)

SpeakerService.identify = held_identify
sys.argv = [sys.argv[0], *sys.argv[3:]]
from spkid.cli import app
app()
"""


def test_sigterm_finishes_the_request_in_flight_then_exits_0(corpus: dict[str, Path], tmp_path: Path):
    port = _free_port()
    arrived, release = tmp_path / "arrived", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", HELD_SERVER, str(arrived), str(release), "serve", str(corpus["model"])]
    process = _start([*command, "--port", str(port)], port, env, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    probe = sorted((corpus["test"] / corpus["new"].name).glob("*.wav"))[0]
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{url}/identify", files=_files(probe), timeout=120))
    )
    try:
        request.start()
        _poll(arrived.exists, "the request to reach the service")
        process.send_signal(signal.SIGTERM)

        def refusing() -> bool:  # the server stopped listening: it is shutting down, the request still held
            try:
                httpx.get(f"{url}/health", timeout=5)
            except httpx.TransportError:
                return True
            return False

        _poll(refusing, "the server to stop accepting connections")
        assert process.poll() is None and not answers  # still running: the request is in flight
        release.touch()
        request.join(timeout=120)
        assert process.wait(timeout=60) == 0
    finally:
        release.touch()
        if process.poll() is None:
            process.kill()
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["recording"] == probe.name and answer.json()[0]["speaker"] is not None
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _poll(condition: Callable[[], bool], what: str, deadline_s: float = 120.0) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms; fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _files(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("audio", (path.name, path.read_bytes(), "audio/wav")) for path in paths]


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    """An HTTP client of the test server, with the token; closed after the test."""
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


def test_enroll_identify_verify_remove(client: httpx.Client, corpus: dict[str, Path]):
    new = corpus["new"].name
    listed = client.get("/speakers").json()["speakers"]
    assert new not in listed and len(listed) == 5

    answer = client.post(f"/speakers/{new}", files=_files(*sorted(corpus["new"].glob("*.wav"))))
    assert answer.status_code == 200, answer.text
    fields = {key: value for key, value in answer.json().items() if key != "cmvn_auto"}  # tested on its own
    assert fields == {"speaker": new, "files": 3}
    again = client.post(f"/speakers/{new}", files=_files(*sorted(corpus["new"].glob("*.wav"))))
    assert again.status_code == 409 and "already enrolled" in again.json()["error"]

    probe = sorted((corpus["test"] / new).glob("*.wav"))[0]
    identified = client.post("/identify", files=_files(probe), data={"top_k": "3"})
    assert identified.status_code == 200, identified.text
    [result] = identified.json()
    assert result["recording"] == probe.name and result["speaker"] == new and len(result["scores"]) == 3

    verified = client.post("/verify", files=_files(probe), data={"speaker": new})
    assert verified.status_code == 200, verified.text
    assert verified.json()[0]["speaker"] == new and verified.json()[0]["accepted"] is True

    removed = client.delete(f"/speakers/{new}")
    assert removed.status_code == 200 and removed.json() == {"removed": new}
    gone = client.post("/verify", files=_files(probe), data={"speaker": new})
    assert gone.status_code == 404 and f"speaker '{new}' is not enrolled" in gone.json()["error"]

    # A removal through the CLI is seen by the running service without a restart.
    other = listed[0]
    check_cli_ok(cli_invoke("remove", corpus["model"], "--speaker", other))
    ranked = client.post("/identify", files=_files(probe), data={"top_k": "0"}).json()[0]["scores"]
    assert other not in [item["speaker"] for item in ranked] and len(ranked) == 4


def test_bad_requests_get_4xx_with_one_line(server: str, client: httpx.Client, corpus: dict[str, Path]):
    garbage = client.post("/identify", files=[("audio", ("junk.wav", b"not audio at all", "audio/wav"))])
    assert garbage.status_code == 400
    assert garbage.json()["error"].startswith("junk.wav: ") and "\n" not in garbage.json()["error"]

    probe = next((corpus["test"]).rglob("*.wav"))
    unknown = client.post("/verify", files=_files(probe), data={"speaker": "nobody"})
    assert unknown.status_code == 404 and "'nobody' is not enrolled" in unknown.json()["error"]

    samples, rate = soundfile.read(probe)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(samples, 3), rate, format="WAV")  # 9 s > the 5-s limit
    long = client.post("/identify", files=[("audio", ("long.wav", buffer.getvalue(), "audio/wav"))])
    assert long.status_code == 413 and "over the limit of 5 s" in long.json()["error"]
    huge = client.post("/identify", files=[("audio", ("huge.wav", b"\0" * (2 << 20), "audio/wav"))])
    assert huge.status_code == 413 and "request body over the limit" in huge.json()["error"]

    paths = client.post("/identify", data={"path": str(probe)})
    assert paths.status_code == 400 and "--allow-paths" in paths.json()["error"]

    anonymous = httpx.post(f"{server}/identify", files=_files(probe), timeout=60)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{server}/speakers", headers={"Authorization": "Bearer nope"}, timeout=60)
    assert wrong.status_code == 401
    assert httpx.get(f"{server}/docs", timeout=60).status_code == 200


def test_tokens_are_required_off_loopback(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a loopback address"):
        ServeSettings(tmp_path, host="0.0.0.0").check()
    ServeSettings(tmp_path, host="0.0.0.0", token="t").check()
    ServeSettings(tmp_path, host="::1").check()
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert read_token(token_file, environ={"SPKID_SERVE_TOKEN": "env"}) == "from-file"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="no token"):
        read_token(token_file)
    with pytest.raises(ConfigError, match="empty"):
        read_token(environ={"SPKID_SERVE_TOKEN": " "})
    result = cli_invoke("serve", tmp_path, "--host", "0.0.0.0")
    assert result.exit_code == 1 and result.stderr.startswith("error: --host 0.0.0.0 is not a loopback")


def test_service_in_process_reads_paths_only_when_allowed(corpus: dict[str, Path]):
    from spkid.serve import SpeakerService, TooLargeError

    probe = sorted((corpus["test"] / corpus["new"].name).glob("*.wav"))[0]
    service = SpeakerService(corpus["model"], allow_paths=True, max_duration_s=2.0)
    with pytest.raises(TooLargeError, match=f"{probe}: 3.0 s of audio, over the limit of 2 s"):
        service.identify(paths=[str(probe)])
    service = SpeakerService(corpus["model"], allow_paths=True)
    [result] = service.identify(paths=[str(probe)], top_k=0)
    assert result.recording == str(probe)
    assert [name for name, _ in result.scores] != [] and service.health()["status"] == "ok"
