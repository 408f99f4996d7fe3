"""Tests of spkid.metrics against brute-force and independent (scikit-learn, scipy) references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull
from scipy.stats import norm
from sklearn.metrics import roc_curve

from spkid.errors import DataError
from spkid.metrics import (
    actual_dcf,
    cllr,
    det_curve,
    eer,
    identification_accuracy,
    min_cllr,
    min_dcf,
    rocch,
    verification_report,
)


def gaussian_scores(n_target: int, n_nontarget: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(separation, 1.0, n_target), rng.normal(0.0, 1.0, n_nontarget)


def brute_force_dcf(target, nontarget, p_target, c_miss=1.0, c_fa=1.0):
    """Minimum DCF by trying every score (and +-inf) as an accept-if-at-or-above threshold."""
    best = np.inf
    for threshold in np.concatenate([target, nontarget, [-np.inf, np.inf]]):
        p_miss = np.mean(target < threshold)
        p_fa = np.mean(nontarget >= threshold)
        best = min(best, c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def convex_hull_eer(target, nontarget):
    """EER from scipy's convex hull of the empirical DET points (closed with the (1, 1) corner)."""
    p_miss, p_fa, _ = det_curve(target, nontarget)
    points = np.unique(np.column_stack([p_fa, p_miss]), axis=0)
    points = np.vstack([points, [1.0, 1.0]])
    hull = ConvexHull(points)
    crossings = []
    for start, end in hull.simplices:
        (x0, y0), (x1, y1) = points[start], points[end]
        gap0, gap1 = y0 - x0, y1 - x1
        if gap0 == gap1:
            continue
        fraction = gap0 / (gap0 - gap1)
        if 0.0 <= fraction <= 1.0:
            crossings.append(x0 + fraction * (x1 - x0))
    return min(crossings)


class TestDetCurve:
    def test_matches_sklearn_roc_curve(self):
        target, nontarget = gaussian_scores(60, 300, 1.5)
        target = np.round(target, 1)  # create ties
        nontarget = np.round(nontarget, 1)
        p_miss, p_fa, thresholds = det_curve(target, nontarget)
        labels = np.r_[np.ones(target.size), np.zeros(nontarget.size)]
        fpr, tpr, sk_thresholds = roc_curve(labels, np.r_[target, nontarget], drop_intermediate=False)
        finite = np.isfinite(sk_thresholds)
        reference = dict(zip(sk_thresholds[finite], zip(fpr[finite], tpr[finite], strict=True), strict=True))
        for miss, fa, threshold in zip(p_miss[:-1], p_fa[:-1], thresholds[:-1], strict=True):
            ref_fa, ref_tpr = reference[threshold]
            assert fa == pytest.approx(ref_fa)
            assert miss == pytest.approx(1 - ref_tpr)

    def test_endpoints_and_monotone(self):
        p_miss, p_fa, thresholds = det_curve(*gaussian_scores(40, 80, 1.0))
        assert (p_miss[0], p_fa[0]) == (0.0, 1.0)
        assert (p_miss[-1], p_fa[-1], thresholds[-1]) == (1.0, 0.0, np.inf)
        assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)


