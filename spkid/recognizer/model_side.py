"""Each enrolled model's side of score normalisation: its scores on the cohort segments, summarised.

Z-norm, S-norm and adaptive S-norm (the default, ``score.normalization: asnorm``) use a model's scores on the
cohort segments only through two numbers (:func:`spkid.score.model_summary`); raw-score thresholds use the
same two numbers over all the segments. Enrollment computes them once (:func:`cohort_summaries`) and stores
them with the speaker and in the speaker bank, so scoring never scores the cohort segments against the
enrolled models again; :func:`model_summaries` takes the stored ones when they were computed with the
settings in use, and computes the others.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np

from spkid.gmm import MixtureParameters
from spkid.score import Cohort, Scorer, model_summary
from spkid.store import SpeakerCohortStats

__all__ = ["cohort_summaries", "model_summaries"]

#: Models scored on the cohort segments per call (bounds the score matrix and the stacked parameters).
_MODELS_PER_CALL = 256


def cohort_summaries(
    ubm: MixtureParameters,
    cohort: Cohort,
    models: Mapping[str, MixtureParameters],
    *,
    top_c: int | None,
    top_k: int | None,
) -> dict[str, SpeakerCohortStats]:
    """Each model's mean and floored standard deviation over its scores on the cohort segments: the
    ``top_k`` highest (adaptive S-norm's model side), or all of them when ``top_k`` is None.

    Parameters
    ----------
    ubm : MixtureParameters
    cohort : Cohort
        At least one segment.
    models : mapping of str to MixtureParameters
    top_c : int or None
        Scoring setting (as the scores they will normalise).
    top_k : int or None

    Returns
    -------
    dict of str to SpeakerCohortStats

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.score import select_cohort
    >>> from spkid.ubm import EnrollConfig, map_adapt
    >>> rng = np.random.default_rng(0)
    >>> ubm = MixtureParameters(np.full(2, 0.5), rng.normal(size=(2, 3)), np.ones((2, 3)))
    >>> cohort = select_cohort([rng.normal(size=(200, 3)) for _ in range(4)], ubm, size=4,
    ...                        enroll_config=EnrollConfig())
    >>> models = {"alice": map_adapt(ubm, rng.normal(1.0, 1.0, (200, 3)))}
    >>> every, best = (cohort_summaries(ubm, cohort, models, top_c=None, top_k=k)["alice"] for k in (None, 2))
    >>> best.top_k, every.top_k is None, best.mean >= every.mean  # the two highest of four scores
    (2, True, True)
    """
    names = list(models)
    summaries: dict[str, SpeakerCohortStats] = {}
    for start in range(0, len(names), _MODELS_PER_CALL):
        part = {name: models[name] for name in names[start : start + _MODELS_PER_CALL]}
        scores = Scorer(ubm, part, top_c=top_c).llr_many(cohort.segments)
        method = "znorm" if top_k is None else "asnorm"
        mean, std = model_summary(method, scores, top_k=top_k or 1)
        for name, m, s in zip(part, mean, std, strict=True):
            summaries[name] = SpeakerCohortStats(float(m), float(s), top_c, top_k)
    return summaries


def model_summaries(
    stored: MutableMapping[str, SpeakerCohortStats],
    ubm: MixtureParameters,
    cohort: Cohort,
    models: Mapping[str, MixtureParameters],
    *,
    top_c: int | None,
    top_k: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The models' summaries, in ``models``' order: ``stored[name]`` when it was computed with ``top_c`` and
    ``top_k``, else computed (:func:`cohort_summaries`) and kept in ``stored`` for the next call.

    ``models`` must be the enrolled models under their names (as ``Recognizer.speakers`` returns them):
    a stored summary is taken on the name.

    Returns
    -------
    mean, std : ndarray of shape (n_models,), float64
    """
    missing = {
        name: model
        for name, model in models.items()
        if name not in stored or (stored[name].top_c, stored[name].top_k) != (top_c, top_k)
    }
    if missing:
        stored.update(cohort_summaries(ubm, cohort, missing, top_c=top_c, top_k=top_k))
    mean = np.array([stored[name].mean for name in models], dtype=np.float64)
    std = np.array([stored[name].std for name in models], dtype=np.float64)
    return mean, std
