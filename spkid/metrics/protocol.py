"""Trials and scores on disk: Kaldi-style trial lists and score files, and joining scores with labels.

Trial lists are read and written in Kaldi's ``enroll_id test_id target|nontarget`` form and score files as
``enroll test score``; in both, whitespace and ``%`` inside an id are written percent-encoded (``%20``) so
any id round-trips. Corpus preparers (:mod:`spkid.corpora`) build :class:`Trial` lists; scoring writes
:class:`ScoredTrial` files; evaluation reads both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from spkid.atomic import atomic_write_bytes
from spkid.errors import DataError

__all__ = [
    "Trial",
    "ScoredTrial",
    "read_trials",
    "write_trials",
    "read_scores",
    "write_scores",
    "split_scores",
    "parse_label",
    "label_word",
]


@dataclass(frozen=True)
class Trial:
    """A verification trial: model ``enroll`` against utterance ``test``; ``target`` None if unlabelled.

    Examples
    --------
    >>> Trial("alice", "test-01.wav", target=True)
    Trial(enroll='alice', test='test-01.wav', target=True)
    >>> Trial("alice", "test-02.wav").target is None  # unlabelled: scored, not evaluated
    True
    """

    enroll: str
    test: str
    target: bool | None = None


@dataclass(frozen=True)
class ScoredTrial:
    """A line of a score file: model id, test utterance id, score (higher means more likely the same), and
    the trial's label when the line carries one (``target``: None when unlabelled).

    Examples
    --------
    >>> trial = ScoredTrial("alice", "test-01.wav", 1.25)
    >>> trial.score > 0, trial.target
    (True, None)
    """

    enroll: str
    test: str
    score: float
    target: bool | None = None


def parse_label(word: str, where: str) -> bool:
    """``target`` -> True, ``nontarget`` -> False; anything else a DataError naming ``where`` (file:line).

    Examples
    --------
    >>> parse_label("target", "trials:1"), parse_label("nontarget", "trials:2")
    (True, False)
    """
    if word not in ("target", "nontarget"):
        raise DataError(f"{where}: label must be 'target' or 'nontarget', got {word!r}")
    return word == "target"


def label_word(target: bool) -> str:
    """The word a trial list or score file writes for a label (``target`` or ``nontarget``).

    Examples
    --------
    >>> label_word(True), label_word(False)
    ('target', 'nontarget')
    """
    return "target" if target else "nontarget"


# --------------------------------------------------------------------------------------------- list files
def _lines(path: str | Path) -> Iterable[tuple[int, list[str]]]:
    """Non-blank, non-comment lines of a text list as ``(line_number, fields)``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line.split()


def read_trials(path: str | Path) -> list[Trial]:
    r"""Read a Kaldi trial list: ``enroll_id test_id target|nontarget`` (or two columns, unlabelled).

    Raises
    ------
    DataError
        Naming the file and line, for a wrong number of fields, a label other than target/nontarget, or a
        mix of labelled and unlabelled lines.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "trials.txt"
    ...     _ = path.write_text("alice utt1 target\nalice utt2 nontarget\n")
    ...     read_trials(path)
    [Trial(enroll='alice', test='utt1', target=True), Trial(enroll='alice', test='utt2', target=False)]
    """
    trials: list[Trial] = []
    labelled: bool | None = None
    for number, fields in _lines(path):
        if len(fields) not in (2, 3):
            raise DataError(f"{path}:{number}: expected 'enroll_id test_id [target|nontarget]', got {fields}")
        if labelled is not None and labelled != (len(fields) == 3):
            raise DataError(f"{path}:{number}: mixes labelled and unlabelled trials")
        labelled = len(fields) == 3
        target = parse_label(fields[2], f"{path}:{number}") if labelled else None
        trials.append(Trial(_decode_id(fields[0]), _decode_id(fields[1]), target))
    return trials


def write_trials(path: str | Path, trials: Iterable[Trial]) -> None:
    """Write a Kaldi trial list (labels written when the trials have them).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_trials(Path(folder) / "trials.txt", [Trial("alice", "utt 1", True), Trial("bob", "utt2")])
    ...     print(Path(folder, "trials.txt").read_text(), end="")
    alice utt%201 target
    bob utt2
    """
    lines = []
    for trial in trials:
        label = "" if trial.target is None else f" {label_word(trial.target)}"
        lines.append(f"{_encode_id(trial.enroll, path)} {_encode_id(trial.test, path)}{label}\n")
    atomic_write_bytes(path, "".join(lines).encode())


