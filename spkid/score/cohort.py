"""The score-normalisation cohort: impostor segments and impostor models drawn from the UBM pool.

At ``train-ubm`` time ``score.cohort_size`` utterances of the UBM pool are picked (seeded by
``ubm.random_state``). The last frames of each (at most :data:`SEGMENT_FRAMES`) become an impostor *test
segment* — every enrolled model scored on them gives the model's Z-norm statistics — and the MAP adaptation
of the UBM to the remaining frames becomes an impostor *model* — every test scored against them gives the
test's T-norm statistics. Splitting each utterance keeps a cohort model from ever scoring its own frames.
The segments are also held out of UBM training (:func:`hold_out_cohort_segments`): a UBM fitted to them
scores them higher than unseen speech, which biases every model's impostor statistics low.
:class:`spkid.score.normalizer.Normalizer` normalises raw LLR matrices with the cohort.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spkid.errors import StoreError
from spkid.features import StoredFeatures
from spkid.gmm import MixtureParameters
from spkid.score.config import ScoreConfig
from spkid.ubm import EnrollConfig, UBMConfig, effective_components, map_adapt

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = [
    "SEGMENT_FRAMES",
    "Cohort",
    "cohort_segment_rows",
    "hold_out_cohort_segments",
    "normalisable",
    "select_cohort",
]

logger = logging.getLogger(__name__)

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

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> ubm = MixtureParameters(np.full(2, 0.5), np.zeros((2, 3)), np.ones((2, 3)))
    >>> cohort = Cohort(segments=[np.zeros((5, 3), np.float32)], models=[ubm])
    >>> arrays = cohort.to_arrays(ubm)  # what the model store keeps
    >>> sorted(arrays), arrays["segment_lengths"].tolist()
    (['model_means', 'segment_features', 'segment_lengths'], [5])
    >>> len(Cohort.from_arrays(arrays, ubm))
    1
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

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> from spkid.ubm import EnrollConfig
    >>> rng = np.random.default_rng(0)
    >>> ubm = MixtureParameters(np.full(2, 0.5), rng.normal(size=(2, 3)), np.ones((2, 3)))
    >>> pool = [rng.normal(size=(n_frames, 3)) for n_frames in (800, 400, 60)]
    >>> cohort = select_cohort(pool, ubm, size=3, enroll_config=EnrollConfig())
    >>> [len(segment) for segment in cohort.segments], cohort.models[0].means_.shape
    ([300, 200, 60], (2, 3))
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

    Examples
    --------
    >>> cohort_segment_rows([800, 400, 60], size=3)  # 60 frames: too short to split, used whole
    {0: 300, 1: 200, 2: 60}
    >>> len(cohort_segment_rows([800] * 10, size=4))
    4
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

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.ubm import UBMConfig
    >>> pool = [np.zeros((n_frames, 3), np.float32) for n_frames in (800, 400, 60)]
    >>> kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=UBMConfig(n_components=4), cohort_size=3)
    >>> [len(frames) for frames in kept], n_held_out  # the 60-frame utterance went whole to the cohort
    ([500, 200], 560)
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


def normalisable(config: ScoreConfig, cohort_size: int) -> ScoreConfig:
    """``config``, or a copy scoring raw LLRs (``normalization: none``) when the cohort the pool gave is
    smaller than ``config.min_cohort_size`` (default 10; a warning says so):
    what ``train-ubm`` stores.

    Examples
    --------
    >>> normalisable(ScoreConfig(normalization="asnorm"), 100).normalization
    'asnorm'
    >>> normalisable(ScoreConfig(normalization="asnorm"), 4).normalization  # a pool of 4 utterances
    'none'
    >>> normalisable(ScoreConfig(normalization="asnorm", min_cohort_size=4), 4).normalization  # asked for
    'asnorm'
    """
    if config.normalization == "none" or cohort_size >= config.min_cohort_size:
        return config
    logger.warning(
        "the UBM pool gave a cohort of %d utterances (fewer than %d): scores are not normalised "
        "(score.normalization: none instead of %s); a larger pool gives a cohort of score.cohort_size "
        "(score.min_cohort_size sets the fewest)",
        cohort_size,
        config.min_cohort_size,
        config.normalization,
    )
    return dataclasses.replace(config, normalization="none")
