"""LibriSpeech in its official layout, and the reference speaker-ID protocol built on it.

Layout: ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac`` (transcripts
``*.trans.txt`` beside them are ignored). The protocol: the UBM on every utterance of a training subset; for
each speaker of a test subset, the first ``n_enroll`` utterances in sorted file-name order enroll the
speaker and the rest are tests; trials pair every test with every enrolled speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from spkid.corpora.protocol import Protocol, Utterance, all_pairs_trials
from spkid.errors import DataError

__all__ = ["SUBSETS", "list_subset", "prepare_librispeech", "split_enroll_test"]

SUBSETS: tuple[str, ...] = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)
_FILE_NAME = re.compile(r"(\d+)-(\d+)-(\d+)")


def list_subset(subset_dir: str | Path) -> list[Utterance]:
    """Every utterance of one LibriSpeech subset, sorted by file name.

    Parameters
    ----------
    subset_dir : str or Path
        E.g. ``LibriSpeech/test-other``.

    Returns
    -------
    list of Utterance
        Ids are the file stems (``"1688-142285-0000"``), speakers the speaker folder names.

    Raises
    ------
    DataError
        The folder is missing or holds no ``.flac``, or a file's name does not match its folders.
    """
    subset_dir = Path(subset_dir)
    if not subset_dir.is_dir():
        raise DataError(f"{subset_dir}: no such LibriSpeech subset folder")
    utterances = []
    for path in subset_dir.glob("*/*/*.flac"):
        if path.name.startswith("."):
            continue
        speaker, chapter = path.parent.parent.name, path.parent.name
        match = _FILE_NAME.fullmatch(path.stem)
        if match is None or match.group(1) != speaker or match.group(2) != chapter:
            raise DataError(
                f"{path}: expected <speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac "
                f"(here speaker {speaker}, chapter {chapter})"
            )
        utterances.append(Utterance(path.stem, speaker, path))
    if not utterances:
        raise DataError(f"{subset_dir}: no <speaker>/<chapter>/*.flac files; is this a LibriSpeech subset?")
    return sorted(utterances, key=lambda utterance: utterance.path.name)


def split_enroll_test(
    utterances: list[Utterance], n_enroll: int, *, source: str | Path = "corpus"
) -> tuple[dict[str, tuple[Utterance, ...]], tuple[Utterance, ...]]:
    """First ``n_enroll`` utterances of each speaker (sorted file-name order) enroll it; the rest are tests.

    Raises
    ------
    DataError
        A speaker with ``n_enroll`` utterances or fewer (nothing would be left to test).
    """
    if n_enroll < 1:
        raise DataError(f"{source}: n_enroll must be at least 1, got {n_enroll}")
    by_speaker: dict[str, list[Utterance]] = {}
    for utterance in sorted(utterances, key=lambda item: item.path.name):
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    enroll, test = {}, []
    for speaker in sorted(by_speaker):
        items = by_speaker[speaker]
        if len(items) <= n_enroll:
            raise DataError(
                f"{source}: speaker {speaker} has {len(items)} utterances; the protocol needs more than "
                f"{n_enroll} ({n_enroll} to enroll, at least 1 to test)"
            )
        enroll[speaker] = tuple(items[:n_enroll])
        test.extend(items[n_enroll:])
    return enroll, tuple(test)


def prepare_librispeech(
    root: str | Path,
    *,
    train_subset: str = "train-clean-100",
    test_subset: str = "test-other",
    n_enroll: int = 5,
) -> Protocol:
    """The reference protocol on a LibriSpeech tree.

    Parameters
    ----------
    root : str or Path
        The ``LibriSpeech`` folder holding the subsets.
    train_subset : str
        Subset whose utterances all train the UBM.
    test_subset : str
        Subset whose speakers are enrolled and tested.
    n_enroll : int
        Enrollment utterances per speaker.

    Returns
    -------
    Protocol
        With ``len(test) * n_speakers`` trials.
    """
    root = Path(root)
    if train_subset == test_subset:
        raise DataError(f"{root}: train/test subsets both {train_subset!r}; the UBM must not see tests")
    train = list_subset(root / train_subset)
    enroll, test = split_enroll_test(list_subset(root / test_subset), n_enroll, source=root / test_subset)
    return Protocol(
        name=f"librispeech:{train_subset}:{test_subset}:{n_enroll}",
        train=tuple(train),
        enroll=enroll,
        test=test,
        trials=all_pairs_trials(enroll, test),
    )
