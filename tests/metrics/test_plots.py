"""Tests of spkid.metrics.plots: PNG files are written and the plotted data are on normal-deviate axes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import norm

from spkid.errors import DataError
from spkid.metrics import det_curve
from spkid.metrics.plots import confusion_figure, det_figure, plot_confusion, plot_det

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return rng.normal(2.0, 1.0, 200), rng.normal(0.0, 1.0, 2000)


def test_plot_det_writes_png(tmp_path, scores):
    path = plot_det({"gmm-ubm": scores, "shifted": (scores[0] - 1, scores[1])}, tmp_path / "det.png")
    assert path == tmp_path / "det.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_det_axes_are_probit(scores):
    figure = det_figure(scores)
    axes = figure.axes[0]
    curve = axes.lines[0]
    p_miss, p_fa, _ = det_curve(*scores)
    low, high = axes.get_xlim()
    margin = 0.03 / 1.06 * (high - low)  # the axes reach this far beyond the clipping range
    np.testing.assert_allclose(curve.get_xdata(), np.clip(norm.ppf(p_fa), low + margin, high - margin))
    np.testing.assert_allclose(curve.get_ydata(), np.clip(norm.ppf(p_miss), low + margin, high - margin))

    # Tick labels are percentages placed at the normal deviates of those percentages.
    for position, label in zip(axes.get_xticks(), axes.get_xticklabels(), strict=True):
        assert norm.cdf(position) * 100 == pytest.approx(float(label.get_text()))
    assert "EER" in curve.get_label()


def test_det_curve_is_not_cut_off_at_the_edges():
    """Perfectly separated scores put the curve at 0% on both axes: it must lie inside the frame."""
    figure = det_figure((np.array([3.0, 4.0, 5.0]), np.array([-1.0, 0.0, 1.0])))
    axes = figure.axes[0]
    (x_low, x_high), (y_low, y_high) = axes.get_xlim(), axes.get_ylim()
    for line in axes.lines[:2]:  # the curve and its minDCF point
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert np.all(x > x_low) and np.all(x < x_high) and np.all(y > y_low) and np.all(y < y_high)


def test_det_rejects_bad_systems(tmp_path):
    with pytest.raises(DataError, match="no systems"):
        plot_det({}, tmp_path / "x.png")


def test_confusion_counts_and_png(tmp_path):
    truth = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "unknown"]
    figure, counts = confusion_figure(truth, predicted)
    labels = ["a", "b", "c", "unknown"]
    pairs = Counter(zip(truth, predicted, strict=True))
    expected = np.array([[pairs[(t, p)] for p in labels] for t in labels])
    np.testing.assert_array_equal(counts, expected)
    assert "accuracy 60.0%" in figure.axes[0].get_title()
    path = plot_confusion(truth, predicted, tmp_path / "confusion.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_confusion_counts_equal_scikit_learns_and_one_label_gives_no_warning():
    import warnings

    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    names = ["ann", "bob", "cy", "dee", "unknown"]
    truth = list(rng.choice(names[:4], 200))
    predicted = list(rng.choice(names, 200))
    labels = ["bob", "ann", "unknown", "cy"]  # an order of its own, "dee" left out
    _, counts = confusion_figure(truth, predicted, labels=labels)
    np.testing.assert_array_equal(counts, confusion_matrix(truth, predicted, labels=labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, counts = confusion_figure(["ann", "ann"], ["ann", "ann"])
    assert counts.tolist() == [[2]]


def test_confusion_length_mismatch(tmp_path):
    with pytest.raises(DataError, match="2 true labels but 1"):
        plot_confusion(["a", "b"], ["a"], tmp_path / "c.png")
