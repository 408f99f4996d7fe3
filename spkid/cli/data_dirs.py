"""Kaldi data directories on the command line: ``wav.scp`` lists (and their ``utt2spk``, ``segments``)
given where spkid takes audio files and folders.

The parsing and materialising live in :mod:`spkid.corpora.kaldi`; this module turns the arguments of
``train-ubm``, ``enroll`` and ``identify`` into audio files for the API call, in a temporary folder that
is removed when the command ends, and maps the recordings back to their utterance ids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from spkid.corpora.kaldi import is_data_dir

__all__ = ["AllowPipes", "audio_inputs", "by_utterance_id", "data_dir_speakers", "speakers_to_enroll"]

AllowPipes = Annotated[
    bool,
    typer.Option(
        "--allow-pipes",
        help="Run wav.scp entries that are shell pipes ('sox x.flac -t wav - |'), with a timeout.",
    ),
]


@contextlib.contextmanager
def audio_inputs(paths: Sequence[Path], *, allow_pipes: bool) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """The audio files of ``paths``, Kaldi data directories / ``.scp`` lists expanded to their utterances.

    Yields ``(files, names)``: ``names`` maps a file (as a string) to the utterance id it stands for.
    """
    from spkid.corpora.kaldi import materialize, read_data_dir

    if not any(is_data_dir(path) for path in paths):
        yield list(paths), {}
        return
    with tempfile.TemporaryDirectory(prefix="spkid-kaldi-") as scratch:
        files: list[Path] = []
        names: dict[str, str] = {}
        for index, path in enumerate(paths):
            if not is_data_dir(path):
                files.append(path)
                continue
            audio = materialize(read_data_dir(path), Path(scratch) / str(index), allow_pipes=allow_pipes)
            for utterance, file in audio.items():
                files.append(file)
                names.setdefault(str(file), utterance)
        yield files, names


@contextlib.contextmanager
def data_dir_speakers(path: Path, *, allow_pipes: bool) -> Iterator[dict[str, list[Path]]]:
    """``{speaker: audio files}`` of a Kaldi data directory (speakers from ``utt2spk`` / ``spk2utt``)."""
    from spkid.corpora.kaldi import materialize, read_data_dir

    data = read_data_dir(path)
    speakers = data.speakers()
    with tempfile.TemporaryDirectory(prefix="spkid-kaldi-") as scratch:
        audio = materialize(data, scratch, allow_pipes=allow_pipes)
        yield {
            speaker: [audio[utterance] for utterance in utterances]
            for speaker, utterances in speakers.items()
        }


def by_utterance_id(outcome: Any, names: Mapping[str, str]) -> Any:
    """``outcome`` with each result's ``recording`` replaced by its utterance id (those ``names`` maps)."""
    if not names:
        return outcome
    results = [
        dataclasses.replace(result, recording=names.get(result.recording, result.recording))
        for result in outcome.results
    ]
    return dataclasses.replace(outcome, results=results)


@contextlib.contextmanager
def speakers_to_enroll(
    paths: Sequence[Path], speaker: str | None, *, allow_pipes: bool
) -> Iterator[dict[str, list[Path]]]:
    """``{speaker: audio files}`` from ``enroll``'s arguments: one --speaker NAME, a SPEAKERS_DIR of
    sub-folders, or a Kaldi data directory (speakers from ``utt2spk`` / ``spk2utt``)."""
    from spkid.audio import AUDIO_EXTENSIONS
    from spkid.errors import DataError
    from spkid.recognizer import speakers_in_folder

    if speaker is not None:
        yield {speaker: list(paths)}
        return
    if len(paths) != 1:
        raise typer.BadParameter(
            "give one SPEAKERS_DIR, or --speaker NAME with the speaker's files", param_hint="PATHS"
        )
    if is_data_dir(paths[0]):
        with data_dir_speakers(paths[0], allow_pipes=allow_pipes) as speakers:
            yield speakers
        return
    try:
        speakers = speakers_in_folder(paths[0])
    except DataError:
        folder = paths[0]
        loose = folder.is_dir() and any(
            file.suffix.lower() in AUDIO_EXTENSIONS for file in folder.iterdir() if file.is_file()
        )
        if not loose:
            raise
        raise DataError(
            f"{folder}: holds audio files but no <speaker>/ sub-folders; to enroll them as one speaker: "
            f"spkid enroll MODEL_DIR --speaker NAME {folder}"
        ) from None
    yield speakers
