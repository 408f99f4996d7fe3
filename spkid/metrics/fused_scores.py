"""Score files of several systems -> one fused score file (``spkid fuse``).

Each file scores the same trials (``spkid score`` of one trial list with different models); the fused file
holds ``scores @ weights + offset`` for every trial, in the first file's order, with weights fitted
(:class:`spkid.score.fusion.Fusion`) on a labelled trial list or on the labels the score files' lines carry
(``enroll test score target|nontarget``, as ``spkid evaluate`` reads them), or given. Labels the files carry
are written into the fused file too, so it can be evaluated without a trial list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spkid.errors import DataError
from spkid.metrics.protocol import ScoredTrial, label_word, read_scores, write_scores
from spkid.metrics.trials import read_trial_list
from spkid.score.fusion import Fusion

__all__ = ["AlignedScores", "FusedScores", "aligned_scores", "fuse_score_files"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class FusedScores:
    """What :func:`fuse_score_files` wrote: the fusion, the names of the fused files (in weight order), the
    trial count, the labelled trials the weights were fitted on (0: given weights), and the output file.

    Examples
    --------
    >>> result = FusedScores(Fusion.with_weights([0.6, 0.4], -1.5), ["a.txt", "b.txt"], 2, 0, Path("f.txt"))
    >>> result.formula()
    'llr = 0.6 * a.txt + 0.4 * b.txt - 1.5'
    >>> FusedScores(Fusion.with_weights([-0.5, 2.0], 0.25), ["a.txt", "b.txt"], 2, 0, Path("f.txt")).formula()
    'llr = -0.5 * a.txt + 2 * b.txt + 0.25'
    """

    fusion: Fusion
    names: list[str]
    n_trials: int
    n_labelled: int
    output: Path

    def formula(self) -> str:
        """``llr = w1 * name1 + w2 * name2 + offset`` with the fitted or given numbers."""
        numbers = [*self.fusion.weights_, self.fusion.offset_]
        terms = [f"{abs(weight):.4g} * {name}" for weight, name in zip(numbers, self.names, strict=False)]
        terms.append(f"{abs(self.fusion.offset_):.4g}")
        signs = ["-" if number < 0 else "+" for number in numbers]
        text = " ".join(f"{sign} {term}" for sign, term in zip(signs, terms, strict=True))
        return "llr = " + (text[2:] if signs[0] == "+" else "-" + text[2:])


class AlignedScores(NamedTuple):
    """The trials of several score files, each file's score of each, and the trials' labels.

    Attributes
    ----------
    trials : list of (enroll, test)
        In the first file's order.
    columns : ndarray of shape (n_trials, n_files)
    labels : list of bool or None
        Per trial, ``target`` (True) or ``nontarget`` (False) as some file's line says; None when no line
        carries a label.

    Examples
    --------
    >>> aligned = AlignedScores([("alice", "utt1")], np.array([[1.0, 3.0]]), [True])
    >>> trials, columns, labels = aligned  # unpacks as a tuple
    >>> columns.shape, labels
    ((1, 2), [True])
    """

    trials: list[tuple[str, str]]
    columns: np.ndarray
    labels: list[bool | None]


def aligned_scores(paths: Sequence[PathLike]) -> AlignedScores:
    """The trials of the first score file (its order), every file's score of each, and their labels.

    Lines are ``enroll test score`` or ``enroll test score target|nontarget``.

    Returns
    -------
    AlignedScores

    Raises
    ------
    DataError
        Fewer than two files, a trial scored twice in one file, files that score different trials (naming
        the file and the first trial that differs), or a trial labelled differently in two files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     a, b = Path(folder) / "a.txt", Path(folder) / "b.txt"
    ...     _ = a.write_text("alice utt1 1.0\\nbob utt1 -2.0\\n")
    ...     _ = b.write_text("# another system\\nbob utt1 -1.0 nontarget\\nalice utt1 3.0\\n")
    ...     trials, columns, labels = aligned_scores([a, b])
    >>> trials, columns.tolist(), labels
    ([('alice', 'utt1'), ('bob', 'utt1')], [[1.0, 3.0], [-2.0, -1.0]], [None, False])
    """
    if len(paths) < 2:
        raise DataError(f"fusion needs the score files of at least two systems, got {len(paths)}")
    keyed: list[dict[tuple[str, str], float]] = []
    labelled: dict[tuple[str, str], tuple[bool, PathLike]] = {}
    for path in paths:
        scores: dict[tuple[str, str], float] = {}
        for item in read_scores(path, labels=True):
            trial = (item.enroll, item.test)
            if trial in scores:
                raise DataError(f"{path}: trial {item.enroll} {item.test} is scored twice")
            scores[trial] = item.score
            if item.target is not None:
                label, first = labelled.setdefault(trial, (item.target, path))
                if label != item.target:
                    raise DataError(
                        f"{path}: trial {item.enroll} {item.test} is labelled {label_word(item.target)} here "
                        f"and {label_word(label)} in {first}"
                    )
        if not scores:
            raise DataError(f"{path}: no scores")
        keyed.append(scores)
    trials = list(keyed[0])
    for path, scores in zip(paths[1:], keyed[1:], strict=True):
        missing = next((trial for trial in trials if trial not in scores), None)
        if missing is not None:
            raise DataError(f"{path}: no score for trial {missing[0]} {missing[1]} (scored in {paths[0]})")
        if len(scores) != len(trials):
            extra = next(trial for trial in scores if trial not in keyed[0])
            raise DataError(f"{path}: trial {extra[0]} {extra[1]} is not scored in {paths[0]}")
    columns = np.array([[scores[trial] for scores in keyed] for trial in trials], dtype=np.float64)
    labels = [labelled[trial][0] if trial in labelled else None for trial in trials]
    return AlignedScores(trials, columns, labels)


def fuse_score_files(
    paths: Sequence[PathLike],
    output: PathLike,
    *,
    trials: PathLike | None = None,
    weights: Sequence[float] | None = None,
    offset: float = 0.0,
) -> FusedScores:
    """Fuse the score files ``paths`` (one per system, the same trials) into ``output``.

    Parameters
    ----------
    paths : sequence of path
        ``enroll test score`` files, at least two; lines may end in ``target|nontarget``.
    output : path
        The fused score file (written atomically; its ``#`` first line gives the formula), each line
        labelled as the input files label it.
    trials : path, optional
        A labelled trial list: the weights are fitted on its trials (each must be scored in every file).
        Without it (and without ``weights``), they are fitted on the trials the files' lines label.
    weights : sequence of float, optional
        One weight per file instead of fitting (with ``offset``).
    offset : float, default 0
        Added to the weighted sum when ``weights`` are given.

    Returns
    -------
    FusedScores

    Raises
    ------
    DataError
        Files that do not align (:func:`aligned_scores`), both ``trials`` and ``weights``, neither of them
        with no labelled line in the files, a weight count other than the file count, an unlabelled trial
        list, or a labelled trial with no score.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     a, b, out = Path(folder) / "a.txt", Path(folder) / "b.txt", Path(folder) / "fused.txt"
    ...     _ = a.write_text("alice utt1 1.0\\nbob utt1 -2.0\\n")
    ...     _ = b.write_text("alice utt1 3.0\\nbob utt1 -1.0\\n")
    ...     result = fuse_score_files([a, b], out, weights=[0.6, 0.4])
    ...     print(out.read_text(), end="")
    # fused LLR of a.txt, b.txt (spkid fuse, given weights): llr = 0.6 * a.txt + 0.4 * b.txt + 0
    alice utt1 1.8
    bob utt1 -1.6
    """
    if trials is not None and weights is not None:
        raise DataError(
            "fusion needs a labelled trial list to fit the weights on (--trials) or the weights "
            "(--weights): both given"
        )
    scored, columns, file_labels = aligned_scores(paths)
    names = [Path(path).name for path in paths]
    if weights is not None:
        if len(weights) != len(paths):
            raise DataError(f"fusion: {len(weights)} weight(s) for {len(paths)} score files")
        fusion, n_labelled, how = Fusion.with_weights(weights, offset), 0, "given weights"
    elif trials is None:
        rows = [row for row, label in enumerate(file_labels) if label is not None]
        if not rows:
            raise DataError(
                "fusion needs labelled trials to fit the weights on (--trials, or score files whose lines "
                "end in target|nontarget) or the weights (--weights): neither given, and no line of "
                f"{', '.join(names)} carries a label"
            )
        fusion = Fusion().fit(columns[rows], np.asarray([file_labels[row] for row in rows]))
        n_labelled, how = len(rows), f"fitted on {len(rows)} labelled trials of the score files"
    else:
        row_of = {trial: row for row, trial in enumerate(scored)}
        rows, labels = [], []
        for trial in read_trial_list(trials).trials:
            if trial.target is None:
                raise DataError(f"{trials}: trials carry no target/nontarget labels; nothing to fit on")
            row = row_of.get((trial.enroll, trial.test))
            if row is None:
                raise DataError(f"{paths[0]}: no score for trial {trial.enroll} {trial.test} of {trials}")
            rows.append(row)
            labels.append(trial.target)
        fusion = Fusion().fit(columns[rows], np.asarray(labels))
        n_labelled, how = len(rows), f"fitted on {len(rows)} labelled trials"
    fused = fusion.transform(columns)
    result = FusedScores(fusion, names, len(scored), n_labelled, Path(output))
    header = f"fused LLR of {', '.join(names)} (spkid fuse, {how}): {result.formula()}"
    lines = [
        ScoredTrial(enroll, test, float(value), label)
        for (enroll, test), value, label in zip(scored, fused, file_labels, strict=True)
    ]
    write_scores(output, lines, header=header)
    return result
