"""Tests of spkid.score.calibrate: linear calibration recovers known LLRs and improves Cllr."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logit

from spkid.errors import DataError, ModelError
from spkid.metrics import cllr, min_cllr
from spkid.score import Calibrator, bayes_threshold

MEAN = 1.5  # targets ~ N(+MEAN, 1), non-targets ~ N(-MEAN, 1): the true LLR of s is 2 * MEAN * s


def miscalibrated_trials(n_target: int, n_nontarget: int, seed: int):
    """Raw scores 3 s + 5 of Gaussian scores s whose exact LLR is 2 MEAN s."""
    rng = np.random.default_rng(seed)
    clean = np.r_[rng.normal(MEAN, 1, n_target), rng.normal(-MEAN, 1, n_nontarget)]
    labels = np.r_[np.ones(n_target, bool), np.zeros(n_nontarget, bool)]
    return 3.0 * clean + 5.0, labels


def test_recovers_true_llr_whatever_the_class_balance():
    raw = 3.0 * np.linspace(-1.5, 1.5, 7) + 5.0
    true_llr = 2 * MEAN * (raw - 5.0) / 3.0
    for n_target, n_nontarget in ((3000, 3000), (600, 6000)):
        scores, labels = miscalibrated_trials(n_target, n_nontarget, seed=n_target)
        calibrator = Calibrator().fit(scores, labels)
        assert calibrator.scale_ == pytest.approx(2 * MEAN / 3.0, rel=0.1)
        # Without removing the dev set's prior log-odds the 1:10 set would be off by log(10) = 2.3.
        np.testing.assert_allclose(calibrator.transform(raw), true_llr, atol=0.4)
        assert calibrator.transform(5.0) == pytest.approx(0.0, abs=0.15)


def test_matches_direct_minimisation_of_weighted_cross_entropy():
    scores, labels = miscalibrated_trials(300, 1200, seed=7)
    p_effective = 0.2
    calibrator = Calibrator(p_effective=p_effective).fit(scores, labels)

    n_target, n_nontarget = labels.sum(), (~labels).sum()
    # Platt's targets: a target trial is (N+ + 1) / (N+ + 2) of a target, a non-target 1 / (N- + 2) of one
    soft = np.where(labels, (n_target + 1) / (n_target + 2), 1 / (n_nontarget + 2))

    def objective(params):
        llr = params[0] * scores + params[1]
        log_odds = llr + logit(p_effective)
        cross_entropy = soft * np.logaddexp(0, -log_odds) + (1 - soft) * np.logaddexp(0, log_odds)
        target_cost, nontarget_cost = np.mean(cross_entropy[labels]), np.mean(cross_entropy[~labels])
        return p_effective * target_cost + (1 - p_effective) * nontarget_cost

    reference = minimize(objective, x0=[1.0, 0.0], method="BFGS").x
    assert calibrator.scale_ == pytest.approx(reference[0], rel=1e-3)
    assert calibrator.offset_ == pytest.approx(reference[1], abs=1e-2)


def test_improves_cllr_on_held_out_trials():
    dev_scores, dev_labels = miscalibrated_trials(500, 4500, seed=1)
    eval_scores, eval_labels = miscalibrated_trials(500, 4500, seed=2)
    calibrator = Calibrator().fit(dev_scores, dev_labels)
    before = cllr(eval_scores[eval_labels], eval_scores[~eval_labels])
    calibrated = calibrator.transform(eval_scores)
    after = cllr(calibrated[eval_labels], calibrated[~eval_labels])
    floor = min_cllr(eval_scores[eval_labels], eval_scores[~eval_labels])
    assert before > 1.0
    assert after < before
    assert after - floor < 0.03


def test_thresholds():
    assert bayes_threshold(0.01) == pytest.approx(np.log(99.0))
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.01, c_miss=10.0) == pytest.approx(np.log(9.9))
    scores, labels = miscalibrated_trials(200, 2000, seed=3)
    calibrator = Calibrator().fit(scores, labels)
    raw = calibrator.raw_threshold(0.01)
    assert calibrator.transform(raw) == pytest.approx(calibrator.threshold(0.01))
    decisions = calibrator.decide(scores, 0.01)
    np.testing.assert_array_equal(decisions, scores >= raw)


def test_dict_roundtrip_is_plain_floats():
    scores, labels = miscalibrated_trials(100, 400, seed=4)
    calibrator = Calibrator().fit(scores, labels)
    values = json.loads(json.dumps(calibrator.to_dict()))
    restored = Calibrator.from_dict(values)
    np.testing.assert_allclose(restored.transform(scores), calibrator.transform(scores))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"scale": 1.0, "offset": 0.0}, "expected keys"),
        ({"scale": "x", "offset": 0.0, "p_effective": 0.5}, "must be numbers"),
        ({"scale": np.inf, "offset": 0.0, "p_effective": 0.5}, "non-finite"),
        ({"scale": 1.0, "offset": 0.0, "p_effective": 1.5}, "p_effective"),
    ],
)
def test_from_dict_rejects_bad_values(values, message):
    with pytest.raises(ModelError, match=message):
        Calibrator.from_dict(values)


def test_fit_errors():
    with pytest.raises(DataError, match="target and non-target"):
        Calibrator().fit([1.0, 2.0], [1, 1])
    with pytest.raises(DataError, match="labels must be"):
        Calibrator().fit([1.0, 2.0], [2, 0])
    with pytest.raises(ModelError, match="not fitted"):
        Calibrator().transform([1.0])


def test_separable_dev_set_gives_finite_calibration():
    calibrator = Calibrator().fit([3.0, 4.0, 5.0, -1.0, 0.0], [1, 1, 1, 0, 0])
    assert np.isfinite(calibrator.scale_) and calibrator.scale_ > 0


def test_small_separable_dev_set_does_not_make_held_out_scores_overconfident():
    # 12 + 12 development trials that happen to be separated (|s| > 0.3) from overlapping classes
    rng = np.random.default_rng(5)
    targets, nontargets = rng.normal(MEAN, 1, 200), rng.normal(-MEAN, 1, 200)
    dev = np.r_[targets[targets > 0.3][:12], nontargets[nontargets < -0.3][:12]]
    dev_labels = np.repeat([True, False], 12)
    eval_scores = np.r_[rng.normal(MEAN, 1, 500), rng.normal(-MEAN, 1, 4500)]
    eval_labels = np.repeat([True, False], [500, 4500])
    calibrated = Calibrator().fit(dev, dev_labels).transform(eval_scores)
    true_llr = 2 * MEAN * eval_scores
    # an unregularised (or L2, C = 1e4) fit: slope near 11 against the true 3, held-out Cllr 0.55
    assert cllr(calibrated[eval_labels], calibrated[~eval_labels]) < 0.35
    assert cllr(calibrated[eval_labels], calibrated[~eval_labels]) < 1.5 * cllr(
        true_llr[eval_labels], true_llr[~eval_labels]
    )
