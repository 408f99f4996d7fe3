"""Score normalisation with the cohort: :class:`Normalizer` applies one method to raw LLR matrices.

It scores the :class:`~spkid.score.cohort.Cohort` with :class:`~spkid.score.Scorer` for the statistics the
method needs and hands them to :func:`spkid.score.normalize.normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from spkid.errors import StoreError
from spkid.score.normalize import normalize
from spkid.score.scorer import Scorer
from spkid.score.summarised import SUMMARISED, normalize_summarised

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM, MixtureParameters
    from spkid.score.cohort import Cohort

__all__ = ["Normalizer"]


class Normalizer:
    """Applies one score-normalisation method, computing the cohort statistics it needs.

    Parameters
    ----------
    method : str
        One of :data:`spkid.score.normalize.METHODS`.
    ubm : MixtureParameters or DiagonalGMM
    cohort : Cohort or None
        Required unless ``method`` is "none".
    top_c : int or None
        Top-C scoring setting used for the cohort scores (the same as for the raw scores).
    asnorm_top_k : int

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> from spkid.score import Scorer, select_cohort
    >>> from spkid.ubm import EnrollConfig, map_adapt
    >>> rng = np.random.default_rng(0)
    >>> ubm = MixtureParameters(np.full(2, 0.5), rng.normal(size=(2, 3)), np.ones((2, 3)))
    >>> pool = [rng.normal(size=(200, 3)) for _ in range(5)]
    >>> cohort = select_cohort(pool, ubm, size=5, enroll_config=EnrollConfig())
    >>> scorer = Scorer(ubm, {"alice": map_adapt(ubm, rng.normal(1.0, 1.0, (200, 3)))}, top_c=None)
    >>> tests = [rng.normal(size=(100, 3)) for _ in range(3)]
    >>> normalizer = Normalizer("snorm", ubm, cohort, top_c=None)
    >>> z_side, t_side = normalizer.model_statistics(scorer), normalizer.test_statistics(tests)
    >>> z_side.shape, t_side.shape  # (cohort segments, models), (tests, cohort models)
    ((5, 1), (3, 5))
    >>> normalizer.apply(scorer.llr_many(tests), z_side, t_side).shape
    (3, 1)
    """

    def __init__(
        self,
        method: str,
        ubm: MixtureParameters | DiagonalGMM,
        cohort: Cohort | None,
        *,
        top_c: int | None = 10,
        asnorm_top_k: int = 50,
    ) -> None:
        if method != "none" and (cohort is None or len(cohort) == 0):
            raise StoreError(
                f"score.normalization={method!r} needs a cohort, and this model has none; "
                "retrain with spkid train-ubm"
            )
        self.method = method
        self.ubm = ubm
        self.cohort = cohort
        self.top_c = top_c
        self.asnorm_top_k = asnorm_top_k
        self._cohort_scorer: Scorer | None = None
        self._cohort_cohort: np.ndarray | None = None

    @property
    def uses_model_side(self) -> bool:
        """Whether the method needs every model scored on the cohort segments (Z-norm side)."""
        return self.method in ("znorm", "ztnorm", "snorm", "asnorm")

    @property
    def uses_test_side(self) -> bool:
        """Whether the method needs every test scored against the cohort models (T-norm side)."""
        return self.method in ("tnorm", "ztnorm", "snorm", "asnorm")

    @property
    def summarised(self) -> bool:
        """Whether the model side is two numbers per model (:func:`~spkid.score.summarised.model_summary`),
        which enrollment stores: Z-, S- and adaptive S-norm."""
        return self.method in SUMMARISED

    @property
    def model_top_k(self) -> int | None:
        """How many of a model's highest cohort scores its summary covers (None: all of them)."""
        return self.asnorm_top_k if self.method == "asnorm" else None

    def apply_summarised(
        self,
        scores: np.ndarray,
        model_mean: np.ndarray,
        model_std: np.ndarray,
        test_statistics: np.ndarray | None,
    ) -> np.ndarray:
        """:meth:`apply` with the model side summarised (:attr:`summarised` methods): the same numbers."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.size == 0:
            return scores
        return normalize_summarised(
            self.method, scores, model_mean, model_std, test_statistics, top_k=self.asnorm_top_k
        )

    def _scorer(self) -> Scorer:
        if self._cohort_scorer is None:
            models = {f"cohort-{i}": model for i, model in enumerate(self.cohort.models)}
            self._cohort_scorer = Scorer(self.ubm, models, top_c=self.top_c)
        return self._cohort_scorer

    def model_statistics(self, scorer: Scorer) -> np.ndarray | None:
        """Scores of ``scorer``'s models on the cohort segments, (n_segments, n_models), or None if unused."""
        if not self.uses_model_side:
            return None
        return scorer.llr_many(self.cohort.segments)

    def test_statistics(self, features: Sequence[np.ndarray]) -> np.ndarray | None:
        """Scores of the tests against the cohort models, (n_tests, n_cohort_models), or None if unused."""
        if not self.uses_test_side or len(features) == 0:
            return None
        return self._scorer().llr_many(features)

    def apply(
        self, scores: np.ndarray, model_statistics: np.ndarray | None, test_statistics: np.ndarray | None
    ) -> np.ndarray:
        """Normalise raw LLRs of shape (n_tests, n_models) given the statistics of those tests and models."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "none" or scores.size == 0:
            return scores
        if self.method == "ztnorm" and self._cohort_cohort is None:
            self._cohort_cohort = self._scorer().llr_many(self.cohort.segments)
        return normalize(
            self.method,
            scores,
            model_cohort_scores=model_statistics,
            test_cohort_scores=test_statistics,
            cohort_cohort_scores=self._cohort_cohort,
            top_k=self.asnorm_top_k,
        )
