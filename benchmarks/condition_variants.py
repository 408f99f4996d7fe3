"""In-process alternatives to spkid's defaults, scored on one condition's data for ``bench_conditions.py``.

Each variant changes one default and keeps everything else as the CLI built it: score-side variants
(normalisation, top-C) reuse the CLI's model directory through :class:`spkid.recognizer.Recognizer`;
enrollment and UBM variants re-enroll / retrain in-process from features extracted with the stored settings.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from spkid.features import FeatureConfig, extract_many
from spkid.metrics import eer
from spkid.recognizer import RAW_LLR_THRESHOLD, Recognizer
from spkid.score import ScoreConfig, Scorer
from spkid.store import ModelStore
from spkid.ubm import EnrollConfig, UBMConfig, enroll, train_ubm

#: False-alarm rate on the cohort's impostor segments that places the label-free raw-LLR threshold.
COHORT_FALSE_ALARM = 0.01
#: Above this many test x model scores, exact (all-component) scoring runs on a speaker subset only.
EXACT_MAX_SPEAKERS = 40


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One variant on one condition: top-1 accuracy, EER of all test x model pairs, time, and the miss and
    false-alarm rates of those pairs at the default decision threshold of ``spkid verify`` for the variant."""

    variant: str
    top1: float
    eer: float
    n_tests: int
    n_models: int
    seconds: float
    threshold: float  # median over the models of their decision thresholds
    miss: float
    false_alarm: float


def accuracy_and_eer(scores: np.ndarray, names: Sequence[str], truths: Sequence[str]) -> tuple[float, float]:
    """Top-1 accuracy and pooled EER of a (n_tests, n_models) score matrix."""
    names_array = np.asarray(names)
    best = names_array[np.argmax(scores, axis=1)]
    top1 = float(np.mean(best == np.asarray(truths)))
    target = names_array[None, :] == np.asarray(truths)[:, None]
    return top1, float(eer(scores[target], scores[~target]))


def error_rates(
    scores: np.ndarray, names: Sequence[str], truths: Sequence[str], thresholds: float | np.ndarray
) -> tuple[float, float]:
    """(miss, false alarm) of every test x model pair when accepting scores >= the model's threshold
    (``thresholds``: one for all models, or shape (n_models,) in ``names`` order)."""
    target = np.asarray(names)[None, :] == np.asarray(truths)[:, None]
    accepted = scores >= np.broadcast_to(np.asarray(thresholds, dtype=float), (len(names),))[None, :]
    return float(np.mean(~accepted[target])), float(np.mean(accepted[~target]))


class ConditionData:
    """Features of one condition (pool, enrollment per speaker, tests) under one feature config."""

    def __init__(
        self,
        pool: Sequence[Path],
        speakers: Mapping[str, Sequence[Path]],
        tests: Mapping[Path, str],
        config: FeatureConfig,
        *,
        need_pool: bool,
    ) -> None:
        self.config = config
        self.pool = extract_many(list(pool), config) if need_pool else []
        enroll_files = [path for paths in speakers.values() for path in paths]
        features = dict(zip(enroll_files, extract_many(enroll_files, config), strict=True))
        self.enroll = {name: [features[path] for path in paths] for name, paths in speakers.items()}
        extracted = extract_many(list(tests), config)
        self.tests = list(extracted)
        self.truths = [tests[path] for path in extracted.paths]


def _timed(
    variant: str,
    run: Callable[[], tuple[np.ndarray, list[str], list[str]]],
    thresholds: float | np.ndarray = RAW_LLR_THRESHOLD,
) -> Outcome:
    started = time.perf_counter()
    scores, names, truths = run()
    seconds = time.perf_counter() - started
    top1, error = accuracy_and_eer(scores, names, truths)
    miss, false_alarm = error_rates(scores, names, truths, thresholds)
    return Outcome(
        variant,
        top1,
        error,
        len(truths),
        len(names),
        seconds,
        float(np.median(thresholds)),
        miss,
        false_alarm,
    )


def score_side(model_dir: Path, data: ConditionData) -> list[Outcome]:
    """The CLI's model scored in-process: as stored, with Z-/S-norm, top-5, exact scoring, r = 16."""
    store = ModelStore.open(model_dir)
    stored = Recognizer(store)
    models = stored.speakers()
    names = list(models)

    def with_score(label: str, **changes: object) -> Outcome:
        recognizer = Recognizer(store, score_config=dataclasses.replace(stored.score_config, **changes))
        run = lambda: (recognizer.score_matrix(models, data.tests), names, data.truths)  # noqa: E731
        return _timed(label, run, recognizer.default_thresholds(models))

    outcomes = [with_score("default (in-process)")]
    outcomes += [with_score(f"norm={method}", normalization=method) for method in ("znorm", "snorm")]
    # A label-free raw-LLR threshold: the 99th percentile of the enrolled models' scores on the stored
    # cohort's impostor segments (the Z-norm statistics, pooled over models), i.e. ~1% false alarms by design.
    cohort_side = Recognizer(
        store, score_config=dataclasses.replace(stored.score_config, normalization="znorm")
    )
    impostor = cohort_side.normalizer.model_statistics(
        Scorer(stored.ubm, models, top_c=stored.score_config.top_c)
    )
    threshold = float(np.quantile(impostor, 1.0 - COHORT_FALSE_ALARM))
    raw = lambda: (stored.score_matrix(models, data.tests), names, data.truths)  # noqa: E731
    outcomes.append(_timed("none, cohort 99% threshold", raw, threshold))

    # Reynolds' relevance factor (the default before 4), with its own per-speaker cohort thresholds.
    reynolds = dataclasses.replace(stored.enroll_config, relevance_factor=16.0)
    adapted = {name: enroll(stored.ubm, data.enroll[name], reynolds) for name in names}
    outcomes.append(
        _timed(
            "relevance_factor=16",
            lambda: (stored.score_matrix(adapted, data.tests), names, data.truths),
            stored.default_thresholds(adapted),
        )
    )
    outcomes += _exact_vs_top_c(stored, models, data)
    return outcomes


def _exact_vs_top_c(stored: Recognizer, models: Mapping, data: ConditionData) -> list[Outcome]:
    """top_c=5, the default and exact scoring, on at most EXACT_MAX_SPEAKERS speakers (their tests and
    models only)."""
    names = list(models)[:EXACT_MAX_SPEAKERS]
    keep = [i for i, truth in enumerate(data.truths) if truth in names]
    tests, truths = [data.tests[i] for i in keep], [data.truths[i] for i in keep]
    subset = {name: models[name] for name in names}
    suffix = "" if len(names) == len(models) else f" [{len(names)}-speaker subset]"
    outcomes = []
    for label, top_c in (
        ("top_c=5", 5),
        (f"top_c={stored.score_config.top_c}", stored.score_config.top_c),
        ("top_c=exact", None),
    ):
        scorer = Scorer(stored.ubm, subset, top_c=top_c)
        outcomes.append(_timed(label + suffix, lambda scorer=scorer: (scorer.llr_many(tests), names, truths)))
    return outcomes


def retrained(data: ConditionData, label: str, ubm_config: UBMConfig) -> Outcome:
    """Train a UBM on ``data.pool`` with ``ubm_config``, enroll and score unnormalised with the defaults."""

    def run() -> tuple[np.ndarray, list[str], list[str]]:
        ubm = train_ubm(data.pool, ubm_config)
        models = {name: enroll(ubm, features, EnrollConfig()) for name, features in data.enroll.items()}
        return Scorer(ubm, models, top_c=ScoreConfig().top_c).llr_many(data.tests), list(models), data.truths

    return _timed(label, run)
