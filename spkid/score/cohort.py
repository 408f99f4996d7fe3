"""The score-normalisation cohort: impostor segments and impostor models drawn from the UBM pool.

At ``train-ubm`` time ``score.cohort_size`` utterances of the UBM pool are picked (seeded by
``ubm.random_state``). The last frames of each (at most :data:`SEGMENT_FRAMES`) become an impostor *test
segment* — every enrolled model scored on them gives the model's Z-norm statistics — and the MAP adaptation
of the UBM to the remaining frames becomes an impostor *model* — every test scored against them gives the
test's T-norm statistics. Splitting each utterance keeps a cohort model from ever scoring its own frames.
The segments are also held out of UBM training (:func:`hold_out_cohort_segments`): a UBM fitted to them
scores them higher than unseen speech, which biases every model's impostor statistics low.
:class:`Normalizer` turns raw LLR matrices into normalised ones with :func:`spkid.score.normalize.normalize`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spkid.errors import StoreError
from spkid.features import StoredFeatures
from spkid.gmm import MixtureParameters
from spkid.score.normalize import normalize
from spkid.score.scorer import Scorer
from spkid.ubm import EnrollConfig, UBMConfig, effective_components, map_adapt

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = [
    "SEGMENT_FRAMES",
    "Cohort",
    "Normalizer",
    "cohort_segment_rows",
    "hold_out_cohort_segments",
    "select_cohort",
]

#: Frames of each cohort utterance kept as its impostor test segment (3 s at 100 frames/s).
SEGMENT_FRAMES = 300
#: Cohort utterances shorter than this many frames are used whole, for both the segment and the model.
MIN_SPLIT_FRAMES = 100


@dataclass(frozen=True)
class Cohort:
    """Impostor test segments (for Z-norm) and impostor models (for T-norm), one of each per utterance.

    Attributes
    ----------
    segments : list of ndarray of shape (n_frames_i, n_features), float32
    models : list of MixtureParameters
        MAP-adapted from the same UBM as the enrolled speakers.
    """

    segments: list[np.ndarray]
    models: list[MixtureParameters]

    def __len__(self) -> int:
        return len(self.segments)

    def to_arrays(self, ubm: MixtureParameters | DiagonalGMM) -> dict[str, np.ndarray]:
        """Named arrays for :meth:`spkid.store.ModelStore.save_cohort` (float32; UBM-equal ones omitted)."""
        arrays = {
            "segment_features": np.concatenate(self.segments).astype(np.float32),
            "segment_lengths": np.array([len(segment) for segment in self.segments], dtype=np.int64),
            "model_means": np.stack([model.means_ for model in self.models]).astype(np.float32),
        }
        if any(not np.array_equal(model.weights_, ubm.weights_) for model in self.models):
            arrays["model_weights"] = np.stack([model.weights_ for model in self.models])
        if any(not np.array_equal(model.variances_, ubm.variances_) for model in self.models):
            arrays["model_variances"] = np.stack([model.variances_ for model in self.models]).astype(
                np.float32
            )
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], ubm: MixtureParameters, *, source: str = "cohort"
    ) -> Cohort:
        """Inverse of :meth:`to_arrays`; :class:`StoreError` naming ``source`` on inconsistent arrays."""
        try:
            features = np.asarray(arrays["segment_features"], dtype=np.float32)
            lengths = np.asarray(arrays["segment_lengths"], dtype=np.int64)
            means = np.asarray(arrays["model_means"], dtype=np.float64)
        except KeyError as exc:
            raise StoreError(
                f"{source}: cohort lacks array {exc.args[0]!r}; retrain with spkid train-ubm"
            ) from None
        n_models = means.shape[0] if means.ndim == 3 else -1
        n_components, n_features = np.shape(ubm.means_)
        if (
            features.ndim != 2
            or features.shape[1] != n_features
            or lengths.ndim != 1
            or np.any(lengths < 1)
            or lengths.sum() != features.shape[0]
            or means.shape[1:] != (n_components, n_features)
            or n_models != lengths.size
        ):
            raise StoreError(
                f"{source}: cohort arrays have inconsistent shapes; retrain with spkid train-ubm"
            )
        weights = np.asarray(
            arrays.get("model_weights", np.broadcast_to(ubm.weights_, (n_models, n_components)))
        )
        variances = np.asarray(arrays.get("model_variances", np.broadcast_to(ubm.variances_, means.shape)))
        if weights.shape != (n_models, n_components) or variances.shape != means.shape:
            raise StoreError(f"{source}: cohort model weights/variances have inconsistent shapes")
        segments = np.split(features, np.cumsum(lengths)[:-1])
        models = [
            MixtureParameters(
                np.asarray(weights[i], np.float64), means[i], np.asarray(variances[i], np.float64)
            )
            for i in range(n_models)
        ]
        return cls(segments=list(segments), models=models)


def select_cohort(
    features: Sequence[np.ndarray],
    ubm: MixtureParameters | DiagonalGMM,
    *,
    size: int,
    enroll_config: EnrollConfig,
    random_state: int = 0,
    segment_frames: int = SEGMENT_FRAMES,
) -> Cohort:
    """Pick ``size`` utterances of the UBM pool (seeded) and turn each into an impostor segment and model.

    Parameters
    ----------
    features : sequence of ndarray of shape (n_frames_i, n_features)
        The UBM training utterances.
    ubm : MixtureParameters or DiagonalGMM
    size : int
        Cohort utterances wanted (all of them when the pool is smaller).
    enroll_config : EnrollConfig
        MAP settings, the same as for enrolled speakers.
    random_state : int
    segment_frames : int
        Frames kept as each utterance's impostor test segment.

    Returns
    -------
    Cohort
    """
    segment_rows = cohort_segment_rows(
        _lengths(features), size=size, random_state=random_state, segment_frames=segment_frames
    )
    segments, models = [], []
    for index, n_segment in segment_rows.items():
        frames = np.asarray(features[index], dtype=np.float32)
        segment = frames[len(frames) - n_segment :]
        adaptation = frames[: len(frames) - n_segment] if n_segment < len(frames) else frames
        segments.append(np.ascontiguousarray(segment))
        models.append(
            map_adapt(
                ubm, adaptation, relevance_factor=enroll_config.relevance_factor, adapt=enroll_config.adapt
            )
        )
    return Cohort(segments=segments, models=models)


def cohort_segment_rows(
    lengths: Sequence[int], *, size: int, random_state: int = 0, segment_frames: int = SEGMENT_FRAMES
) -> dict[int, int]:
    """The pool utterances that join the cohort, and the final frames of each that form its test segment.

    Parameters
    ----------
    lengths : sequence of int
        Frames of each pool utterance.
    size, random_state, segment_frames
        As for :func:`select_cohort`, which uses this choice.

    Returns
    -------
    dict of int to int
        Utterance index (ascending) to segment frames: ``min(segment_frames, n // 2)``, or the whole
        utterance when it is shorter than :data:`MIN_SPLIT_FRAMES` (it then also adapts the cohort model).
    """
    rng = np.random.default_rng(random_state)
    chosen = np.sort(rng.choice(len(lengths), size=min(int(size), len(lengths)), replace=False))
    return {
        int(index): min(segment_frames, lengths[index] // 2)
        if lengths[index] >= MIN_SPLIT_FRAMES
        else int(lengths[index])
        for index in chosen
    }


def hold_out_cohort_segments(
    features: Sequence[np.ndarray], *, ubm_config: UBMConfig, cohort_size: int
) -> tuple[Sequence[np.ndarray], int]:
    """The UBM training pool without the test segments :func:`select_cohort` will take from it.

    Held out only when the pool is large enough that the UBM keeps its size (see
    :func:`spkid.ubm.effective_components`); a small pool keeps every frame for the UBM instead.

    Parameters
    ----------
    features : sequence of ndarray of shape (n_frames_i, n_features), or StoredFeatures
        The whole pool, later passed to :func:`select_cohort` with the same ``cohort_size`` and
        ``ubm_config.random_state``.
    ubm_config : UBMConfig
    cohort_size : int

    Returns
    -------
    pool : list of ndarray (views), or StoredFeatures
        Cohort utterances cut before their segments (dropped when used whole); the others unchanged.
    n_held_out : int
        Frames held out (0 when the pool is kept whole).
    """
    lengths = _lengths(features)
    segment_rows = cohort_segment_rows(lengths, size=cohort_size, random_state=ubm_config.random_state)
    n_held_out = sum(segment_rows.values())
    n_frames = sum(lengths)
    if effective_components(ubm_config, n_frames - n_held_out) != effective_components(ubm_config, n_frames):
        return features, 0
    kept = [(index, lengths[index] - segment_rows.get(index, 0)) for index in range(len(lengths))]
    kept = [(index, n_rows) for index, n_rows in kept if n_rows > 0]
    if isinstance(features, StoredFeatures):
        files = [dataclasses.replace(features.files[index], n_frames=n_rows) for index, n_rows in kept]
        ids = [features.utterance_ids[index] for index, _ in kept]
        paths = [features.paths[index] for index, _ in kept]
        return StoredFeatures(files, ids, paths, list(features.skipped)), n_held_out
    return [features[index][:n_rows] for index, n_rows in kept], n_held_out


def _lengths(features: Sequence[np.ndarray]) -> list[int]:
    """Frames per utterance, without reading stored features."""
    if isinstance(features, StoredFeatures):
        return [item.n_frames for item in features.files]
    return [len(frames) for frames in features]


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
