"""Identification and verification through the model's speaker bank, in time independent of file count.

The bank (:mod:`spkid.store.bank`) is opened once, memory-mapped, and searched in blocks of speakers for
the best ``top_k`` of each recording (:func:`spkid.score.bank_scoring.search_bank`). It serves top-C scoring
with no score normalisation, T-norm (which keeps each recording's ranking), and Z-, S- and adaptive S-norm,
whose side of each speaker is the two numbers stored with it (:mod:`spkid.recognizer.model_side`): the
search ranks by the normalised scores. Exact scoring and ZT-norm (which needs every speaker's cohort
scores) read the speaker files, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from spkid.errors import StoreError
from spkid.recognizer.recognizer import NORMALISED_THRESHOLD, OPEN_SET_P_TARGET, RAW_LLR_THRESHOLD, Recognizer
from spkid.score import SUMMARISED, bayes_threshold
from spkid.score.bank_scoring import score_columns, search_bank
from spkid.store.bank import BankCorruptError, BankUnwritableError, BankView

logger = logging.getLogger("spkid.store.bank")

__all__ = [
    "bank_or_none",
    "bank_usable",
    "best_in_bank",
    "identify_in_bank",
    "open_bank",
    "threshold_in_bank",
    "verify_in_bank",
]


def bank_usable(recognizer: Recognizer) -> bool:
    """Whether the model's scoring settings can be served from the bank."""
    top_c = recognizer.score_config.top_c
    quantised = top_c is not None and top_c < recognizer.store.ubm_shape[0]
    return quantised and recognizer.score_config.normalization in ("none", "tnorm", *SUMMARISED)


def open_bank(recognizer: Recognizer) -> BankView:
    """The bank (rebuilt first when needed); StoreError when no speaker is enrolled."""
    view = recognizer.store.open_bank()
    if not view.names:
        raise StoreError(f"{recognizer.store.path}: no speakers enrolled; run spkid enroll first")
    return view


def bank_or_none(recognizer: Recognizer, *, require_speakers: bool = True) -> BankView | None:
    """The bank when the scoring settings use it and it can be opened, else None (score the speaker files).

    A bank that needs building or repairing in a model directory this process cannot write (a read-only
    mount, another user's model) is not an error: the speaker files give the same scores, only slower,
    and a warning says so. StoreError when no speaker is enrolled and ``require_speakers``.
    """
    if not bank_usable(recognizer):
        return None
    try:
        return open_bank(recognizer) if require_speakers else recognizer.store.open_bank()
    except BankUnwritableError as exc:
        logger.warning("%s; scoring from the speaker files instead (slower)", exc)
        return None


