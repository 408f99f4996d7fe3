"""Evaluating a score file: join scores with trial labels, compute the usual metrics, draw the DET curve.

Labels come from a trial list (Kaldi or VoxCeleb format, see :mod:`spkid.metrics.trials`) or from the score
file itself when its lines carry them: ``enroll test score target|nontarget`` or Kaldi ``compute-eer``'s
``score target|nontarget``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spkid.errors import DataError
from spkid.metrics.measures import verification_report
from spkid.metrics.protocol import parse_label, read_scores, split_scores
from spkid.metrics.trials import read_trial_list

__all__ = [
    "Evaluation",
    "evaluate",
    "evaluate_arrays",
    "format_metrics",
    "markdown_metrics",
    "metric_rows",
    "labelled_scores",
    "read_labelled_scores",
]

#: Display names and formats of the metrics, in the order they are printed.
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "identification_accuracy": ("identification accuracy (top-1)", "{:.2%}"),
    "identification_accuracy_top_k": ("identification accuracy (top-{k})", "{:.2%}"),
    "eer": ("EER", "{:.2%}"),
    "min_dcf_0.01": ("minDCF (p_target=0.01)", "{:.4f}"),
    "min_dcf_0.001": ("minDCF (p_target=0.001)", "{:.4f}"),
    "cllr": ("Cllr", "{:.4f}"),
    "min_cllr": ("minCllr", "{:.4f}"),
    "n_target": ("target trials", "{:.0f}"),
    "n_nontarget": ("non-target trials", "{:.0f}"),
}


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a score file (see :func:`spkid.metrics.verification_report`) and the DET plot, if drawn.

    Examples
    --------
    >>> Evaluation(metrics={"eer": 0.1}, plot=None).to_dict()
    {'metrics': {'eer': 0.1}, 'plot': None}
    """

    metrics: dict[str, float]
    plot: Path | None

    def to_dict(self) -> dict[str, Any]:
        metrics = {key: int(value) if key.startswith("n_") else value for key, value in self.metrics.items()}
        return {"metrics": metrics, "plot": None if self.plot is None else str(self.plot)}


