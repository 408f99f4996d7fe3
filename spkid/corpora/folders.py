"""A user's own recordings: ``<root>/<speaker>/**/<audio>``, split per speaker into enroll and test.

Each immediate, non-hidden subfolder of the root is a speaker named after it; every audio file below it
(recursively, sorted) is one of its recordings. Loose files directly in the root belong to no speaker and
are not used. The split is deterministic: sorted path order, or a seeded shuffle.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spkid.audio import AUDIO_EXTENSIONS, find_audio_files
from spkid.corpora.protocol import Protocol, Utterance, all_pairs_trials
from spkid.errors import AudioError, DataError

__all__ = ["list_speakers", "prepare_folders"]


def list_speakers(
    root: str | Path, *, extensions: tuple[str, ...] = AUDIO_EXTENSIONS
) -> dict[str, list[Utterance]]:
    """Speaker folder name -> its recordings (sorted paths), for every speaker folder holding audio.

    Utterance ids are the file paths relative to the root, in POSIX form (``"alice/day1/take2.wav"``).

    Raises
    ------
    DataError
        The root is missing, or no speaker folder holds audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of speaker folders")
    speakers: dict[str, list[Utterance]] = {}
    folders = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    for folder in folders:
        try:
            files = find_audio_files([folder], extensions=extensions)
        except AudioError:  # a speaker folder without audio (e.g. notes) is not a speaker
            continue
        speakers[folder.name] = [Utterance(_utterance_id(path, root), folder.name, path) for path in files]
    if not speakers:
        raise DataError(f"{root}: no <speaker>/<recording> audio found (looked for {', '.join(extensions)})")
    return speakers


def prepare_folders(
    root: str | Path,
    *,
    enroll_fraction: float | None = 0.5,
    n_enroll: int | None = None,
    seed: int | None = None,
    ubm_root: str | Path | None = None,
) -> Protocol:
    """Split each speaker's recordings into enrollment and test.

    Parameters
    ----------
    root : str or Path
        ``<root>/<speaker>/**/<audio>``.
    enroll_fraction : float or None
        Share of each speaker's recordings that enroll it, rounded half up, at least 1 and at most all
        (``1.0`` enrolls everything and tests nothing). Ignored when ``n_enroll`` is given.
    n_enroll : int or None
        Enroll exactly this many recordings per speaker (all of them when a speaker has fewer).
    seed : int or None
        None takes recordings in sorted path order; an integer shuffles each speaker's recordings with
        ``numpy.random.default_rng(seed)`` first (the same seed always gives the same split).
    ubm_root : str, Path or None
        A separate ``<speaker>/<audio>`` tree for the UBM; by default the UBM trains on the enrollment
        recordings (tests are never in the UBM pool).

    Returns
    -------
    Protocol
        Trials pair every test recording with every speaker.
    """
    if n_enroll is None:
        if enroll_fraction is None or not 0.0 < enroll_fraction <= 1.0:
            raise DataError(f"{root}: enroll_fraction must be in (0, 1], got {enroll_fraction}")
    elif n_enroll < 1:
        raise DataError(f"{root}: n_enroll must be at least 1, got {n_enroll}")
    speakers = list_speakers(root)
    rng = None if seed is None else np.random.default_rng(seed)
    enroll: dict[str, tuple[Utterance, ...]] = {}
    test: list[Utterance] = []
    for name, utterances in speakers.items():
        if rng is not None:
            utterances = [utterances[index] for index in rng.permutation(len(utterances))]
        if n_enroll is not None:
            count = min(n_enroll, len(utterances))
        else:
            count = min(len(utterances), max(1, math.floor(enroll_fraction * len(utterances) + 0.5)))
        enroll[name] = tuple(utterances[:count])
        test.extend(utterances[count:])
    if ubm_root is not None:
        train = tuple(utterance for items in list_speakers(ubm_root).values() for utterance in items)
    else:
        train = tuple(utterance for items in enroll.values() for utterance in items)
    return Protocol(
        name=f"folders:{Path(root).name}",
        train=train,
        enroll=enroll,
        test=tuple(test),
        trials=all_pairs_trials(enroll, test),
    )


def _utterance_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