def _summaries(
    recognizer: Recognizer, view: BankView, numbers: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The side of the normalisation (Z-, S- or adaptive S-norm) of live speakers ``numbers`` (None: all, in
    ``view.names`` order): as the bank holds it, or from ``Recognizer.model_summaries`` where it holds
    another (speakers of an older spkid: summarised from their files once per process)."""
    top_c, top_k = recognizer.score_config.top_c, recognizer.normalizer.model_top_k
    wanted = (-1 if top_c is None else top_c, -1 if top_k is None else top_k)
    keys = ("cohort_mean", "cohort_std", "cohort_top_c", "cohort_top_k")
    parts = [
        [getattr(segment, key)[columns] for key in keys]
        for segment, columns in zip(view.segments, view.columns, strict=True)
    ]
    mean, std, stored_c, stored_k = (np.concatenate([part[i] for part in parts]) for i in range(4))
    if numbers is not None:
        mean, std, stored_c, stored_k = mean[numbers], std[numbers], stored_c[numbers], stored_k[numbers]
    mean, std = mean.astype(np.float64), std.astype(np.float64)
    stale = np.flatnonzero((stored_c != wanted[0]) | (stored_k != wanted[1]))
    if len(stale):
        chosen = np.arange(len(view.names)) if numbers is None else numbers
        mean[stale], std[stale] = recognizer.model_summaries([view.names[chosen[i]] for i in stale])
    return mean, std


def _final(
    recognizer: Recognizer,
    raw: np.ndarray,
    test_stats: np.ndarray | None,
    summaries: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """Normalised scores of ``raw`` (tests x the speakers of ``summaries``, if the method needs them)."""
    if summaries is None:
        return recognizer.normalizer.apply(raw, None, test_stats)
    return recognizer.normalizer.apply_summarised(raw, *summaries, test_stats)


def best_in_bank(
    recognizer: Recognizer, view: BankView, features: Sequence[np.ndarray], top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``top_k`` speakers (0: all) of each recording: numbers into ``view.names``, final scores."""
    test_stats = recognizer.normalizer.test_statistics(features)
    normalise = None
    if recognizer.normalizer.summarised:  # per speaker: the search ranks by the normalised scores
        mean, std = _summaries(recognizer, view)

        def normalise(raw: np.ndarray, numbers: np.ndarray, rows: slice) -> np.ndarray:
            tests = None if test_stats is None else test_stats[rows]
            return _final(recognizer, raw, tests, (mean[numbers], std[numbers]))

    index, scores = search_bank(
        recognizer.ubm,
        features,
        view.segments,
        view.columns,
        top_c=int(recognizer.score_config.top_c),
        top_k=top_k,
        normalise=normalise,
    )
    if normalise is None:
        scores = _final(recognizer, scores, test_stats, None)
    return index, recognizer.calibrated(scores)


def identify_in_bank(
    recognizer: Recognizer,
    view: BankView,
    features: Sequence[np.ndarray],
    top_k: int,
    open_set: bool,
    threshold: float | None,
) -> list[tuple[str | None, list[tuple[str, float]], bool, float | None]]:
    """Per recording: the best speaker (None when an open set rejects), the ranked ``(name, score)``,
    whether it was accepted, and the threshold it was decided on (None in a closed set)."""
    try:
        index, ranked_scores = best_in_bank(recognizer, view, features, top_k)
    except BankCorruptError as exc:  # a block failed its checksum while being scored
        view = _rebuilt(recognizer, exc)
        index, ranked_scores = best_in_bank(recognizer, view, features, top_k)
    results = []
    for numbers, values in zip(index, ranked_scores, strict=True):
        cutoff = None
        if open_set and threshold is not None:
            cutoff = float(threshold)
        elif open_set:
            cutoff = threshold_in_bank(recognizer, view, int(numbers[0]))
        accepted = cutoff is None or bool(values[0] >= cutoff)
        best = view.names[int(numbers[0])] if accepted else None
        ranked = [(view.names[int(n)], float(v)) for n, v in zip(numbers, values, strict=True)]
        results.append((best, ranked, accepted, cutoff))
    return results


def threshold_in_bank(recognizer: Recognizer, view: BankView, number: int) -> float:
    """The default decision threshold of speaker ``view.names[number]`` (see ``default_thresholds``)."""
    if recognizer.calibrator is not None:
        return bayes_threshold(OPEN_SET_P_TARGET)
    if recognizer.score_config.normalization != "none":
        return NORMALISED_THRESHOLD
    if recognizer.cohort is None or len(recognizer.cohort.segments) < 2:
        return RAW_LLR_THRESHOLD
    stored = view.cohort_stats(number)  # over every segment (not adaptive S-norm's top-k summary)
    if stored is not None and stored[2] == recognizer.score_config.top_c and stored[3] is None:
        return stored[0] + NORMALISED_THRESHOLD * stored[1]
    name = view.names[number]  # enrolled before the statistics were kept, or another top_c
    return float(recognizer.default_thresholds({name: recognizer.store.load_speaker(name)})[0])


def verify_in_bank(
    recognizer: Recognizer, view: BankView, speaker: str, features: Sequence[np.ndarray]
) -> tuple[np.ndarray, float]:
    """Final scores of ``features`` against ``speaker`` (its block of the bank only) and its threshold."""
    try:
        return _verify(recognizer, view, speaker, features)
    except BankCorruptError as exc:
        return _verify(recognizer, _rebuilt(recognizer, exc), speaker, features)


def _rebuilt(recognizer: Recognizer, exc: BankCorruptError) -> BankView:
    logger.warning("%s; rebuilding the speaker bank from the speaker files", exc)
    recognizer.store.rebuild_bank()
    return open_bank(recognizer)


def _verify(
    recognizer: Recognizer, view: BankView, speaker: str, features: Sequence[np.ndarray]
) -> tuple[np.ndarray, float]:
    try:
        number = view.names.index(speaker)
    except ValueError:
        shown = ", ".join(view.names[:10]) + (", ..." if len(view.names) > 10 else "")
        raise StoreError(
            f"speaker {speaker!r} is not enrolled in {recognizer.store.path} (enrolled: {shown})"
        ) from None
    position = number
    for segment, columns in zip(view.segments, view.columns, strict=True):
        if position < len(columns):
            raw = score_columns(
                recognizer.ubm,
                features,
                segment,
                int(columns[position]),
                top_c=int(recognizer.score_config.top_c),
            )
            break
        position -= len(columns)
    summaries = _summaries(recognizer, view, np.array([number])) if recognizer.normalizer.summarised else None
    final = _final(recognizer, raw[:, None], recognizer.normalizer.test_statistics(features), summaries)
    return recognizer.calibrated(final)[:, 0], threshold_in_bank(recognizer, view, number)