def _score(word: str, where: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise DataError(f"{where}: score {word!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: score {word!r} is not finite")
    return value


def read_labelled_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    r"""Target and non-target scores of a score file whose lines carry labels.

    Lines are ``enroll test score target|nontarget`` or ``score target|nontarget``.

    Raises
    ------
    DataError
        Unreadable file, unlabelled (3-field) lines — those need ``--trials`` — or malformed lines.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "scores.txt"
    ...     _ = path.write_text("alice utt1 2.0 target\nbob utt1 -1.0 nontarget\n0.5 target\n")
    ...     target, nontarget = read_labelled_scores(path)
    >>> target.tolist(), nontarget.tolist()
    ([2.0, 0.5], [-1.0])
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such score file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read score file ({exc})") from None
    target, nontarget = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) == 3:
            raise DataError(f"{where}: 'enroll test score' lines carry no labels; pass --trials TRIALS")
        if len(fields) not in (2, 4):
            raise DataError(
                f"{where}: expected 'enroll test score target|nontarget' or 'score target|nontarget'"
            )
        (target if parse_label(fields[-1], where) else nontarget).append(_score(fields[-2], where))
    return np.asarray(target, dtype=np.float64), np.asarray(nontarget, dtype=np.float64)


def evaluate_arrays(
    target_scores: np.ndarray,
    nontarget_scores: np.ndarray,
    *,
    plot: str | Path | None = None,
    title: str = "DET curve",
) -> Evaluation:
    """Metrics (EER, minDCF at 0.01 and 0.001, Cllr, minCllr, trial counts) and an optional DET plot.

    Raises
    ------
    DataError
        No target or no non-target scores, or non-finite scores.

    Examples
    --------
    >>> import numpy as np
    >>> result = evaluate_arrays(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([-3.0, -2.0, -1.0, 0.0, 1.5]))
    >>> round(result.metrics["eer"], 3), result.metrics["n_target"], result.plot
    (0.1, 5.0, None)
    """
    metrics = verification_report(target_scores, nontarget_scores)
    plot_path = None
    if plot is not None:
        from spkid.metrics.plots import (
            plot_det,  # lazy: matplotlib costs ~1.5 s of every CLI call that never plots
        )

        plot_path = plot_det((target_scores, nontarget_scores), plot, title=title)
    return Evaluation(metrics=metrics, plot=plot_path)


def labelled_scores(scores: str | Path, trials: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Target and non-target scores of a score file, labelled by a trial list or by the file itself.

    Raises
    ------
    DataError
        Unlabelled trials, a trial without a score, or no target / no non-target score.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     scores, trials = Path(folder) / "scores.txt", Path(folder) / "trials.txt"
    ...     _ = scores.write_text("alice utt1 2.0\nalice utt2 -1.0\n")
    ...     _ = trials.write_text("alice utt1 target\nalice utt2 nontarget\n")
    ...     target, nontarget = labelled_scores(scores, trials)
    >>> target.tolist(), nontarget.tolist()
    ([2.0], [-1.0])
    """
    if trials is None:
        target, nontarget = read_labelled_scores(scores)
    else:
        trial_list = read_trial_list(trials)
        if any(trial.target is None for trial in trial_list.trials):
            raise DataError(f"{trials}: trials carry no target/nontarget labels; nothing to evaluate")
        target, nontarget = split_scores(read_scores(scores), trial_list.trials, scores_path=scores)
    if target.size == 0 or nontarget.size == 0:
        raise DataError(
            f"{scores}: need both target and non-target trials, got {target.size} and {nontarget.size}"
        )
    return target, nontarget


def evaluate(
    scores: str | Path, trials: str | Path | None = None, *, plot: str | Path | None = None
) -> Evaluation:
    r"""Evaluate a score file against a trial list (or the labels in the score file itself).

    Parameters
    ----------
    scores : path
        ``enroll test score`` lines (with ``trials``), or labelled lines (see :func:`read_labelled_scores`).
    trials : path, optional
        Kaldi or VoxCeleb trial list; every labelled trial must have a score.
    plot : path, optional
        Write the DET curve to this PNG.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     scores = Path(folder) / "scores.txt"
    ...     _ = scores.write_text("2.0 target\n1.0 target\n1.5 nontarget\n-1.0 nontarget\n")
    ...     result = evaluate(scores, plot=Path(folder) / "det.png")
    ...     print(round(result.metrics["eer"], 2), result.plot.name, result.plot.is_file())
    0.25 det.png True
    """
    target, nontarget = labelled_scores(scores, trials)
    return evaluate_arrays(target, nontarget, plot=plot, title=f"DET curve: {Path(scores).name}")


def metric_rows(metrics: Mapping[str, float], *, top_k: int | None = None) -> list[tuple[str, str]]:
    """``(label, formatted value)`` for each metric present in ``metrics``, in a fixed order.

    Examples
    --------
    >>> metric_rows({"n_target": 5.0, "eer": 0.1, "cllr": None})
    [('EER', '10.00%'), ('target trials', '5')]
    """
    k = top_k if top_k is not None else int(metrics.get("top_k", 5))
    return [
        (label.format(k=k), fmt.format(float(metrics[key])))
        for key, (label, fmt) in METRIC_LABELS.items()
        if metrics.get(key) is not None
    ]


def format_metrics(metrics: Mapping[str, float], *, top_k: int | None = None) -> str:
    """A two-column text table of the metrics present in ``metrics``.

    Examples
    --------
    >>> print(format_metrics({"eer": 0.1, "min_dcf_0.01": 0.2, "n_target": 5.0}))
    EER                       10.00%
    minDCF (p_target=0.01)    0.2000
    target trials                  5
    """
    rows = metric_rows(metrics, top_k=top_k)
    if not rows:
        return "(no metrics)"
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value:>8}" for label, value in rows)


def markdown_metrics(metrics: Mapping[str, float], *, top_k: int | None = None) -> str:
    """The same table in Markdown.

    Examples
    --------
    >>> print(markdown_metrics({"eer": 0.1, "n_target": 5.0}))
    | metric | value |
    |---|---:|
    | EER | 10.00% |
    | target trials | 5 |
    """
    rows = metric_rows(metrics, top_k=top_k)
    return "\n".join(
        ["| metric | value |", "|---|---:|", *(f"| {label} | {value} |" for label, value in rows)]
    )
