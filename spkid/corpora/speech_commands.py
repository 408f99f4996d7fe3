"""Speech Commands v0.02 in its published layout, and the short-utterance speaker-ID protocol built on it.

Layout: ``<root>/<word>/<speaker>_nohash_<n>.<ext>`` and
``<root>/_unknown_/<word>_<speaker>_nohash_<n>.<ext>``, with ``<ext>`` ``wav`` (the original release) or
``flac``; ``<speaker>`` is 8 hex digits. The protocol
("speech-commands-sid"): speakers with at least ``min_clips`` clips are enrolled from their first
``n_enroll`` clips in sorted relative-path order and tested on each remaining clip alone; every clip of the
other speakers forms the UBM (and cohort) pool; trials pair every test with every enrolled speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from spkid.corpora.protocol import Protocol, Utterance, all_pairs_trials
from spkid.errors import DataError

__all__ = ["AUDIO_EXTENSIONS", "IGNORED_FOLDERS", "list_clips", "prepare_speech_commands"]

#: Audio file extensions read as clips; any other file is ignored (README, LICENSE, lists).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")
#: Folders of the release that hold no speaker's words.
IGNORED_FOLDERS: tuple[str, ...] = ("_background_noise_", "_silence_")
_UNKNOWN = "_unknown_"
_WORD_CLIP = re.compile(r"(?P<speaker>[0-9a-f]{8})_nohash_\d+")
_UNKNOWN_CLIP = re.compile(r"[^/]+_(?P<speaker>[0-9a-f]{8})_nohash_\d+")


def list_clips(root: str | Path) -> list[Utterance]:
    """Every clip of a Speech Commands tree, sorted by relative path.

    Parameters
    ----------
    root : str or Path
        The folder holding the word folders (``yes/``, ``no/``, ..., ``_unknown_/``).

    Returns
    -------
    list of Utterance
        Ids are the relative paths without extension (``"yes/022cd682_nohash_0"``,
        ``"_unknown_/backward_0c540988_nohash_0"``), speakers the 8-hex-digit tokens before ``_nohash_``.
        Sorted by id, in Python string order (so ``_unknown_/`` comes before the lower-case word folders).

    Raises
    ------
    DataError
        The folder is missing or holds no clips, an audio file's name does not match the layout, or two
        files share an id (the same clip as both ``.wav`` and ``.flac``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such Speech Commands folder")
    by_id: dict[str, Utterance] = {}
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name in IGNORED_FOLDERS or folder.name.startswith("."):
            continue
        pattern, layout = (
            (_UNKNOWN_CLIP, f"{_UNKNOWN}/<word>_<speaker>_nohash_<n>")
            if folder.name == _UNKNOWN
            else (_WORD_CLIP, "<word>/<speaker>_nohash_<n>")
        )
        for path in folder.iterdir():
            if path.name.startswith(".") or path.suffix not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            match = pattern.fullmatch(path.stem)
            if match is None:
                raise DataError(
                    f"{path}: expected {layout}.wav or .flac with <speaker> 8 lower-case hex digits"
                )
            clip_id = f"{folder.name}/{path.stem}"
            if clip_id in by_id:
                raise DataError(f"{path}: clip {clip_id} also exists as {by_id[clip_id].path.name}")
            by_id[clip_id] = Utterance(clip_id, match.group("speaker"), path)
    if not by_id:
        raise DataError(
            f"{root}: no <word>/<speaker>_nohash_<n>.wav or .flac clips; is this a Speech Commands folder?"
        )
    return [by_id[clip_id] for clip_id in sorted(by_id)]


def prepare_speech_commands(root: str | Path, *, min_clips: int = 30, n_enroll: int = 10) -> Protocol:
    """The speech-commands-sid protocol on a Speech Commands tree.

    Parameters
    ----------
    root : str or Path
        The folder holding the word folders, e.g. ``speech_commands_test_v0.02``.
    min_clips : int
        Speakers with at least this many clips are enrolled and tested; the others form the UBM pool.
    n_enroll : int
        Enrollment clips per enrolled speaker (its first ones in sorted relative-path order); smaller than
        ``min_clips`` so every enrolled speaker keeps at least one test clip.

    Returns
    -------
    Protocol
        ``train`` is the pool (every clip of the speakers with fewer than ``min_clips`` clips), ``test`` the
        enrolled speakers' remaining clips (each its own test), with ``len(test) * len(enroll)`` trials.

    Raises
    ------
    DataError
        Anything :func:`list_clips` raises; ``n_enroll`` below 1 or not below ``min_clips``; no speaker with
        ``min_clips`` clips; or no speaker with fewer (an empty UBM pool).
    """
    root = Path(root)
    if n_enroll < 1:
        raise DataError(f"{root}: n_enroll must be at least 1, got {n_enroll}")
    if n_enroll >= min_clips:
        raise DataError(
            f"{root}: n_enroll ({n_enroll}) must be smaller than min_clips ({min_clips}) so every enrolled "
            "speaker keeps a clip to test"
        )
    by_speaker: dict[str, list[Utterance]] = {}
    for clip in list_clips(root):  # sorted by relative path, so each speaker's list is too
        by_speaker.setdefault(clip.speaker, []).append(clip)
    enrolled = sorted(speaker for speaker, clips in by_speaker.items() if len(clips) >= min_clips)
    if not enrolled:
        most = max(len(clips) for clips in by_speaker.values())
        raise DataError(
            f"{root}: no speaker has at least min_clips={min_clips} clips (the most is {most}); "
            "lower min_clips"
        )
    if len(enrolled) == len(by_speaker):
        raise DataError(
            f"{root}: every speaker has at least min_clips={min_clips} clips, so the UBM pool is empty; "
            "raise min_clips"
        )
    enroll = {speaker: tuple(by_speaker[speaker][:n_enroll]) for speaker in enrolled}
    test = tuple(sorted((clip for s in enrolled for clip in by_speaker[s][n_enroll:]), key=_clip_id))
    pool = tuple(
        sorted((clip for s, clips in by_speaker.items() if s not in enroll for clip in clips), key=_clip_id)
    )
    return Protocol(
        name=f"speech_commands:{min_clips}:{n_enroll}",
        train=pool,
        enroll=enroll,
        test=test,
        trials=all_pairs_trials(enroll, test),
    )


def _clip_id(clip: Utterance) -> str:
    return clip.id
