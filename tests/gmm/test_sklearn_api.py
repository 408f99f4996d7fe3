"""DiagonalGMM as a scikit-learn estimator (GridSearchCV, check_estimator), and MixtureParameters, the
scikit-learn-free form of a fitted model that scoring uses."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import check_estimator

from spkid.errors import ModelError
from spkid.gmm import DiagonalGMM, MixtureParameters

#: Checks the default float32 E-step cannot be sure to pass, by name, with the reason (they fail in some runs
#: and pass in others: scikit-learn counts them "xfail" or "passed"). With ``dtype=numpy.float64`` every check
#: passes (tested below with no exception at all).
FLOAT32_EXPECTED_FAILURES = {
    "check_methods_sample_order_invariance": (
        "float32 E-step: a frame's log-likelihood can move by one float32 ulp (~1e-7 relative) with its "
        "row's place in the BLAS block and the buffers' alignment; the check wants rtol=1e-7 of score_samples"
    ),
    "check_methods_subset_invariance": "float32 E-step: as check_methods_sample_order_invariance",
}


def four_clusters(seed: int, n_frames: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[-8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [8.0, 0.0, 3.0], [0.0, -8.0, -3.0]])
    return (centres[rng.integers(0, 4, n_frames)] + rng.normal(size=(n_frames, 3))).astype(np.float32)


def run_checks(estimator: DiagonalGMM, expected_failures: dict[str, str]) -> dict[str, str]:
    """check_estimator's verdict per check ("passed", "skipped", "xfail" or "failed")."""
    statuses = {}

    def record(**result) -> None:
        statuses[result["check_name"]] = result["status"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkipTestWarning of the array-API check (SCIPY_ARRAY_API unset)
        check_estimator(estimator, expected_failed_checks=expected_failures, on_fail=None, callback=record)
    return statuses


def test_grid_search_picks_n_components_by_held_out_likelihood():
    X = four_clusters(seed=2)
    search = GridSearchCV(DiagonalGMM(random_state=0, max_iter=50), {"n_components": [2, 4]}, cv=3).fit(X)
    assert search.best_params_ == {"n_components": 4}
    assert isinstance(search.best_estimator_, DiagonalGMM) and search.best_estimator_.n_components == 4
    # scikit-learn's GaussianMixture chooses the same, and the held-out mean log-likelihood per frame of the
    # true size is its own (with 2 components each EM merges clusters its own way: only far lower, both).
    reference = GridSearchCV(
        GaussianMixture(covariance_type="diag", random_state=0, max_iter=50), {"n_components": [2, 4]}, cv=3
    ).fit(X)
    assert reference.best_params_ == {"n_components": 4}
    ours, theirs = search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    assert ours[1] == pytest.approx(theirs[1], abs=1e-3)
    assert ours[0] < ours[1] - 1 and theirs[0] < theirs[1] - 1


def test_check_estimator_passes_in_float64():
    statuses = run_checks(DiagonalGMM(dtype=np.float64), {})
    assert "check_fit2d_1sample" in statuses and "check_estimators_pickle" in statuses  # legacy checks ran
    assert set(statuses.values()) <= {"passed", "skipped"}
    skipped = {name for name, status in statuses.items() if status == "skipped"}
    assert skipped <= {"check_array_api_input"}  # scikit-learn skips it unless SCIPY_ARRAY_API=1


def test_check_estimator_passes_with_the_default_float32_but_for_the_listed_checks():
    statuses = run_checks(DiagonalGMM(), FLOAT32_EXPECTED_FAILURES)
    unexpected = {
        name: status
        for name, status in statuses.items()
        if status not in ("passed", "skipped") and name not in FLOAT32_EXPECTED_FAILURES
    }
    assert not unexpected


def test_estimator_and_parameters_convert_both_ways():
    X = four_clusters(seed=3, n_frames=800)
    model = DiagonalGMM(4, max_iter=3, tol=0.0, random_state=0).fit(X)
    parameters = model.parameters()
    assert isinstance(parameters, MixtureParameters) and parameters.n_iter == 3
    np.testing.assert_array_equal(parameters.means_, model.means_)
    assert parameters.score(X) == model.score(X)
    again = DiagonalGMM.from_params(parameters, n_jobs=2)
    assert again.n_jobs == 2 and again.dtype is np.float32 and again.history_ == model.history_
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    restored = pickle.loads(pickle.dumps(parameters))
    assert not restored.means_.flags.writeable
    np.testing.assert_array_equal(restored.score_samples(X), parameters.score_samples(X))
    with pytest.raises(ModelError, match="give MixtureParameters alone"):
        DiagonalGMM.from_params(parameters, parameters.means_, parameters.variances_)
    with pytest.raises(ValueError, match="X has 2 features, but DiagonalGMM is expecting 3"):
        model.score(X[:, :2])


def test_loading_and_scoring_models_imports_no_sklearn(tmp_path):
    """The scoring path (gmm face, stored parameters, the scorer) never loads the estimator module."""
    rng = np.random.default_rng(0)
    parameters = MixtureParameters(np.full(4, 0.25), rng.normal(size=(4, 3)), np.ones((4, 3)))
    np.savez(tmp_path / "ubm.npz", **parameters.to_dict())
    program = (
        "import sys\nimport numpy as np\n"
        "from spkid.gmm import MixtureParameters\n"
        "from spkid.score import Scorer\n"
        "from spkid.ubm import map_adapt\n"
        f"ubm = MixtureParameters.from_dict(dict(np.load({str(tmp_path / 'ubm.npz')!r})))\n"
        "X = np.random.default_rng(1).normal(size=(200, 3)).astype(np.float32)\n"
        "speaker = map_adapt(ubm, X)\n"
        "print(float(Scorer(ubm, {'a': speaker}, top_c=2).llr(X)[0]) > 0, 'sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["True", "False"], done.stdout + done.stderr
