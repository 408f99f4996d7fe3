"""PNG figures of results: DET curves on normal-deviate axes and identification confusion matrices.

Figures are drawn with matplotlib's object API on the Agg canvas, so no display and no pyplot global
state are involved (safe in worker processes and on headless servers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from scipy.stats import norm

from spkid.errors import DataError
from spkid.metrics.measures import det_curve, eer, min_dcf

__all__ = ["det_figure", "plot_confusion", "plot_det", "confusion_figure"]

# Axis ticks (as probabilities) of the classic NIST DET plot.
DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)

Systems = Mapping[str, tuple[ArrayLike, ArrayLike]]


def _as_systems(systems: Systems | tuple[ArrayLike, ArrayLike]) -> dict[str, tuple[ArrayLike, ArrayLike]]:
    if isinstance(systems, Mapping):
        if not systems:
            raise DataError("plot_det: no systems to plot")
        return dict(systems)
    if isinstance(systems, tuple) and len(systems) == 2:
        return {"system": systems}
    raise DataError("plot_det: expected {name: (target_scores, nontarget_scores)} or one such pair")


def det_figure(
    systems: Systems | tuple[ArrayLike, ArrayLike], *, title: str = "DET curve", p_target: float = 0.01
) -> Figure:
    """Build the DET figure: miss rate against false-alarm rate, both on normal-deviate (probit) axes.

    Parameters
    ----------
    systems : mapping of name -> (target_scores, nontarget_scores), or one such pair
        Each system is one curve, labelled with its EER; its minDCF point at ``p_target`` is marked.
    title : str
    p_target : float
        Operating point marked on each curve.

    Returns
    -------
    matplotlib.figure.Figure
        The axes data are ``norm.ppf(p_fa)`` (x) and ``norm.ppf(p_miss)`` (y), clipped to the plotted range.

    Examples
    --------
    >>> figure = det_figure({"baseline": ([1.0, 2.0, 3.0, 4.0, 5.0], [-3.0, -2.0, -1.0, 0.0, 1.5])})
    >>> len(figure.axes), figure.axes[0].get_legend_handles_labels()[1]
    (1, ['baseline (EER 10.00%)', 'minDCF 0.200 (p_target 0.01)'])
    """
    curves = _as_systems(systems)
    figure = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    all_rates = []
    for target, nontarget in curves.values():
        p_miss, p_fa, _ = det_curve(target, nontarget)
        all_rates.append(np.concatenate([p_miss[p_miss > 0], p_fa[p_fa > 0]]))
    smallest = min((float(rates.min()) for rates in all_rates if rates.size), default=0.01)
    low = max(DET_TICKS[0], min(0.01, 10 ** np.floor(np.log10(smallest))))
    high = 0.5 if smallest < 0.4 else 0.8
    limits = norm.ppf([low, high])
    for name, (target, nontarget) in curves.items():
        p_miss, p_fa, _ = det_curve(target, nontarget)
        x = np.clip(norm.ppf(p_fa), limits[0], limits[1])
        y = np.clip(norm.ppf(p_miss), limits[0], limits[1])
        system_eer = eer(target, nontarget)
        line = axes.plot(x, y, drawstyle="default", label=f"{name} (EER {100 * system_eer:.2f}%)")[0]
        costs = p_target * p_miss + (1 - p_target) * p_fa
        best = int(np.argmin(costs))
        dcf = min_dcf(target, nontarget, p_target=p_target)
        axes.plot(
            x[best], y[best], "o", color=line.get_color(), label=f"minDCF {dcf:.3f} (p_target {p_target:g})"
        )
    ticks = [t for t in DET_TICKS if low <= t <= high]
    labels = [f"{100 * t:g}" for t in ticks]
    axes.plot(limits, limits, ":", color="0.6", linewidth=0.8)
    axes.set_xticks(norm.ppf(ticks), labels)
    axes.set_yticks(norm.ppf(ticks), labels)
    # A margin beyond the clipping range: curves and minDCF points at 0% or at the range's end stay visible
    # instead of merging into the frame.
    margin = 0.03 * (limits[1] - limits[0])
    axes.set_xlim(limits[0] - margin, limits[1] + margin)
    axes.set_ylim(limits[0] - margin, limits[1] + margin)
    axes.set_xlabel("False-alarm rate (%)")
    axes.set_ylabel("Miss rate (%)")
    axes.set_title(title)
    axes.grid(True, color="0.85")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    return figure


def plot_det(
    systems: Systems | tuple[ArrayLike, ArrayLike],
    path: str | Path,
    *,
    title: str = "DET curve",
    p_target: float = 0.01,
    dpi: int = 120,
) -> Path:
    r"""Write a DET plot (see :func:`det_figure`) as a PNG file and return its path.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = plot_det(([1.0, 2.0, 3.0], [-1.0, 0.0, 2.5]), Path(folder) / "det.png")
    ...     print(path.name, path.read_bytes().startswith(b"\x89PNG"))
    det.png True
    """
    path = Path(path)
    det_figure(systems, title=title, p_target=p_target).savefig(path, format="png", dpi=dpi)
    return path


def _count_pairs(truths: Sequence[str], predictions: Sequence[str], labels: list[str]) -> np.ndarray:
    """``counts[i, j]``: tests of ``labels[i]`` identified as ``labels[j]`` (other pairs are left out).

    scikit-learn's ``confusion_matrix`` gives the same counts but warns when every test has one label.
    """
    position = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), np.int64)
    for truth, predicted in zip(truths, predictions, strict=True):
        if truth in position and predicted in position:
            counts[position[truth], position[predicted]] += 1
    return counts


def confusion_figure(
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    title: str = "Identification confusion matrix",
) -> tuple[Figure, np.ndarray]:
    """Build the confusion-matrix figure: rows are true speakers, columns predicted speakers.

    Returns
    -------
    figure : matplotlib.figure.Figure
    counts : ndarray of shape (n_labels, n_labels)
        ``counts[i, j]`` = number of tests of ``labels[i]`` identified as ``labels[j]``. ``labels``
        defaults to the sorted union of true and predicted names (so a rejection label gets its own column).

    Examples
    --------
    >>> figure, counts = confusion_figure(["alice", "alice", "bob"], ["alice", "bob", "bob"])
    >>> counts.tolist()  # rows: true alice, bob; columns: predicted alice, bob
    [[1, 1], [0, 1]]
    >>> figure.axes[0].get_title()
    'Identification confusion matrix (accuracy 66.7%)'
    """
    if len(true_labels) != len(predicted_labels):
        raise DataError(
            f"plot_confusion: {len(true_labels)} true labels but {len(predicted_labels)} predictions"
        )
    if len(true_labels) == 0:
        raise DataError("plot_confusion: no tests")
    if labels is None:
        labels = sorted(set(true_labels) | set(predicted_labels))
    counts = _count_pairs(true_labels, predicted_labels, list(labels))
    size = min(4 + 0.35 * len(labels), 30)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(counts, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    positions = np.arange(len(labels))
    axes.set_xticks(positions, list(labels), rotation=90, fontsize="small")
    axes.set_yticks(positions, list(labels), fontsize="small")
    if len(labels) <= 30:  # numbers stay legible only on small matrices
        for row, col in zip(*np.nonzero(counts), strict=True):
            colour = "white" if counts[row, col] > counts.max() / 2 else "black"
            axes.text(col, row, str(counts[row, col]), ha="center", va="center", color=colour, fontsize=7)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axes.set_xlabel("Predicted speaker")
    axes.set_ylabel("True speaker")
    axes.set_title(f"{title} (accuracy {100 * accuracy:.1f}%)")
    figure.tight_layout()
    return figure, counts


def plot_confusion(
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Identification confusion matrix",
    dpi: int = 120,
) -> Path:
    r"""Write the identification confusion matrix (see :func:`confusion_figure`) as a PNG file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = plot_confusion(["alice", "bob"], ["alice", "unknown"], Path(folder) / "confusion.png")
    ...     print(path.name, path.read_bytes().startswith(b"\x89PNG"))
    confusion.png True
    """
    path = Path(path)
    figure, _ = confusion_figure(true_labels, predicted_labels, labels=labels, title=title)
    figure.savefig(path, format="png", dpi=dpi)
    return path
