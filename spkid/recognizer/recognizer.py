"""A model directory loaded for recognition: features with the stored settings, normalised score matrices.

:class:`Recognizer` is what identification, verification and trial scoring share: it reads the stored
feature, enrollment and scoring configs (so every command extracts features exactly as ``train-ubm`` did),
loads the UBM, the cohort and the speakers, scores utterances against models, and applies the stored score
normalisation. Open-set and verification decisions use a calibrator when the model holds one, otherwise the
documented default thresholds below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from spkid.errors import ConfigError, ModelError, SpkidError, StoreError
from spkid.features import ExtractResult, FeatureConfig, GlobalStats, extract_many
from spkid.features.config import LEGACY_SETTINGS, stored_feature_settings
from spkid.gmm import MixtureParameters
from spkid.progress import Progress
from spkid.recognizer.model_side import cohort_score_parts, cohort_summaries, model_summaries
from spkid.score import Calibrator, Cohort, Normalizer, ScoreConfig, Scorer, bayes_threshold, normalisable
from spkid.store import ModelStore, SpeakerCohortStats
from spkid.ubm import EnrollConfig, enroll

__all__ = [
    "NORMALISED_THRESHOLD",
    "OPEN_SET_P_TARGET",
    "RAW_LLR_THRESHOLD",
    "Recognizer",
]

#: Default decision threshold on raw (unnormalised) frame-averaged LLRs when the model holds no cohort:
#: accept when the speaker model explains the frames better than the UBM does, on average. With a cohort
#: (the default), each speaker gets its own raw threshold instead: the mean plus
#: :data:`NORMALISED_THRESHOLD` standard deviations of its scores on the cohort's impostor segments, the
#: same decision as Z-norm at 3.0 (measured on telephone, short-test and 227-speaker conditions, a flat 0.0
#: accepted 11-49 % of impostors; the cohort threshold 3-15 % at the same miss rates).
RAW_LLR_THRESHOLD = 0.0
#: Default threshold on normalised scores (Z/T/ZT/S/AS-norm): impostor scores are then roughly standard
#: normal, so 3.0 accepts about one impostor trial in a thousand.
NORMALISED_THRESHOLD = 3.0
#: Target prior of open-set and verification decisions when the model holds a calibrator: the threshold on
#: calibrated LLRs is then the Bayes threshold ``-logit(0.01)`` = 4.6.
OPEN_SET_P_TARGET = 0.01

#: Utterances scored per call when a progress bar is shown.
_PROGRESS_BATCH = 32


class Recognizer:
    """A model directory opened for scoring.

    Parameters
    ----------
    store : ModelStore
    score_config : ScoreConfig, optional
        Scoring settings to use instead of the stored ones (recipes change scoring without retraining;
        the cohort is the stored one whatever ``cohort_size`` says).

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import Recognizer, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> recognizer = Recognizer.open(f"{tmp.name}/model")
    >>> models = {"spk01": recognizer.adapt(recognizer.extract(corpus["spk01"][:2]))}
    >>> tests = recognizer.extract([corpus["spk01"][2], corpus["spk02"][2]])
    >>> recognizer.score_matrix(models, tests).shape  # (n_tests, n_models)
    (2, 1)
    >>> tmp.cleanup()
    """

    def __init__(self, store: ModelStore, *, score_config: ScoreConfig | None = None) -> None:
        self.store = store
        try:
            # Settings added since a model was made are read as that model used them (LEGACY_SETTINGS).
            self.feature_config = FeatureConfig.from_dict(stored_feature_settings(store.feature_config))
            self.enroll_config = EnrollConfig.from_dict(store.enroll_config)
            self.score_config = score_config or ScoreConfig.from_dict(store.score_config)
        except ConfigError as exc:
            raise StoreError(
                f"{store.path}: stored settings not understood by this spkid ({exc}); "
                "retrain with spkid train-ubm"
            ) from None
        # Features must be extracted exactly as at training time: a stored config missing a setting this
        # version has (an older model) is refused rather than silently filled with today's default.
        store.check_feature_config(self.feature_config.to_dict(), missing_as=LEGACY_SETTINGS)
        self.feature_stats = self._feature_stats()
        if self.feature_config.n_features != store.ubm_shape[1]:  # an edited or mixed-up manifest
            raise StoreError(
                f"{store.path}: the stored feature settings give {self.feature_config.n_features} features "
                f"but the UBM has {store.ubm_shape[1]}; retrain with spkid train-ubm"
            )
        self.ubm = store.load_ubm()
        self._cohort_arrays = store.load_cohort() if store.has_cohort() else {}
        self._cohort: Cohort | None = None
        # as train-ubm stored it; a recipe's settings may ask to normalise with a cohort too small for it
        n_cohort = len(self._cohort_arrays.get("segment_lengths", ()))
        self.score_config = normalisable(self.score_config, n_cohort)
        settings = self.score_config
        cohort = self.cohort if settings.normalization != "none" else None
        self.normalizer = Normalizer(
            settings.normalization, self.ubm, cohort, top_c=settings.top_c, asnorm_top_k=settings.asnorm_top_k
        )
        self.calibrator: Calibrator | None = None
        calibration = store.load_calibration()
        if calibration is not None:
            try:
                self.calibrator = Calibrator.from_dict(calibration)
            except ModelError as exc:
                raise StoreError(f"{store.path}: invalid stored calibration ({exc})") from None

    def _feature_stats(self) -> GlobalStats | None:
        arrays = self.store.load_feature_stats()
        if arrays is None:
            if self.feature_config.needs_global_stats:
                raise StoreError(
                    f"{self.store.path}: features.cmvn={self.feature_config.cmvn!r} needs the pool's feature "
                    "statistics, and the model has none; retrain with spkid train-ubm"
                )
            return None
        try:
            return GlobalStats.from_arrays(arrays)
        except SpkidError as exc:
            raise StoreError(f"{self.store.path / 'frontend.npz'}: {exc}") from None

    @property
    def cohort(self) -> Cohort | None:
        """The stored score-normalisation cohort (built on first use), or None when the model has none."""
        if self._cohort is None and "segment_features" in self._cohort_arrays:
            source = str(self.store.path / "cohort.npz")
            self._cohort = Cohort.from_arrays(self._cohort_arrays, self.ubm, source=source)
        return self._cohort

    @classmethod
    def open(cls, model_dir: str | os.PathLike[str]) -> Recognizer:
        """Open ``model_dir`` (raises :class:`StoreError` when it holds no usable model)."""
        return cls(ModelStore.open(model_dir))

    def extract(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        n_jobs: int = 1,
        skip_bad: bool = False,
        progress: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> ExtractResult:
        """Features of ``paths`` with the stored feature settings (as :func:`spkid.features.extract_many`)."""
        return extract_many(
            paths,
            self.feature_config,
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            progress=progress,
            skip_bad=skip_bad,
            stats=self.feature_stats,
        )

    def adapt(self, features: Sequence[np.ndarray]) -> MixtureParameters:
        """A speaker model MAP-adapted from the UBM to ``features`` with the stored enrollment settings."""
        return enroll(self.ubm, list(features), self.enroll_config)

    def speakers(self, names: Sequence[str] | None = None) -> dict[str, MixtureParameters]:
        """Enrolled speaker models (all, or the named ones), ``{name: model}``.

        Raises
        ------
        StoreError
            No speakers are enrolled, or a named speaker is not.
        """
        enrolled = self.store.speakers()
        if not enrolled:
            raise StoreError(f"{self.store.path}: no speakers enrolled; run spkid enroll first")
        if names is None:
            names = enrolled
        for name in names:
            if name not in enrolled:
                shown = ", ".join(enrolled[:10]) + (", ..." if len(enrolled) > 10 else "")
                raise StoreError(f"speaker {name!r} is not enrolled in {self.store.path} (enrolled: {shown})")
        return {name: self.store.load_speaker(name) for name in names}

    def _llr_many(self, scorer: Scorer, features: Sequence[np.ndarray], progress: bool) -> np.ndarray:
        if not progress or len(features) <= _PROGRESS_BATCH:
            return scorer.llr_many(features)
        rows = []
        with Progress(len(features), enabled=True, description="scoring") as bar:
            for start in range(0, len(features), _PROGRESS_BATCH):
                batch = features[start : start + _PROGRESS_BATCH]
                rows.append(scorer.llr_many(batch))
                bar.advance(len(batch))
        return np.concatenate(rows)

    def score_matrix(
        self,
        models: Mapping[str, MixtureParameters],
        features: Sequence[np.ndarray],
        *,
        progress: bool = False,
    ) -> np.ndarray:
        """Normalised scores of every test against every model.

        Parameters
        ----------
        models : mapping of str to MixtureParameters, n_models entries
        features : sequence of ndarray of shape (n_frames_i, n_features), n_tests entries
        progress : bool

        Returns
        -------
        ndarray of shape (n_tests, n_models), float64
        """
        if len(features) == 0:
            return np.zeros((0, len(models)))
        scorer = Scorer(self.ubm, models, top_c=self.score_config.top_c)
        raw = self._llr_many(scorer, features, progress)
        if self.normalizer.summarised:
            mean, std = self.model_summaries(list(models), models.__getitem__)
            return self.normalizer.apply_summarised(raw, mean, std, self.normalizer.test_statistics(features))
        return self.normalizer.apply(
            raw, self.normalizer.model_statistics(scorer), self.normalizer.test_statistics(features)
        )

    def model_summaries(
        self,
        names: Sequence[str],
        load: Callable[[str], MixtureParameters] | None = None,
        *,
        over_all: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Enrolled speakers' side of the normalisation (Z-, S- or adaptive S-norm): each one's mean and std
        on the cohort segments, as stored at enrollment, else computed once from ``load(name)`` (default:
        its speaker file; :mod:`spkid.recognizer.model_side`). ``over_all``: over every segment, whatever
        the method (the raw-score thresholds)."""
        load = self.store.load_speaker if load is None else load
        top_c = self.score_config.top_c
        top_k = None if over_all else self.normalizer.model_top_k
        stored = self.store.cohort_stats
        return model_summaries(stored, self.ubm, self.cohort, names, load, top_c=top_c, top_k=top_k)

    def score_pairs(
        self,
        models: Mapping[str, MixtureParameters],
        features: Sequence[np.ndarray],
        pairs: Sequence[tuple[int, int]],
        *,
        progress: bool = False,
    ) -> np.ndarray:
        """Normalised scores of selected (model, test) pairs, e.g. a trial list.

        Dense lists are scored as one matrix; sparse ones (VoxCeleb: each test against a few of thousands
        of models) test by test, against only the models paired with it.

        Parameters
        ----------
        models : mapping of str to MixtureParameters, n_models entries
        features : sequence of ndarray, n_tests entries
        pairs : sequence of (model_index, test_index)

        Returns
        -------
        ndarray of shape (n_pairs,), float64
        """
        pairs_array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs_array) == 0:
            return np.zeros(0)
        n_models, n_tests = len(models), len(features)
        if 4 * len(pairs_array) >= n_models * n_tests:
            matrix = self.score_matrix(models, features, progress=progress)
            return matrix[pairs_array[:, 1], pairs_array[:, 0]]
        model_list = list(models.values())
        summarised = self.normalizer.summarised
        summaries = self.model_summaries(list(models), models.__getitem__) if summarised else None
        model_stats = None
        if self.normalizer.uses_model_side and summaries is None:  # ZT-norm: the cohort scores themselves
            numbered = {str(i): model for i, model in enumerate(model_list)}
            parts = cohort_score_parts(self.ubm, self.cohort, numbered, top_c=self.score_config.top_c)
            model_stats = np.concatenate([scores for _, scores in parts], axis=1)
        test_stats = self.normalizer.test_statistics(features)
        scores = np.empty(len(pairs_array))
        order = np.argsort(pairs_array[:, 1], kind="stable")
        boundaries = np.flatnonzero(np.diff(pairs_array[order, 1])) + 1
        with Progress(n_tests, enabled=progress, description="scoring") as bar:
            for group in np.split(order, boundaries):
                test = int(pairs_array[group[0], 1])
                columns = pairs_array[group, 0]
                unique_columns, inverse = np.unique(columns, return_inverse=True)
                scorer = Scorer(
                    self.ubm, {str(c): model_list[c] for c in unique_columns}, top_c=self.score_config.top_c
                )
                raw = scorer.llr_many([features[test]])
                test_side = None if test_stats is None else test_stats[test : test + 1]
                if summaries is not None:
                    mean, std = (values[unique_columns] for values in summaries)
                    normalised = self.normalizer.apply_summarised(raw, mean, std, test_side)
                else:
                    model_side = None if model_stats is None else model_stats[:, unique_columns]
                    normalised = self.normalizer.apply(raw, model_side, test_side)
                scores[group] = normalised[0, inverse]
                bar.advance()
        return scores

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Scores mapped through the stored calibrator (unchanged when there is none)."""
        scores = np.asarray(scores, dtype=np.float64)
        return scores if self.calibrator is None else self.calibrator.transform(scores)

    def default_thresholds(self, models: Mapping[str, MixtureParameters]) -> np.ndarray:
        """Decision thresholds on :meth:`calibrated` scores when the user gives none (see module constants).

        Parameters
        ----------
        models : mapping of str to MixtureParameters, n_models entries

        Returns
        -------
        ndarray of shape (n_models,), float64
            The Bayes threshold with a calibrator; :data:`NORMALISED_THRESHOLD` on normalised scores;
            per-speaker cohort thresholds on raw scores when the model holds a cohort, else
            :data:`RAW_LLR_THRESHOLD`.
        """
        if self.calibrator is not None:
            return np.full(len(models), bayes_threshold(OPEN_SET_P_TARGET))
        if self.score_config.normalization != "none":
            return np.full(len(models), NORMALISED_THRESHOLD)
        if self.cohort is None or len(self.cohort.segments) < 2 or not models:
            return np.full(len(models), RAW_LLR_THRESHOLD)
        # computed once per process where the stored summary is of other settings
        mean, std = self.model_summaries(list(models), models.__getitem__, over_all=True)
        return mean + NORMALISED_THRESHOLD * std

    def cohort_statistics(self, model: MixtureParameters) -> SpeakerCohortStats | None:
        """A speaker model's summary on the cohort segments, stored at enrollment (:mod:`.model_side`: its
        ``score.asnorm_top_k`` highest scores with adaptive S-norm, all of them otherwise); None without a
        cohort of two segments or more (its thresholds then never need it)."""
        if self.cohort is None or len(self.cohort.segments) < 2:
            return None
        top_c, top_k = self.score_config.top_c, self.normalizer.model_top_k
        return cohort_summaries(self.ubm, self.cohort, {"": model}, top_c=top_c, top_k=top_k)[""]
