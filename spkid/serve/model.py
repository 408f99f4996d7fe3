"""The model as ``spkid serve`` holds it: one state of the model directory, scored as the CLI scores it.

With the speaker bank (top-C scoring, no per-speaker normalisation: :func:`spkid.recognizer.bank_search.
bank_usable`) a :class:`LoadedModel` holds the memory-mapped bank and searches it with the recognizer's own
:mod:`~spkid.recognizer.bank_search` functions, exactly as ``spkid identify`` / ``verify`` do, so loading
reads a few files whatever the number of speakers; other settings (exact scoring, Z-/ZT-/S-/AS-norm) keep
the speaker models and their scorer resident, as before the bank. :func:`directory_stamp` tells when the
directory changed: the bank's ``index.json`` is replaced by every enroll and remove once their speaker
files are written, so a reload never sees a half-written change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.recognizer import Recognizer
from spkid.recognizer.bands import companion_of, in_band
from spkid.recognizer.bank_search import bank_or_none, identify_in_bank, verify_in_bank
from spkid.recognizer.results import Ranking, rank_rows
from spkid.recognizer.routing import calibrations_agree, companion_covers
from spkid.score import Scorer
from spkid.store.bank import BankView
from spkid.store.layout import (
    BANK_DIR,
    CALIBRATION_FILE,
    COHORT_FILE,
    MANIFEST_FILE,
    SPEAKERS_DIR,
    file_stamps,
)

__all__ = ["LoadedModel", "Ranking", "directory_stamp"]

BANK_INDEX = f"{BANK_DIR}/index.json"
#: What enroll, remove and calibrate change, relative to the model directory.
WATCHED = (MANIFEST_FILE, BANK_INDEX, SPEAKERS_DIR, COHORT_FILE, CALIBRATION_FILE)


def directory_stamp(model_dir: Path) -> tuple:
    """``(mtime_ns, size, inode)`` of each of :data:`WATCHED` (None when absent): a few stat calls.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     directory_stamp(Path(folder))
    (None, None, None, None, None)
    """
    return file_stamps(*(model_dir / name for name in WATCHED))


@dataclass
class LoadedModel:
    """A model directory loaded at one state (:attr:`stamp`), ready to score recordings.

    Attributes
    ----------
    stamp : tuple
        :func:`directory_stamp` taken before loading (a change during the load is seen next time).
    recognizer : Recognizer
    names : list of str
        The enrolled speakers.
    bank : BankView or None
        The mapped speaker bank, when scoring reads it.
    scorer, model_stats, thresholds
        Without the bank: the resident scorer of every speaker, its normalisation statistics and each
        speaker's default threshold.
    companion : LoadedModel or None
        The companion, wideband or narrowband (``features.bands: auto``), loaded with the model;
        :meth:`routes` says which recordings it scores.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=4, duration_s=3.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(f"{tmp.name}/model", {name: files[:3] for name, files in corpus.items()})
    >>> model = LoadedModel.load(Path(tmp.name, "model"))
    >>> model.names, model.bank is not None  # top-C scoring (10 of 16 components) reads the bank
    (['spk01', 'spk02'], True)
    >>> features = model.recognizer.extract([corpus["spk02"][3]])
    >>> [best for best, ranked, accepted, cutoff in model.identify(features, top_k=1)]
    ['spk02']
    >>> model.current(directory_stamp(Path(tmp.name, "model")))
    True
    >>> tmp.cleanup()
    """

    stamp: tuple
    recognizer: Recognizer
    names: list[str]
    bank: BankView | None = None
    scorer: Scorer | None = None
    model_stats: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    companion: LoadedModel | None = None
    summaries: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, model_dir: Path) -> LoadedModel:
        """Open ``model_dir``: its bank (built or repaired first when needed), else its speaker files."""
        stamp = directory_stamp(model_dir)
        recognizer = Recognizer.open(model_dir)
        companion_dir = companion_of(model_dir)
        # two calibrations that differ (an interrupted calibrate) are two scales: the main model scores all
        companion = None
        if companion_dir is not None and calibrations_agree(recognizer.store, companion_dir):
            companion = cls.load(companion_dir)
        # None: other scoring settings, or a read-only model whose bank needs repair (the speaker files)
        view = bank_or_none(recognizer, require_speakers=False)
        if view is not None:
            return cls(stamp, recognizer, list(view.names), bank=view, companion=companion)
        names = recognizer.store.speakers()
        if not names:
            return cls(stamp, recognizer, names, companion=companion)
        models = recognizer.speakers(names)
        scorer = Scorer(recognizer.ubm, models, top_c=recognizer.score_config.top_c)
        thresholds = recognizer.default_thresholds(models)
        if recognizer.normalizer.summarised:  # the speakers' side as stored at enrollment
            summaries = recognizer.model_summaries(names, models.__getitem__)
            return cls(stamp, recognizer, names, None, scorer, None, thresholds, companion, summaries)
        model_stats = recognizer.normalizer.model_statistics(scorer)
        return cls(stamp, recognizer, names, None, scorer, model_stats, thresholds, companion)

    def routes(
        self, files: Sequence[Path], *, speaker: str | None = None
    ) -> list[tuple[LoadedModel, list[int]]]:
        """Which loaded model scores which of ``files`` (by index), as
        :func:`spkid.recognizer.routing.route_recordings` decides for the CLI."""
        everything = [(self, list(range(len(files))))]
        companion = self.companion
        if companion is None or not companion_covers(set(companion.names), lambda: self.names, speaker):
            return everything
        inside = [in_band(path, companion.recognizer.store.path) for path in files]
        parts = (
            (companion, [i for i, flag in enumerate(inside) if flag]),
            (self, [i for i, flag in enumerate(inside) if not flag]),
        )
        return [(model, indices) for model, indices in parts if indices]

    def current(self, stamp: tuple) -> bool:
        """Whether a :func:`directory_stamp` taken now shows the state this model was loaded from.

        With the bank, the speakers folder is not watched: its changes reach the bank index when their
        writer finishes, and reloading in between would find the bank behind the speaker files.
        """
        ignored = SPEAKERS_DIR if self.bank is not None else BANK_INDEX
        pairs = zip(WATCHED, self.stamp, stamp, strict=True)
        return all(old == new for name, old, new in pairs if name != ignored)

    def _scores(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Final scores against every speaker (the resident scorer: no bank)."""
        normalizer = self.recognizer.normalizer
        raw = self.scorer.llr_many(list(features))
        test_stats = normalizer.test_statistics(list(features))
        if self.summaries is not None:
            return self.recognizer.calibrated(normalizer.apply_summarised(raw, *self.summaries, test_stats))
        return self.recognizer.calibrated(normalizer.apply(raw, self.model_stats, test_stats))

    def identify(
        self,
        features: Sequence[np.ndarray],
        *,
        top_k: int,
        open_set: bool = False,
        threshold: float | None = None,
    ) -> list[Ranking]:
        """Rank the speakers for each recording's features, as :func:`spkid.recognizer.identify` does."""
        if self.bank is not None:
            return identify_in_bank(self.recognizer, self.bank, features, top_k, open_set, threshold)
        cutoffs = self.thresholds if threshold is None else np.full(len(self.names), float(threshold))
        return rank_rows(self.names, self._scores(features), cutoffs, top_k=top_k, open_set=open_set)

    def verify(self, speaker: str, features: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        """Scores of each recording's features against enrolled ``speaker``, and its default threshold."""
        if self.bank is not None:
            return verify_in_bank(self.recognizer, self.bank, speaker, features)
        # One speaker's scorer, as spkid verify builds it (a wider one may round the last bit differently).
        models = self.recognizer.speakers([speaker])
        scores = self.recognizer.calibrated(self.recognizer.score_matrix(models, features))[:, 0]
        return scores, float(self.recognizer.default_thresholds(models)[0])
