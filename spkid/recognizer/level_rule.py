"""The rule of ``features.cmvn: auto``: from the enrollment recordings' levels, keep the loudness or not.

A recording's level is the mean of its c0 (log energy). :func:`level_consistency` is the share of the level
variance that lies between speakers; :func:`level_interval` is a confidence interval of that share (the
intraclass correlation ICC(1) of a one-way random-effects model), which says whether a few speakers already
show on which side of :data:`KEEP_LEVEL_CONSISTENCY` the share lies; :func:`choose_level` applies the rule
(:mod:`spkid.recognizer.level_choice` measures the levels and keeps the model it picks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import fdtri

__all__ = [
    "KEEP_LEVEL_CONSISTENCY",
    "LEVEL_CONFIDENCE",
    "MIN_SPEAKERS",
    "SHORT_RECORDING_S",
    "WAIT_SPEAKERS",
    "LevelChoice",
    "choose_level",
    "level_consistency",
    "level_interval",
]

#: Speakers with two recordings or more that the measures need.
MIN_SPEAKERS = 3
#: Share of the level variance between speakers from which the loudness is kept. Measured on the enrollment
#: recordings of the 27 conditions of bench_accuracy.py: 0.64-0.84 where each speaker's recordings keep their
#: own level (no CMVN 1.1-2.3 EER points better on eight of them, at most 0.21 worse on the others but the
#: band-mismatched LibriSpeech ones, below), 0.35 and 0.43 with a random level per recording (no CMVN 3.5-5.6
#: points worse), 0.55 with a random handset per Speech Commands word (no CMVN 0.27 points worse) and 0.57
#: with a handset then a telephone line per word (no CMVN 1.40 points better). Midway between 0.43 and 0.57;
#: it was 0.6 until 2026-12-07, which lost the 1.40 points (the worst case of the 27).
KEEP_LEVEL_CONSISTENCY = 0.5
#: Recordings of another band than the UBM pool's keep their loudness only when they are this short (median
#: seconds of the enrollment's recordings). bench_accuracy.py: with telephone enrollment and a wideband pool,
#: or the reverse, no CMVN was 0.13-1.07 EER points worse on the 3 such LibriSpeech conditions (recordings of
#: 2-18 s, median 6.1: the spectrum identifies the speaker, the level adds the channel) and 1.20-1.53 points
#: better on the 3 Speech Commands ones (1-s words: the level is much of what there is). Any bound between 1
#: and 6 s separates them; 3 s is the window of sliding CMVN and feature warping.
SHORT_RECORDING_S = 3.0
#: Coverage of the level share's interval (:func:`level_interval`): under WAIT_SPEAKERS speakers the choice is
#: made once the interval lies on one side of KEEP_LEVEL_CONSISTENCY, else it waits (both models kept).
#: Speakers enrolled one at a time in 1,000 random orders (the enrollment levels of bench_accuracy.py): where
#: all at once keeps the loudness, so did 97-100% of the orders on LibriSpeech and 79-83% on words (45-74% and
#: 33-43% when the third speaker chose with the bound at 0.6); with a level per recording 0-4% (0-2%).
LEVEL_CONFIDENCE = 0.8
#: From this many speakers the choice is made on the share itself (unmeasurable: the loudness is removed).
WAIT_SPEAKERS = 10


def level_consistency(levels: Mapping[str, Sequence[float]]) -> float | None:
    """The share of the recordings' level variance that lies between speakers.

    ``1 - pooled within-speaker variance / variance of all recordings``: near 1 when each speaker's recordings
    share a level, near 0 (or below) when the level varies as much within a speaker as between speakers.

    Parameters
    ----------
    levels : mapping of str to sequence of float
        Speaker -> the level of each of its recordings.

    Returns
    -------
    float or None
        None with fewer than 3 speakers of two recordings or more.

    Examples
    --------
    >>> round(level_consistency({"a": [1.0, 1.2], "b": [5.0, 5.2], "c": [9.0, 8.8]}), 3)
    0.998
    >>> level_consistency({"a": [1.0, 9.0], "b": [5.0, 1.0], "c": [9.0, 5.0]}) < 0
    True
    """
    groups = [np.asarray(values, dtype=np.float64) for values in levels.values() if len(values)]
    if sum(len(group) > 1 for group in groups) < MIN_SPEAKERS:
        return None
    dof = sum(len(group) - 1 for group in groups)
    within = sum(float(np.sum((group - group.mean()) ** 2)) for group in groups) / dof
    total = float(np.var(np.concatenate(groups)))
    return 1.0 - within / total if total > 0 else 0.0


def level_interval(
    levels: Mapping[str, Sequence[float]], confidence: float = 0.8
) -> tuple[float, float] | None:
    """A two-sided confidence interval of the between-speaker share of the level variance.

    The share is the intraclass correlation ICC(1) of a one-way random-effects model (each speaker a level of
    its own, each recording that level plus noise); the interval is the exact one from the F distribution of
    the ANOVA's mean squares (Shrout & Fleiss 1979; McGraw & Wong 1996, case 1), with the mean group size
    ``n0`` of unbalanced designs. Speakers with one recording are left out.

    Parameters
    ----------
    levels : mapping of str to sequence of float
        Speaker -> the level of each of its recordings.
    confidence : float, default 0.8
        Coverage of the interval, in (0, 1).

    Returns
    -------
    (float, float) or None
        Lower and upper bound (at most 1; the lower one may be below 0); None with fewer than 3 speakers of
        two recordings or more.

    Examples
    --------
    >>> low, high = level_interval({"a": [1.0, 1.2], "b": [5.0, 5.2], "c": [9.0, 8.8]})
    >>> bool(0.9 < low < high <= 1.0)
    True
    >>> low, high = level_interval({"a": [1.0, 9.0, 5.0], "b": [5.0, 1.0, 9.0], "c": [9.0, 5.0, 2.0]})
    >>> bool(high < 0.5)
    True
    >>> level_interval({"a": [1.0, 9.0], "b": [5.0, 1.0], "c": [9.0, 5.0]})[1] > 0.5  # too few to tell
    True
    """
    groups = [np.asarray(values, dtype=np.float64) for values in levels.values() if len(values) > 1]
    if len(groups) < MIN_SPEAKERS:
        return None
    k, n = len(groups), sum(len(group) for group in groups)
    grand = float(np.concatenate(groups).mean())
    between = sum(len(group) * (float(group.mean()) - grand) ** 2 for group in groups) / (k - 1)
    within = sum(float(np.sum((group - group.mean()) ** 2)) for group in groups) / (n - k)
    if within == 0.0:  # every speaker's recordings at one level each
        return (1.0, 1.0) if between > 0.0 else (0.0, 0.0)
    n0 = (n - sum(len(group) ** 2 for group in groups) / n) / (k - 1)
    ratio, tail = between / within, (1.0 - confidence) / 2.0
    f_low = ratio / float(fdtri(k - 1, n - k, 1.0 - tail))
    f_high = ratio / float(fdtri(k - 1, n - k, tail))
    return (f_low - 1.0) / (f_low + n0 - 1.0), (f_high - 1.0) / (f_high + n0 - 1.0)


@dataclass(frozen=True)
class LevelChoice:
    """What the enrollment of a ``cmvn: auto`` model chose (or that the choice waits).

    Examples
    --------
    >>> LevelChoice(kept=True, consistency=0.71, n_speakers=53, n_recordings=530).describe()
    'loudness kept (no CMVN): 71% of the level variance of 530 recordings lies between 53 speakers'
    """

    kept: bool
    consistency: float | None  # None: not measurable
    n_speakers: int
    n_recordings: int
    other_band: bool = False  # most recordings have a band other than the UBM pool's
    median_s: float | None = None  # the recordings' median duration (None: recorded by an older spkid)
    pending: bool = False  # too few speakers yet: both models stay, a later enrollment chooses
    interval: tuple[float, float] | None = None  # the share's LEVEL_CONFIDENCE interval, under 10 speakers
    measured: dict | None = field(default=None, repr=False)  # pending: this enrollment's levels
    #: cmvn_relevance_frames the kept model was given (spkid.recognizer.channel_rule); None: its own
    relevance_frames: float | None = None
    #: held-out EER of the enrollment (channel_rule.held_out_eer): the model the level chose, and
    #: adaptive_level at channel_rule.HARDER_RELEVANCE_FRAMES; None: not measured
    held_out: tuple[float | None, float | None] | None = None

    def describe(self) -> str:
        """One line for the terminal."""
        what = "loudness kept (no CMVN)" if self.kept else "loudness removed (cmvn adaptive_level)"
        if self.relevance_frames is not None:
            what = (
                f"channel removed harder (cmvn adaptive_level, {self.relevance_frames:g} frames of relevance)"
            )
        if self.consistency is None:
            if self.pending:
                return (
                    f"choice waits for 3 speakers with two recordings ({self.n_speakers} enrolled so far); "
                    "until then the loudness is removed (cmvn adaptive_level)"
                )
            return f"{what}: too few speakers with two recordings to measure the level's consistency"
        share = (
            f"{self.consistency:.0%} of the level variance of {self.n_recordings} recordings lies between "
            f"{self.n_speakers} speakers"
        )
        if self.interval is not None:
            share += f" ({LEVEL_CONFIDENCE:.0%} interval {self.interval[0]:.0%} to {self.interval[1]:.0%})"
        if self.pending:
            return (
                f"choice waits for more speakers ({share}: on both sides of {KEEP_LEVEL_CONSISTENCY:.0%}); "
                "until then, and if 10 speakers leave it so, the loudness is removed (cmvn adaptive_level)"
            )
        line = f"{what}: {share}"
        if self.held_out is not None and None not in self.held_out:
            line += (
                f"; its enrollment's recordings identified one by one: EER {self.held_out[1]:.1%} with "
                f"the channel removed harder, {self.held_out[0]:.1%} without"
            )
        if not self.other_band:
            return line
        length = "" if self.median_s is None else f" (median {self.median_s:.1f} s)"
        but = ("; most", ", but are short") if self.kept else (", but most", " and are long")
        return line + f"{but[0]} recordings have another band than the UBM pool's{but[1]}{length}"


def choose_level(records: Mapping[str, Sequence[Sequence[float]]], *, final: bool = False) -> LevelChoice:
    """The choice the enrollment recordings call for.

    Under :data:`WAIT_SPEAKERS` speakers by the share's interval, waiting (``pending``) while it straddles
    :data:`KEEP_LEVEL_CONSISTENCY` or while fewer than 3 speakers have two recordings; from there, or when
    the enrollment is ``final`` (no speaker will follow, as in a recipe), by the share itself.

    Parameters
    ----------
    records : mapping of str to sequence of [float, float, float]
        Speaker -> ``[level, seconds, other band (1.0 or 0.0)]`` of each of its recordings.
    final : bool, default False
        Choose now, whatever the interval.

    Returns
    -------
    LevelChoice

    Examples
    --------
    >>> steady = {name: [[level, 1.0, 0.0], [level + 0.1, 1.0, 0.0]] for name, level in zip("abc", (1, 5, 9))}
    >>> choice = choose_level(steady)
    >>> choice.kept, choice.pending
    (True, False)
    >>> pairs = {"a": (1, 6), "b": (5, 2), "c": (4, 3)}
    >>> mixed = {name: [[x, 1.0, 0.0], [y, 1.0, 0.0]] for name, (x, y) in pairs.items()}
    >>> choose_level(mixed).pending, choose_level(mixed, final=True).kept
    (False, False)
    """
    everything = [record for values in records.values() for record in values]
    levels = {name: [record[0] for record in values] for name, values in records.items()}
    consistency = level_consistency(levels)
    other_band = 2 * sum(record[2] > 0 for record in everything) > len(everything)
    median_s = float(np.median([record[1] for record in everything])) if everything else None
    short = median_s is not None and median_s <= SHORT_RECORDING_S
    waits = not final and len(records) < WAIT_SPEAKERS
    interval = level_interval(levels, LEVEL_CONFIDENCE) if waits else None
    level_kept = consistency is not None and consistency >= KEEP_LEVEL_CONSISTENCY
    unclear = False
    if interval is not None:
        level_kept = interval[0] >= KEEP_LEVEL_CONSISTENCY
        unclear = not level_kept and interval[1] >= KEEP_LEVEL_CONSISTENCY and (short or not other_band)
    return LevelChoice(
        kept=level_kept and (short or not other_band),
        consistency=consistency,
        n_speakers=sum(1 for values in records.values() if values),
        n_recordings=len(everything),
        other_band=other_band,
        median_s=None if median_s is None else round(median_s, 2),
        pending=waits and (consistency is None or unclear),
        interval=None if interval is None else (round(interval[0], 4), round(interval[1], 4)),
    )
