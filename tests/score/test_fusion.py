"""Tests of spkid.score.fusion and spkid.metrics.fused_scores: linear score fusion, checked against
scikit-learn and against the known LLR of Gaussian scores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import check_cli_error, check_cli_ok, cli_invoke

from spkid.errors import DataError
from spkid.metrics import aligned_scores, cllr, fuse_score_files, read_scores
from spkid.score import Calibrator, Fusion


def gaussian_systems(n_trials: int, noise: tuple[float, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of systems that see +1 (target) or -1 (non-target) through Gaussian noise of their own:
    the true LLR of system i's score x is 2 x / noise_i^2, and of all of them together their sum."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n_trials) < 0.3
    truth = np.where(labels, 1.0, -1.0)
    scores = np.stack([truth + rng.normal(0.0, sigma, n_trials) for sigma in noise], axis=1)
    return scores, labels


def test_fusion_finds_the_true_llr_of_independent_gaussian_systems() -> None:
    scores, labels = gaussian_systems(40000, (1.0, 2.0))
    fusion = Fusion().fit(scores, labels)
    np.testing.assert_allclose(fusion.weights_, [2.0, 0.5], atol=0.08)
    assert abs(fusion.offset_) < 0.05


def test_fusion_equals_an_independent_scikit_learn_fit() -> None:
    """The same prior-weighted logistic regression with Platt's targets, fitted by scikit-learn on the raw
    (unstandardised) columns: the same LLRs."""
    from sklearn.linear_model import LogisticRegression

    scores, labels = gaussian_systems(3000, (1.0, 1.5, 3.0), seed=1)
    fusion = Fusion().fit(scores, labels)
    y = labels.astype(int)
    weights = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum()) * len(y)
    soft = np.where(y == 1, (y.sum() + 1) / (y.sum() + 2), 1 / ((1 - y).sum() + 2))
    reference = LogisticRegression(C=1e6, max_iter=1000).fit(
        np.r_[scores, scores],
        np.r_[np.ones_like(y), np.zeros_like(y)],
        sample_weight=np.r_[weights * soft, weights * (1 - soft)],
    )
    expected = scores @ reference.coef_[0] + reference.intercept_[0]  # p_effective 0.5: prior log-odds 0
    np.testing.assert_allclose(fusion.transform(scores), expected, atol=0.01)  # regularisation, tolerance


def test_one_column_fusion_is_the_calibration() -> None:
    scores, labels = gaussian_systems(2000, (1.3,), seed=2)
    fusion = Fusion().fit(scores, labels)
    calibrator = Calibrator().fit(scores[:, 0], labels)
    assert fusion.weights_[0] == pytest.approx(calibrator.scale_)
    assert fusion.offset_ == pytest.approx(calibrator.offset_)


def test_fused_scores_are_better_calibrated_than_either_system() -> None:
    train, train_labels = gaussian_systems(4000, (1.0, 1.5), seed=3)
    test, test_labels = gaussian_systems(4000, (1.0, 1.5), seed=4)
    fused = Fusion().fit(train, train_labels).transform(test)
    single = [Calibrator().fit(train[:, i], train_labels).transform(test[:, i]) for i in range(2)]
    cost = lambda llr: cllr(llr[test_labels], llr[~test_labels])  # noqa: E731
    assert cost(fused) < min(cost(llr) for llr in single) - 0.05


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.ones((4, 2)), [1, 1, 1, 1], "target and non-target"),
        (np.ones((4, 2)), [1, 0, 1], "labels of shape"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), [1, 0], "NaN or infinite"),
        (np.ones(4), [1, 0, 1, 0], "(n_trials, n_systems)"),
        (np.ones((4, 2)), [2, 0, 1, 0], "0/1"),
    ],
)
def test_fusion_rejects_bad_input(scores, labels, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        Fusion().fit(scores, labels)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_score_files_align_by_trial_whatever_their_order(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", ["# raw", "alice u1 1.0", "bob u1 -2.0", "alice u2 0.5"])
    b = write(tmp_path / "b.txt", ["alice u2 5.0", "alice u1 3.0", "bob u1 -1.0"])
    trials, columns, labels = aligned_scores([a, b])
    assert trials == [("alice", "u1"), ("bob", "u1"), ("alice", "u2")]
    assert columns.tolist() == [[1.0, 3.0], [-2.0, -1.0], [0.5, 5.0]]
    assert labels == [None, None, None]


def test_labels_the_score_files_carry_are_joined_by_trial(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", ["alice u1 1.0 target", "bob u1 -2.0", "alice u2 0.5"])
    b = write(tmp_path / "b.txt", ["alice u2 5.0 nontarget", "alice u1 3.0 target", "bob u1 -1.0"])
    assert aligned_scores([a, b]).labels == [True, None, False]
    c = write(tmp_path / "c.txt", ["alice u1 3.0 nontarget", "bob u1 -1.0", "alice u2 5.0"])
    with pytest.raises(
        DataError, match=re.escape("c.txt: trial alice u1 is labelled nontarget here and target in")
    ):
        aligned_scores([a, c])


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (["alice u1 3.0"], "b.txt: no score for trial bob u1 (scored in"),
        (["alice u1 3.0", "bob u1 1.0", "carol u1 2.0"], "b.txt: trial carol u1 is not scored in"),
        (["alice u1 3.0", "alice u1 2.0", "bob u1 1.0"], "b.txt: trial alice u1 is scored twice"),
        (["# nothing"], "b.txt: no scores"),
    ],
)
def test_score_files_that_do_not_align_name_the_file_and_the_trial(tmp_path: Path, other, message) -> None:
    a = write(tmp_path / "a.txt", ["alice u1 1.0", "bob u1 -2.0"])
    b = write(tmp_path / "b.txt", other)
    with pytest.raises(DataError, match=re.escape(message)):
        aligned_scores([a, b])


def test_fuse_score_files_with_given_weights_writes_every_trial(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", ["alice u1 1.0", "bob u1 -2.0"])
    b = write(tmp_path / "b.txt", ["bob u1 -1.0", "alice u1 3.0"])
    result = fuse_score_files([a, b], tmp_path / "f.txt", weights=[0.6, 0.4], offset=-1.0)
    fused = {(item.enroll, item.test): item.score for item in read_scores(tmp_path / "f.txt")}
    assert fused == pytest.approx({("alice", "u1"): 0.8, ("bob", "u1"): -2.6})
    assert (result.n_trials, result.n_labelled) == (2, 0)
    assert "llr = 0.6 * a.txt + 0.4 * b.txt - 1" in (tmp_path / "f.txt").read_text().splitlines()[0]


def test_spkid_fuse_fits_on_labelled_trials_and_beats_each_system(tmp_path: Path) -> None:
    scores, labels = gaussian_systems(600, (1.0, 1.5), seed=5)
    names = [(f"spk{i % 7}", f"utt{i}") for i in range(len(labels))]
    files = []
    for column in range(2):
        lines = [f"{e} {t} {value}" for (e, t), value in zip(names, scores[:, column], strict=True)]
        files.append(write(tmp_path / f"system{column}.txt", lines))
    kinds = ["target" if label else "nontarget" for label in labels]
    trials = write(tmp_path / "trials.txt", [f"{e} {t} {k}" for (e, t), k in zip(names, kinds, strict=True)])
    result = cli_invoke("fuse", *files, "--trials", trials, "-o", tmp_path / "fused.txt")
    check_cli_ok(result)
    assert "fused 600 trials (fitted on 600 labelled trials): llr = " in result.stdout
    metrics = {}
    for name in ("system0", "system1", "fused"):
        evaluated = cli_invoke("evaluate", tmp_path / f"{name}.txt", "--trials", trials, "--json")
        check_cli_ok(evaluated)
        metrics[name] = json.loads(evaluated.stdout)["metrics"]
    assert metrics["fused"]["eer"] < min(metrics["system0"]["eer"], metrics["system1"]["eer"])
    assert metrics["fused"]["cllr"] < 0.95 * metrics["system0"]["cllr"]


def test_spkid_fuse_fits_on_the_labels_the_score_files_carry(tmp_path: Path) -> None:
    scores, labels = gaussian_systems(400, (1.0, 1.5), seed=9)
    names = [(f"spk{i % 5}", f"utt{i}") for i in range(len(labels))]
    kinds = ["target" if label else "nontarget" for label in labels]
    trials = write(tmp_path / "trials.txt", [f"{e} {t} {k}" for (e, t), k in zip(names, kinds, strict=True)])
    plain, labelled = [], []
    for column in range(2):
        rows = list(zip(names, scores[:, column], kinds, strict=True))
        plain.append(write(tmp_path / f"plain{column}.txt", [f"{e} {t} {v}" for (e, t), v, _ in rows]))
        labelled.append(
            write(tmp_path / f"labelled{column}.txt", [f"{e} {t} {v} {k}" for (e, t), v, k in rows])
        )
    by_list = fuse_score_files(plain, tmp_path / "by_list.txt", trials=trials)
    result = cli_invoke("fuse", *labelled, "-o", tmp_path / "fused.txt")
    check_cli_ok(result)
    assert "fused 400 trials (fitted on 400 labelled trials): llr = " in result.stdout
    fused = read_scores(tmp_path / "fused.txt", labels=True)
    assert [item.target for item in fused] == labels.tolist()  # the labels travel into the fused file
    expected = {(item.enroll, item.test): item.score for item in read_scores(tmp_path / "by_list.txt")}
    assert {(item.enroll, item.test): item.score for item in fused} == pytest.approx(expected)
    assert by_list.n_labelled == 400
    evaluated = cli_invoke("evaluate", tmp_path / "fused.txt", "--json")  # no --trials needed
    check_cli_ok(evaluated)
    assert json.loads(evaluated.stdout)["metrics"]["n_target"] == int(labels.sum())


def test_spkid_fuse_bad_input_is_one_line(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", ["alice u1 1.0", "bob u1 -2.0"])
    b = write(tmp_path / "b.txt", ["alice u1 3.0"])
    out = tmp_path / "f.txt"
    check_cli_error(
        cli_invoke("fuse", a, b, "--weights", "1,1", "-o", out), "b.txt: no score for trial bob u1"
    )
    check_cli_error(
        cli_invoke("fuse", a, a, "-o", out), "--trials", "--weights", "neither given", "a.txt carries a label"
    )
    labelled = write(tmp_path / "l.txt", ["alice u1 1.0 target", "bob u1 -2.0 maybe"])
    check_cli_error(
        cli_invoke("fuse", a, labelled, "-o", out), "l.txt:2: label must be 'target' or 'nontarget'"
    )
    check_cli_error(cli_invoke("fuse", a, a, "--weights", "1", "-o", out), "1 weight(s) for 2 score files")
    assert not out.exists()  # nothing written on an error
    usage = cli_invoke("fuse", a, a, "--weights", "1,x", "-o", out)
    assert usage.exit_code == 2 and "not comma-separated numbers" in usage.output
