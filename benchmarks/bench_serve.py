"""Identification latency of ``spkid serve`` under concurrent clients, against one CLI call per recording.

A synthetic model (a 256-component UBM and, as the defaults give a 16 kHz pool, a wideband companion;
1,000 enrolled speakers MAP-adapted from synthetic recordings, in both) is
built once in --work-dir. The service runs on loopback in a subprocess; 1, 4 and 16 clients (threads, one
HTTP connection each) send 3-s recordings to /identify for --seconds each. Printed per level: p50 and p99
latency, requests per second, errors (must be 0). The peer is the same work through the command line, one
``spkid identify MODEL REC`` process per recording; the ratio is the CLI's p50 over the service's p50.
Target: service p50 <= 60 ms with one client.

    python benchmarks/bench_serve.py [--seconds 60] [--clients 1 4 16] [--cli-calls 5] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 60.0
N_SPEAKERS = 1000
CLI = [sys.executable, "-c", "from spkid.cli import app; app()"]


def build_model(work: Path) -> tuple[Path, list[Path]]:
    """The model directory with 1,000 speakers and the 3-s probe recordings (built once)."""
    from spkid.corpora.synthetic import make_speakers
    from spkid.recognizer import Recognizer
    from spkid.recognizer.bands import companion_of
    from spkid.store import ModelStore

    model, corpus, probes = work / "model", work / "corpus", work / "probes"
    if (model / "speakers").is_dir() and len(list((model / "speakers").glob("*.npz"))) >= N_SPEAKERS:
        return model, sorted(probes.rglob("*.wav"))
    make_speakers(corpus, n_speakers=40, n_utterances=4, duration_s=3.0, seed=7)
    make_speakers(probes, n_speakers=8, n_utterances=4, duration_s=3.0, seed=8)
    settings = ["--set", "ubm.n_components=256", "--set", "ubm.max_iter=5"]
    subprocess.run(
        [*CLI, "--quiet", "train-ubm", str(model), str(corpus), *settings, "--overwrite"], check=True
    )
    # every speaker in the main model and, as enrolling on wideband audio does, in its wideband companion
    # (features.bands: auto, the default on this 16 kHz pool), from the same two recordings
    started = time.perf_counter()
    for directory in [model, *filter(None, [companion_of(model)])]:
        recognizer = Recognizer.open(directory)
        features = list(recognizer.extract(sorted(corpus.rglob("*.wav"))))
        store = ModelStore.open(directory)
        rng = np.random.default_rng(0)
        for index in range(N_SPEAKERS):
            chosen = [features[i] for i in rng.choice(len(features), size=2, replace=False)]
            speaker = recognizer.adapt(chosen)
            name = f"speaker{index:04d}"
            store.save_speaker(
                name, speaker, replace=True, cohort_stats=recognizer.cohort_statistics(speaker)
            )
    print(f"built {model}: {N_SPEAKERS} speakers in {time.perf_counter() - started:.0f} s", flush=True)
    return model, sorted(probes.rglob("*.wav"))


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([*CLI, "--quiet", "serve", str(model), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"spkid serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("spkid serve did not become ready in 300 s")


def load(url: str, probes: list[bytes], n_clients: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) of every request and the number of errors, ``n_clients`` clients for ``seconds``."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            index = offset
            while time.monotonic() < stop_at:
                data = probes[index % len(probes)]
                started = time.perf_counter()
                try:
                    answer = session.post("/identify", files=[("audio", ("probe.wav", data, "audio/wav"))])
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok
                index += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per client level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--cli-calls", type=int, default=5, help="CLI calls timed for the peer")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "spkid-bench-serve")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model, probe_files = build_model(args.work_dir)
    probes = [file.read_bytes() for file in probe_files]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {len(probes)} probes of 3 s")

    cli_s = []
    for file in probe_files[: args.cli_calls]:
        started = time.perf_counter()
        subprocess.run(
            [*CLI, "--quiet", "identify", str(model), str(file), "--json"], check=True, capture_output=True
        )
        cli_s.append(time.perf_counter() - started)
    cli_p50_ms = 1000 * float(np.median(cli_s))

    process, url = start_server(model)
    rows = []
    try:
        load(url, probes, 1, min(5.0, args.seconds))  # warm-up
        for n_clients in args.clients:
            latencies, errors = load(url, probes, n_clients, args.seconds)
            ms = 1000 * np.asarray(latencies)
            rows.append(
                (n_clients, np.percentile(ms, 50), np.percentile(ms, 99), len(ms) / args.seconds, errors)
            )
    finally:
        process.terminate()
        process.wait(timeout=60)

    print(f"identify, 1,000 speakers, {args.seconds:g} s per level; peer: one CLI call per recording")
    print(f"{'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'errors':>6} {'CLI p50 / p50':>13}")
    for n_clients, p50, p99, rate, errors in rows:
        print(f"{n_clients:7d} {p50:8.1f} {p99:8.1f} {rate:7.1f} {errors:6d} {cli_p50_ms / p50:13.1f}")
    print(
        f"{'CLI':>7} {cli_p50_ms:8.1f} {1000 * max(cli_s):8.1f} {1000 / cli_p50_ms:7.2f} {0:6d} {1.0:13.1f}"
    )
    single = next((row for row in rows if row[0] == 1), None)
    failed = [f"{row[4]} errors with {row[0]} clients" for row in rows if row[4]]
    if single is not None and single[1] > TARGET_P50_MS:
        failed.append(f"p50 {single[1]:.1f} ms > {TARGET_P50_MS:g} ms with 1 client")
    print(
        "target (p50 <= 60 ms with 1 client, no errors): "
        + ("met" if not failed else "MISSED: " + "; ".join(failed))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
