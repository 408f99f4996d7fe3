"""Kaldi data directories: ``wav.scp``, ``utt2spk`` / ``spk2utt`` and optional ``segments``, as audio files.

A Kaldi (or SpeechBrain) user keeps lists, not folders. :func:`read_data_dir` parses a data directory (or a
lone ``wav.scp``); :func:`materialize` turns its utterances into audio files spkid can read: a ``wav.scp``
entry that is a file path is used as it is, a ``segments`` line is cut from its recording, and an entry that
is a shell pipe (``sox x.flac -t wav - |``) is refused unless pipes are allowed; then it runs through the
shell, as Kaldi runs it, with a timeout, and its output is kept as a WAV file. Errors name the file and line.
"""

from __future__ import annotations

import os
import re
import subprocess
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from spkid.errors import DataError

__all__ = ["PIPE_TIMEOUT_S", "KaldiDataDir", "is_data_dir", "materialize", "read_data_dir"]

#: Seconds a ``wav.scp`` pipe command may run before it is stopped (and named in the error).
PIPE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class WavEntry:
    """One ``wav.scp`` line: a recording id and a path, or a shell command (``pipe``), and where it was."""

    recording: str
    value: str
    pipe: bool
    where: str  # "<wav.scp>:<line>"


@dataclass(frozen=True)
class Segment:
    """One ``segments`` line: utterance ``utterance`` is ``recording`` from ``start_s`` to ``end_s``."""

    utterance: str
    recording: str
    start_s: float
    end_s: float  # -1: to the end, as in Kaldi
    where: str


@dataclass(frozen=True)
class KaldiDataDir:
    """A parsed Kaldi data directory.

    ``utterances`` lists the utterance ids in file order (the ``segments`` ids when there is a segments
    file, else the ``wav.scp`` ids); ``utt2spk`` is empty when the directory has neither ``utt2spk`` nor
    ``spk2utt``.
    """

    wav_scp: Path
    recordings: dict[str, WavEntry]
    segments: dict[str, Segment] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)

    @property
    def utterances(self) -> list[str]:
        return list(self.segments) if self.segments else list(self.recordings)

    def speakers(self) -> dict[str, list[str]]:
        """``{speaker: [utterance ids]}`` from ``utt2spk`` / ``spk2utt``, in file order."""
        if not self.utt2spk:
            raise DataError(f"{self.wav_scp.parent}: no utt2spk or spk2utt, so no speakers to enroll")
        speakers: dict[str, list[str]] = {}
        for utterance in self.utterances:
            if utterance in self.utt2spk:
                speakers.setdefault(self.utt2spk[utterance], []).append(utterance)
        return speakers


def is_data_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Kaldi data directory (holds ``wav.scp``) or a ``.scp`` list itself."""
    path = Path(path)
    return (path.is_dir() and (path / "wav.scp").is_file()) or (path.is_file() and path.suffix == ".scp")


def _table(path: Path, n_fields: int | None) -> list[tuple[str, list[str]]]:
    """``(where, fields)`` of the non-blank lines of a Kaldi table; ``n_fields``: the count required."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if (n_fields is not None and len(fields) != n_fields) or len(fields) < 2:
            raise DataError(f"{path}:{number}: expected {n_fields or 'at least 2'} fields, got {len(fields)}")
        rows.append((f"{path}:{number}", fields))
    return rows


def _wav_entries(wav_scp: Path) -> dict[str, WavEntry]:
    entries: dict[str, WavEntry] = {}
    for where, fields in _table(wav_scp, None):
        recording, value = fields[0], " ".join(fields[1:])
        if recording in entries:
            raise DataError(f"{where}: recording id {recording!r} listed twice")
        pipe = value.endswith("|")
        entries[recording] = WavEntry(recording, value[:-1].strip() if pipe else value, pipe, where)
    if not entries:
        raise DataError(f"{wav_scp}: lists no recordings")
    return entries


