"""Each enrolled model's side of score normalisation: its scores on the cohort segments, summarised.

Z-norm, S-norm and adaptive S-norm (the default, ``score.normalization: asnorm``) use a model's scores on the
cohort segments only through two numbers (:func:`spkid.score.model_summary`); raw-score thresholds use the
same two numbers over all the segments. Enrollment computes them once (:func:`cohort_summaries`) and stores
them with the speaker and in the speaker bank, so scoring never scores the cohort segments against the
enrolled models again; :func:`model_summaries` takes the stored ones when they were computed with the
settings in use, and computes the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence

import numpy as np

from spkid.gmm import MixtureParameters
from spkid.score import Cohort, Scorer, model_summary
from spkid.store import SpeakerCohortStats

__all__ = ["cohort_score_parts", "cohort_summaries", "model_summaries"]

#: Models scored on the cohort segments per call (bounds the score matrix and the stacked parameters).
_MODELS_PER_CALL = 256


def cohort_score_parts(
    ubm: MixtureParameters, cohort: Cohort, models: Mapping[str, MixtureParameters], *, top_c: int | None
) -> Iterator[tuple[list[str], np.ndarray]]:
    """``models`` scored on the cohort segments, a bounded number at a time: ``(names, scores)`` with
    ``scores`` of shape (n_segments, len(names)), in ``models``' order.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.score import Cohort
    >>> ubm = MixtureParameters(np.full(2, 0.5), np.zeros((2, 3)), np.ones((2, 3)))
    >>> cohort = Cohort(segments=[np.zeros((5, 3), np.float32)] * 4, models=[ubm] * 4)
    >>> [(names, scores.shape) for names, scores in cohort_score_parts(ubm, cohort, {"a": ubm}, top_c=None)]
    [(['a'], (4, 1))]
    """
    names = list(models)
    for start in range(0, len(names), _MODELS_PER_CALL):
        part = names[start : start + _MODELS_PER_CALL]
        scorer = Scorer(ubm, {name: models[name] for name in part}, top_c=top_c)
        yield part, scorer.llr_many(cohort.segments)


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
    summaries: dict[str, SpeakerCohortStats] = {}
    for names, scores in cohort_score_parts(ubm, cohort, models, top_c=top_c):
        if top_k is None:
            mean, std = model_summary("znorm", scores)
        else:
            mean, std = model_summary("asnorm", scores, top_k=top_k)
        for name, m, s in zip(names, mean, std, strict=True):
            summaries[name] = SpeakerCohortStats(float(m), float(s), top_c, top_k)
    return summaries


def model_summaries(
    stored: MutableMapping[str, SpeakerCohortStats],
    ubm: MixtureParameters,
    cohort: Cohort,
    names: Sequence[str],
    load: Callable[[str], MixtureParameters],
    *,
    top_c: int | None,
    top_k: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The enrolled speakers' summaries, in ``names``' order: ``stored[name]`` when it was computed with
    ``top_c`` and ``top_k``, else computed from ``load(name)`` (:func:`cohort_summaries`; only those are
    loaded) and kept in ``stored`` for the next call.

    Returns
    -------
    mean, std : ndarray of shape (n_names,), float64
    """
    missing = [
        name
        for name in names
        if name not in stored or (stored[name].top_c, stored[name].top_k) != (top_c, top_k)
    ]
    if missing:
        models = {name: load(name) for name in missing}
        stored.update(cohort_summaries(ubm, cohort, models, top_c=top_c, top_k=top_k))
    mean = np.array([stored[name].mean for name in names], dtype=np.float64)
    std = np.array([stored[name].std for name in names], dtype=np.float64)
    return mean, std