def read_scores(path: str | Path, *, labels: bool = False) -> list[ScoredTrial]:
    r"""Read a score file of ``enroll_id test_id score`` lines (finite scores only).

    With ``labels``, lines may also be ``enroll_id test_id score target|nontarget`` (the form
    ``spkid evaluate`` reads without a trial list); the label is the item's ``target``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "scores.txt"
    ...     _ = path.write_text("alice utt1 1.5\nalice utt2 -0.25 nontarget\n")
    ...     [(item.score, item.target) for item in read_scores(path, labels=True)]
    [(1.5, None), (-0.25, False)]
    """
    scores = []
    for number, fields in _lines(path):
        if len(fields) != 3 and not (labels and len(fields) == 4):
            form = "enroll_id test_id score [target|nontarget]" if labels else "enroll_id test_id score"
            raise DataError(f"{path}:{number}: expected '{form}', got {fields}")
        try:
            score = float(fields[2])
        except ValueError:
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not finite")
        target = parse_label(fields[3], f"{path}:{number}") if len(fields) == 4 else None
        scores.append(ScoredTrial(_decode_id(fields[0]), _decode_id(fields[1]), score, target))
    return scores


def write_scores(
    path: str | Path, scores: Iterable[ScoredTrial | tuple[str, str, float]], *, header: str | None = None
) -> None:
    """Write a score file, one ``enroll_id test_id score`` line per trial (scores at full precision), with
    ``target|nontarget`` after the score for a :class:`ScoredTrial` that carries its label.

    ``header``, when given, is written first as a ``# header`` comment line (say what the scores are);
    every reader of spkid's score files skips ``#`` lines, and so do Kaldi-style three-column readers
    that ignore comments.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     scores = [ScoredTrial("alice", "utt1", 1.5, target=True), ("bob", "utt1", -0.25)]  # or tuples
    ...     write_scores(Path(folder) / "scores.txt", scores)
    ...     print(Path(folder, "scores.txt").read_text(), end="")
    alice utt1 1.5 target
    bob utt1 -0.25
    """
    if header is not None and "\n" in header:
        raise DataError(f"{path}: a score-file header must be one line, got {header!r}")
    lines = [] if header is None else [f"# {header}\n"]
    for item in scores:
        enroll, test, score = (item.enroll, item.test, item.score) if isinstance(item, ScoredTrial) else item
        target = item.target if isinstance(item, ScoredTrial) else None
        label = "" if target is None else f" {label_word(target)}"
        lines.append(f"{_encode_id(enroll, path)} {_encode_id(test, path)} {float(score)!r}{label}\n")
    atomic_write_bytes(path, "".join(lines).encode())


def split_scores(
    scores: Sequence[ScoredTrial], trials: Sequence[Trial], *, scores_path: str | Path = "scores"
) -> tuple[np.ndarray, np.ndarray]:
    """Join scores with labelled trials into ``(target_scores, nontarget_scores)`` float64 arrays.

    Raises
    ------
    DataError
        A trial without a label, or with no score in ``scores``.

    Examples
    --------
    >>> scores = [ScoredTrial("alice", "utt1", 1.5), ScoredTrial("alice", "utt2", -0.25)]
    >>> trials = [Trial("alice", "utt1", True), Trial("alice", "utt2", False)]
    >>> target, nontarget = split_scores(scores, trials)
    >>> target.tolist(), nontarget.tolist()
    ([1.5], [-0.25])
    """
    by_pair = {(item.enroll, item.test): item.score for item in scores}
    target, nontarget = [], []
    for trial in trials:
        if trial.target is None:
            raise DataError(f"trial {trial.enroll} {trial.test} has no target/nontarget label")
        score = by_pair.get((trial.enroll, trial.test))
        if score is None:
            raise DataError(f"{scores_path}: no score for trial {trial.enroll} {trial.test}")
        (target if trial.target else nontarget).append(score)
    return np.asarray(target, dtype=np.float64), np.asarray(nontarget, dtype=np.float64)


def _encode_id(identifier: str, path: str | Path) -> str:
    if not identifier:
        raise DataError(f"{path}: cannot write an empty id")

    def escape(match: re.Match[str]) -> str:
        return "".join(f"%{byte:02X}" for byte in match.group().encode())

    return re.sub(r"[\s%#]", escape, identifier)


def _decode_id(field: str) -> str:
    return unquote(field) if "%" in field else field
