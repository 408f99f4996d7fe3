"""A folder of speakers to enroll: one sub-folder of recordings per speaker."""

from __future__ import annotations

import os
from pathlib import Path

from spkid.corpora.folders import list_speakers

__all__ = ["speakers_in_folder"]

PathLike = str | os.PathLike[str]


def speakers_in_folder(speakers_dir: PathLike) -> dict[str, list[Path]]:
    """``{sub-folder name: its audio files}`` for every non-hidden sub-folder of ``speakers_dir`` with audio.

    Raises
    ------
    DataError
        The folder is missing or no sub-folder holds audio.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import speakers_in_folder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(tmp.name, n_speakers=2, n_utterances=2, duration_s=0.5)
    >>> {name: [file.name for file in files] for name, files in speakers_in_folder(tmp.name).items()}
    {'spk01': ['spk01_01.wav', 'spk01_02.wav'], 'spk02': ['spk02_01.wav', 'spk02_02.wav']}
    >>> tmp.cleanup()
    """
    return {
        name: [utterance.path for utterance in items] for name, items in list_speakers(speakers_dir).items()
    }
