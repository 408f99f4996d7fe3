"""Kaldi data directories (spkid.corpora.kaldi): parsing, segments, pipes refused or run, line errors."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from spkid.corpora.kaldi import is_data_dir, materialize, read_data_dir
from spkid.errors import DataError

RATE_HZ = 16000


@pytest.fixture
def recordings(tmp_path: Path) -> dict[str, Path]:
    """Two seeded 2-s recordings."""
    paths = {}
    for index, name in enumerate(("rec_a", "rec_b")):
        signal = 0.1 * np.random.default_rng(index).standard_normal(2 * RATE_HZ)
        paths[name] = tmp_path / f"{name}.wav"
        soundfile.write(paths[name], signal.astype(np.float32), RATE_HZ, subtype="FLOAT")
    return paths


def data_dir(root: Path, wav_scp: str, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav.scp").write_text(wav_scp)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_paths_speakers_and_spk2utt(tmp_path: Path, recordings):
    folder = data_dir(
        tmp_path / "data",
        f"u1 {recordings['rec_a']}\nu2 {recordings['rec_b']}\n",
        spk2utt="alice u1\nbob u2\n",
    )
    assert is_data_dir(folder) and is_data_dir(folder / "wav.scp") and not is_data_dir(tmp_path)
    data = read_data_dir(folder)
    assert data.utterances == ["u1", "u2"] and data.speakers() == {"alice": ["u1"], "bob": ["u2"]}
    assert materialize(data, tmp_path / "out") == {"u1": recordings["rec_a"], "u2": recordings["rec_b"]}


def test_segments_are_cut_from_their_recording(tmp_path: Path, recordings):
    folder = data_dir(
        tmp_path / "data",
        f"rec_a {recordings['rec_a']}\n",
        segments="s1 rec_a 0.0 0.5\ns2 rec_a 0.5 -1\n",
        utt2spk="s1 alice\ns2 alice\n",
    )
    audio = materialize(read_data_dir(folder), tmp_path / "out")
    whole, _ = soundfile.read(recordings["rec_a"], dtype="float32")
    first, rate = soundfile.read(audio["s1"], dtype="float32")
    second, _ = soundfile.read(audio["s2"], dtype="float32")
    assert rate == RATE_HZ
    np.testing.assert_array_equal(first, whole[: RATE_HZ // 2])
    np.testing.assert_array_equal(second, whole[RATE_HZ // 2 :])


def test_a_pipe_is_refused_naming_the_line_unless_allowed(tmp_path: Path, recordings):
    copy = 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read())'
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(copy)}"
    folder = data_dir(tmp_path / "data", f"u1 {recordings['rec_a']}\nu2 {command} {recordings['rec_b']} |\n")
    with pytest.raises(DataError, match=r"wav\.scp:2: 'u2' is a shell pipe .*--allow-pipes"):
        materialize(read_data_dir(folder), tmp_path / "out")
    audio = materialize(read_data_dir(folder), tmp_path / "out", allow_pipes=True)
    assert audio["u2"].read_bytes() == recordings["rec_b"].read_bytes()


def test_a_failing_or_slow_pipe_names_its_line(tmp_path: Path, recordings):
    folder = data_dir(tmp_path / "data", f"u1 {recordings['rec_a']}\nu2 exit 7 |\n")
    with pytest.raises(DataError, match=r"wav\.scp:2: pipe command failed \(exit 7"):
        materialize(read_data_dir(folder), tmp_path / "out", allow_pipes=True)
    slow = data_dir(
        tmp_path / "slow", f"u1 {shlex.quote(sys.executable)} -c 'import time; time.sleep(30)' |\n"
    )
    with pytest.raises(DataError, match=r"wav\.scp:1: pipe command did not finish within 0.5 s"):
        materialize(read_data_dir(slow), tmp_path / "out", allow_pipes=True, timeout_s=0.5)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"wav.scp": ""}, "lists no recordings"),
        ({"wav.scp": "u1\n"}, r"wav\.scp:1: expected at least 2 fields"),
        ({"wav.scp": "u1 a.wav\nu1 b.wav\n"}, r"wav\.scp:2: recording id 'u1' listed twice"),
        ({"wav.scp": "u1 a.wav\n", "segments": "s1 u9 0 1\n"}, r"segments:1: recording 'u9' is not in"),
        ({"wav.scp": "u1 a.wav\n", "segments": "s1 u1 2 1\n"}, r"segments:1: segment 2.0-1.0 s is empty"),
    ],
)
def test_malformed_tables_name_file_and_line(tmp_path: Path, files: dict[str, str], message: str):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(DataError, match=message):
        read_data_dir(folder)


def test_no_speakers_without_utt2spk(tmp_path: Path, recordings):
    folder = data_dir(tmp_path / "data", f"u1 {recordings['rec_a']}\n")
    with pytest.raises(DataError, match="no utt2spk or spk2utt"):
        read_data_dir(folder).speakers()
