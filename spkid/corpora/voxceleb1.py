"""VoxCeleb1 in its official layout, with its published identification split and verification lists.

Layout under ``root``: ``wav/<speaker>/<video>/<nnnnn>.wav`` (speakers ``id10001`` ... ``id11251``), plus the
lists as published: ``iden_split.txt`` (``<1|2|3> id10001/1zcIwhmdeo4/00001.wav``; 1 train, 2 validation,
3 test) and ``veri_test.txt`` / ``veri_test2.txt`` (``<1|0> <enroll.wav> <test.wav>``). Utterance ids are
Kaldi style, ``id10270-x6uYqmx31kE-00001``, and are valid speaker-model names in a model store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from spkid.corpora.protocol import Protocol, Utterance, all_pairs_trials
from spkid.errors import DataError
from spkid.metrics.protocol import Trial

__all__ = [
    "IDEN_SPLIT",
    "VERI_TEST",
    "VERI_TEST_CLEANED",
    "utterance_id",
    "list_utterances",
    "read_iden_split",
    "read_veri_trials",
    "prepare_voxceleb1_verification",
    "prepare_voxceleb1_identification",
]

IDEN_SPLIT = "iden_split.txt"
VERI_TEST = "veri_test.txt"
VERI_TEST_CLEANED = "veri_test2.txt"
SPLIT_NAMES = {1: "train", 2: "validation", 3: "test"}
_LIST_ENTRY = re.compile(r"([^/\s]+)/([^/\s]+)/([^/\s]+)\.wav")


def utterance_id(relative: str) -> str:
    """``"id10270/x6uYqmx31kE/00001.wav"`` -> ``"id10270-x6uYqmx31kE-00001"``."""
    return relative.removesuffix(".wav").replace("/", "-")


def _utterance(root: Path, relative: str) -> Utterance:
    return Utterance(utterance_id(relative), relative.split("/", 1)[0], root / "wav" / relative)


def _parse_entry(entry: str, where: str) -> str:
    match = _LIST_ENTRY.fullmatch(entry)
    if match is None or any(part in (".", "..") or part.startswith(".") for part in match.groups()):
        raise DataError(f"{where}: expected <speaker>/<video>/<nnnnn>.wav, got {entry!r}")
    return entry


def _wav_dir(root: Path) -> Path:
    wav = root / "wav"
    if not wav.is_dir():
        raise DataError(f"{root}: no wav/ folder (VoxCeleb1 layout: wav/<speaker>/<video>/<nnnnn>.wav)")
    return wav


def _list_path(root: Path, name: str | Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else root / path


def _lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such list file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.split()


def list_utterances(root: str | Path) -> list[Utterance]:
    """Every ``wav/<speaker>/<video>/<nnnnn>.wav`` under ``root``, sorted by id."""
    root = Path(root)
    wav = _wav_dir(root)
    utterances = [
        _utterance(root, path.relative_to(wav).as_posix())
        for path in wav.glob("*/*/*.wav")
        if not any(part.startswith(".") for part in path.relative_to(wav).parts)
    ]
    if not utterances:
        raise DataError(f"{wav}: no <speaker>/<video>/<nnnnn>.wav files")
    return sorted(utterances, key=lambda utterance: utterance.id)


def read_iden_split(
    root: str | Path, split_file: str | Path = IDEN_SPLIT, *, check_files: bool = True
) -> dict[int, list[Utterance]]:
    """Read ``iden_split.txt``: ``{1: train, 2: validation, 3: test}`` utterance lists, in file order.

    Raises
    ------
    DataError
        Naming the file and line: wrong field count, a split other than 1/2/3, a malformed path, or (with
        ``check_files``) an entry whose wav file is missing.
    """
    root = Path(root)
    path = _list_path(root, split_file)
    if check_files:
        _wav_dir(root)
    splits: dict[int, list[Utterance]] = {1: [], 2: [], 3: []}
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        if len(fields) != 2 or fields[0] not in ("1", "2", "3"):
            got = " ".join(fields)
            raise DataError(f"{where}: expected '<1|2|3> <speaker>/<video>/<nnnnn>.wav', got {got!r}")
        utterance = _utterance(root, _parse_entry(fields[1], where))
        if check_files and not utterance.path.is_file():
            raise DataError(f"{where}: {fields[1]} is not under {root / 'wav'}")
        splits[int(fields[0])].append(utterance)
    return splits


def read_veri_trials(
    root: str | Path, trials_file: str | Path = VERI_TEST_CLEANED, *, check_files: bool = True
) -> tuple[list[Trial], dict[str, Utterance]]:
    """Read a VoxCeleb verification list (``veri_test.txt``, ``veri_test2.txt``, ``list_test_*.txt``).

    Returns
    -------
    trials : list of Trial
        ``enroll`` and ``test`` are utterance ids; ``target`` from the label.
    utterances : dict of str to Utterance
        Every utterance the list names, by id.

    Raises
    ------
    DataError
        Naming the file and line: wrong field count, a label other than 0/1, a malformed path, a label that
        contradicts the speakers (1 for different speakers or 0 for the same), or a missing wav file.
    """
    root = Path(root)
    path = _list_path(root, trials_file)
    if check_files:
        _wav_dir(root)
    trials: list[Trial] = []
    utterances: dict[str, Utterance] = {}
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(f"{where}: expected '<1|0> <enroll.wav> <test.wav>', got {' '.join(fields)!r}")
        enroll = _utterance(root, _parse_entry(fields[1], where))
        test = _utterance(root, _parse_entry(fields[2], where))
        target = fields[0] == "1"
        if target != (enroll.speaker == test.speaker):
            speakers = f"{enroll.speaker} and {test.speaker}"
            raise DataError(f"{where}: label {fields[0]} contradicts speakers {speakers}")
        for utterance in (enroll, test):
            if utterance.id not in utterances:
                if check_files and not utterance.path.is_file():
                    raise DataError(f"{where}: {utterance.path.relative_to(root)} is missing")
                utterances[utterance.id] = utterance
        trials.append(Trial(enroll.id, test.id, target))
    if not trials:
        raise DataError(f"{path}: holds no trials")
    return trials, utterances


def prepare_voxceleb1_verification(
    root: str | Path, *, trials_file: str | Path = VERI_TEST_CLEANED, max_train_per_speaker: int | None = None
) -> Protocol:
    """Verification protocol: UBM on the dev speakers, one model per enrollment utterance of the list.

    Parameters
    ----------
    root : str or Path
        The corpus root holding ``wav/`` and the lists.
    trials_file : str or Path
        Relative to ``root`` unless absolute; ``veri_test2.txt`` (the cleaned list) by default.
    max_train_per_speaker : int or None
        Keep only the first N utterances (sorted ids) of each dev speaker for the UBM.

    Returns
    -------
    Protocol
        ``train``: utterances of speakers absent from the list; ``enroll``: ``{utterance id: (utterance,)}``
        for every enrollment side; ``test``: every test side; ``trials``: the list.
    """
    root = Path(root)
    trials, named = read_veri_trials(root, trials_file)
    test_speakers = {utterance.speaker for utterance in named.values()}
    per_speaker: dict[str, int] = {}
    train = []
    for utterance in list_utterances(root):
        if utterance.speaker in test_speakers:
            continue
        per_speaker[utterance.speaker] = per_speaker.get(utterance.speaker, 0) + 1
        if max_train_per_speaker is None or per_speaker[utterance.speaker] <= max_train_per_speaker:
            train.append(utterance)
    if not train:
        raise DataError(f"{root / 'wav'}: no dev speakers (every speaker appears in {trials_file})")
    enroll_ids = sorted({trial.enroll for trial in trials})
    test_ids = sorted({trial.test for trial in trials})
    return Protocol(
        name=f"voxceleb1:verification:{Path(trials_file).name}",
        train=tuple(train),
        enroll={model: (named[model],) for model in enroll_ids},
        test=tuple(named[test] for test in test_ids),
        trials=tuple(trials),
    )


def prepare_voxceleb1_identification(
    root: str | Path, *, split_file: str | Path = IDEN_SPLIT, test_split: int = 3, with_trials: bool = False
) -> Protocol:
    """Closed-set identification: UBM and speaker models on split 1, tests from ``test_split`` (2 or 3).

    ``with_trials`` adds every test against every speaker as verification trials (about ten million on the
    full corpus, so off by default).
    """
    if test_split not in (2, 3):
        raise DataError(f"{split_file}: test_split must be 2 (validation) or 3 (test), got {test_split}")
    splits = read_iden_split(root, split_file)
    enroll: dict[str, list[Utterance]] = {}
    for utterance in splits[1]:
        enroll.setdefault(utterance.speaker, []).append(utterance)
    test = tuple(splits[test_split])
    unknown = sorted({utterance.speaker for utterance in test} - set(enroll))
    if unknown:
        raise DataError(f"{split_file}: test speakers without training utterances: {', '.join(unknown[:5])}")
    models = {speaker: tuple(items) for speaker, items in sorted(enroll.items())}
    return Protocol(
        name=f"voxceleb1:identification:{SPLIT_NAMES[test_split]}",
        train=tuple(splits[1]),
        enroll=models,
        test=test,
        trials=all_pairs_trials(models, test) if with_trials else (),
    )