class TestEer:
    def test_perfect_separation_is_zero(self):
        assert eer([2.0, 3.0, 5.0], [-1.0, 0.0, 1.9]) == 0.0

    def test_identical_distributions_near_half(self):
        rng = np.random.default_rng(3)
        value = eer(rng.normal(size=3000), rng.normal(size=3000))
        assert 0.45 <= value <= 0.5

    def test_all_tied_is_half(self):
        assert eer([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5

    def test_gaussian_matches_theory(self):
        target, nontarget = gaussian_scores(20000, 20000, 2.0, seed=5)
        assert eer(target, nontarget) == pytest.approx(norm.cdf(-1.0), abs=0.01)

    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_matches_scipy_convex_hull(self, seed):
        target, nontarget = gaussian_scores(37, 211, 1.2, seed=seed)
        assert eer(target, nontarget) == pytest.approx(convex_hull_eer(target, nontarget), abs=1e-12)

    def test_between_step_curve_bounds(self):
        target, nontarget = gaussian_scores(50, 450, 1.5, seed=9)
        p_miss, p_fa, _ = det_curve(target, nontarget)
        value = eer(target, nontarget)
        assert np.min((p_miss + p_fa) / 2) - 1e-12 <= value <= np.min(np.maximum(p_miss, p_fa)) + 1e-12

    def test_rocch_is_convex(self):
        p_miss, p_fa = rocch(*gaussian_scores(100, 400, 1.0, seed=4))
        steps = np.column_stack([np.diff(p_fa), np.diff(p_miss)])
        turns = steps[:-1, 0] * steps[1:, 1] - steps[:-1, 1] * steps[1:, 0]
        assert np.all(turns <= 1e-12)  # every turn is clockwise: the hull bulges towards the origin
        p_miss_raw, p_fa_raw, _ = det_curve(*gaussian_scores(100, 400, 1.0, seed=4))
        # Every empirical point lies on or above the hull (above the line through each hull segment).
        for (x0, y0), (x1, y1) in zip(
            zip(p_fa[:-1], p_miss[:-1], strict=True), zip(p_fa[1:], p_miss[1:], strict=True), strict=True
        ):
            side = (x1 - x0) * (p_miss_raw - y0) - (y1 - y0) * (p_fa_raw - x0)
            assert np.all(side <= 1e-12)


scores_strategy = st.lists(st.integers(-1000, 1000), min_size=1, max_size=40).map(
    lambda values: np.asarray(values, dtype=np.float64) / 10.0
)
monotone_transforms = st.sampled_from(
    [lambda s: 3.0 * s - 7.0, lambda s: s**3 + s, lambda s: np.exp(s / 20.0), np.arctan]
)


@settings(max_examples=60, deadline=None)
@given(target=scores_strategy, nontarget=scores_strategy, transform=monotone_transforms)
def test_invariant_under_monotone_transform(target, nontarget, transform):
    t_target, t_nontarget = transform(target), transform(nontarget)
    assert eer(t_target, t_nontarget) == pytest.approx(eer(target, nontarget), abs=1e-9)
    for p_target in (0.01, 0.001, 0.3):
        assert min_dcf(t_target, t_nontarget, p_target) == pytest.approx(
            min_dcf(target, nontarget, p_target), abs=1e-9
        )
    assert min_cllr(t_target, t_nontarget) == pytest.approx(min_cllr(target, nontarget), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(target=scores_strategy, nontarget=scores_strategy, p_target=st.sampled_from([0.01, 0.001, 0.5, 0.9]))
def test_min_dcf_matches_brute_force(target, nontarget, p_target):
    assert min_dcf(target, nontarget, p_target) == pytest.approx(
        brute_force_dcf(target, nontarget, p_target), abs=1e-9
    )


class TestDcf:
    def test_min_dcf_with_costs_matches_brute_force(self):
        target, nontarget = gaussian_scores(50, 450, 2.0, seed=2)
        value = min_dcf(target, nontarget, p_target=0.05, c_miss=10.0, c_fa=1.0)
        assert value == pytest.approx(brute_force_dcf(target, nontarget, 0.05, 10.0, 1.0))

    def test_min_dcf_at_most_one_and_zero_when_separated(self):
        target, nontarget = gaussian_scores(30, 30, 0.0, seed=1)
        assert min_dcf(target, nontarget, 0.001) <= 1.0
        assert min_dcf([5.0, 6.0], [0.0, 1.0], 0.001) == 0.0

    def test_actual_dcf_by_hand_and_bounded_below_by_min(self):
        target = np.array([-1.0, 2.0, 3.0, 4.0])
        nontarget = np.array([-3.0, -2.0, 0.5, 2.5])
        # Threshold 1: one miss of four (-1.0), one false alarm of four (2.5).
        expected = (0.01 * 0.25 + 0.99 * 0.25) / 0.01
        assert actual_dcf(target, nontarget, 0.01, threshold=1.0) == pytest.approx(expected)
        for threshold in np.linspace(-4, 5, 19):
            assert (
                actual_dcf(target, nontarget, 0.01, threshold=threshold)
                >= min_dcf(target, nontarget, 0.01) - 1e-12
            )

    def test_actual_dcf_default_threshold_is_bayes(self):
        target, nontarget = gaussian_scores(100, 100, 1.0, seed=6)
        bayes = np.log(99.0)
        assert actual_dcf(target, nontarget, 0.01) == actual_dcf(target, nontarget, 0.01, threshold=bayes)

    def test_bad_prior(self):
        with pytest.raises(DataError, match="p_target"):
            min_dcf([1.0], [0.0], p_target=1.0)


class TestCllr:
    def test_reference_formula_and_uninformative(self):
        target, nontarget = gaussian_scores(25, 75, 1.0, seed=8)
        expected = 0.5 * (np.mean(np.log2(1 + np.exp(-target))) + np.mean(np.log2(1 + np.exp(nontarget))))
        assert cllr(target, nontarget) == pytest.approx(expected)
        assert cllr(np.zeros(5), np.zeros(9)) == pytest.approx(1.0)

    def test_min_cllr_bounds(self):
        target, nontarget = gaussian_scores(200, 800, 1.5, seed=11)
        calibrated_target, calibrated_nontarget = 1.5 * target - 1.125, 1.5 * nontarget - 1.125
        assert 0.0 < min_cllr(target, nontarget) <= 1.0
        # These Gaussian scores become exact LLRs after 1.5 s - 1.125; PAV can only do (slightly) better.
        actual = cllr(calibrated_target, calibrated_nontarget)
        assert min_cllr(target, nontarget) <= actual
        assert actual - min_cllr(target, nontarget) < 0.05
        # Miscalibrated scores cost more, but minCllr does not change.
        assert cllr(10 * target, 10 * nontarget) > actual + 0.2
        assert min_cllr(10 * target, 10 * nontarget) == pytest.approx(min_cllr(target, nontarget))

    def test_min_cllr_perfect_and_useless(self):
        assert min_cllr([3.0, 4.0], [1.0, 2.0]) == 0.0
        assert min_cllr([1.0, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)


def test_verification_report_keys():
    report = verification_report(*gaussian_scores(50, 450, 2.0))
    expected = {"n_target", "n_nontarget", "eer", "min_dcf_0.01", "min_dcf_0.001", "cllr", "min_cllr"}
    assert set(report) == expected
    assert report["n_target"] == 50 and report["n_nontarget"] == 450


class TestIdentificationAccuracy:
    def test_top1_and_topk(self):
        truth = ["a", "b", "c", "d"]
        ranked = [["a", "b"], ["a", "b"], [("c", 1.0), ("a", 0.5)], ["b", "c", "d"]]
        assert identification_accuracy(truth, ranked) == 0.5
        assert identification_accuracy(truth, ranked, top_k=2) == 0.75
        assert identification_accuracy(truth, ranked, top_k=3) == 1.0

    def test_errors(self):
        with pytest.raises(DataError, match="2 true labels but 1"):
            identification_accuracy(["a", "b"], [["a"]])
        with pytest.raises(DataError, match="top_k"):
            identification_accuracy(["a"], [["a"]], top_k=0)


@pytest.mark.parametrize(
    ("target", "nontarget", "message"),
    [([], [1.0], "no scores"), ([1.0, np.nan], [0.0], "NaN"), ([[1.0]], [0.0], "1-D")],
)
def test_bad_scores_raise(target, nontarget, message):
    with pytest.raises(DataError, match=message):
        eer(target, nontarget)