def read_data_dir(path: str | os.PathLike[str]) -> KaldiDataDir:
    """Parse a Kaldi data directory, or a lone ``wav.scp`` (its siblings are read when present).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "wav.scp").write_text("u1 /data/a.wav\\nu2 sox /data/b.flac -t wav - |\\n")
    >>> _ = (folder / "utt2spk").write_text("u1 alice\\nu2 alice\\n")
    >>> data = read_data_dir(folder)
    >>> data.utterances, data.speakers(), data.recordings["u2"].pipe
    (['u1', 'u2'], {'alice': ['u1', 'u2']}, True)
    """
    path = Path(path)
    wav_scp = path / "wav.scp" if path.is_dir() else path
    if not wav_scp.is_file():
        raise DataError(f"{path}: not a Kaldi data directory (no wav.scp)")
    folder = wav_scp.parent
    recordings = _wav_entries(wav_scp)
    segments: dict[str, Segment] = {}
    if (folder / "segments").is_file():
        for where, fields in _table(folder / "segments", 4):
            try:
                start_s, end_s = float(fields[2]), float(fields[3])
            except ValueError:
                raise DataError(f"{where}: start and end must be seconds, got {fields[2:]}") from None
            if fields[1] not in recordings:
                raise DataError(f"{where}: recording {fields[1]!r} is not in {wav_scp}")
            if start_s < 0 or (end_s != -1 and end_s <= start_s):
                raise DataError(f"{where}: segment {start_s}-{end_s} s is empty or negative")
            segments[fields[0]] = Segment(fields[0], fields[1], start_s, end_s, where)
    utt2spk: dict[str, str] = {}
    if (folder / "utt2spk").is_file():
        utt2spk = {fields[0]: fields[1] for _, fields in _table(folder / "utt2spk", 2)}
    elif (folder / "spk2utt").is_file():
        utt2spk = {utt: fields[0] for _, fields in _table(folder / "spk2utt", None) for utt in fields[1:]}
    return KaldiDataDir(wav_scp, recordings, segments, utt2spk)


def _file_name(identifier: str, suffix: str) -> str:
    """A file name for an id (ids may hold characters a file name cannot), kept apart from other ids'."""
    safe = re.sub(r"[^\w.-]", "_", identifier)
    return f"{safe}-{zlib.crc32(identifier.encode()):08x}.{suffix}"


def _run_pipe(entry: WavEntry, target: Path, timeout_s: float) -> Path:
    """Run a pipe entry's command through the shell (Kaldi's semantics) and keep its output as ``target``."""
    try:
        # shell=True is what a Kaldi pipe means (redirections, several commands); the user allowed it.
        done = subprocess.run(  # noqa: S602
            entry.value, shell=True, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise DataError(f"{entry.where}: pipe command did not finish within {timeout_s:g} s") from None
    if done.returncode != 0 or not done.stdout:
        reason = " ".join(done.stderr.decode(errors="replace").split())[:200] or "no output"
        raise DataError(f"{entry.where}: pipe command failed (exit {done.returncode}: {reason})")
    target.write_bytes(done.stdout)
    return target


def _recording_path(entry: WavEntry, folder: Path, *, allow_pipes: bool, timeout_s: float) -> Path:
    if entry.pipe:
        if not allow_pipes:
            raise DataError(
                f"{entry.where}: {entry.recording!r} is a shell pipe ('{entry.value} |'); "
                "pass --allow-pipes to run it"
            )
        return _run_pipe(entry, folder / _file_name(entry.recording, "pipe.wav"), timeout_s)
    path = Path(entry.value)
    if not path.is_absolute() and not path.exists():  # Kaldi paths are relative to the working directory
        beside = entry.where.rsplit(":", 1)[0]
        path = Path(beside).parent / path if (Path(beside).parent / path).exists() else path
    return path


def _cut(segment: Segment, recording: Path, target: Path) -> Path:
    try:
        info = soundfile.info(str(recording))
        start = int(round(segment.start_s * info.samplerate))
        stop = -1 if segment.end_s == -1 else int(round(segment.end_s * info.samplerate))
        samples, rate = soundfile.read(str(recording), start=start, stop=None if stop == -1 else stop)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise DataError(f"{segment.where}: cannot read recording {recording} ({exc})") from None
    if len(samples) == 0:
        raise DataError(f"{segment.where}: segment lies outside recording {recording}")
    soundfile.write(str(target), np.asarray(samples), rate, subtype="FLOAT")
    return target


def materialize(
    data: KaldiDataDir,
    folder: str | os.PathLike[str],
    *,
    allow_pipes: bool = False,
    timeout_s: float = PIPE_TIMEOUT_S,
) -> dict[str, Path]:
    """``{utterance id: audio file}``: path entries as they are, pipes run and segments cut into ``folder``.

    Raises
    ------
    DataError
        A pipe entry without ``allow_pipes``, a failed or timed-out pipe, or an unreadable segment, each
        naming the file and line.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    needed = {segment.recording for segment in data.segments.values()} if data.segments else data.recordings
    resolved: Mapping[str, Path] = {
        name: _recording_path(data.recordings[name], folder, allow_pipes=allow_pipes, timeout_s=timeout_s)
        for name in data.recordings
        if name in needed
    }
    if not data.segments:
        return dict(resolved)
    return {
        utterance: _cut(segment, resolved[segment.recording], folder / _file_name(utterance, "wav"))
        for utterance, segment in data.segments.items()
    }
