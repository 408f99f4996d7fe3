"""Speaker records: what one ``speakers/<name>.npz`` holds, and turning it back into a model.

Since model format 3 a speaker is stored as its MAP sufficient statistics under the UBM in float32 (the
zeroth and first order, and the second where variances are adapted), from which the model is derived with
the model's enrollment settings; new recordings add to them (``spkid enroll --add``). Older speaker files
hold the adapted model's parameters in float64; they are still read, but cannot grow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spkid.atomic import to_python
from spkid.errors import StoreError
from spkid.gmm import SufficientStats

__all__ = [
    "COHORT_KEYS",
    "STATS_KEYS",
    "cohort_arrays",
    "compact_stats",
    "has_stats",
    "read_cohort_stats",
    "read_stats",
    "stats_arrays",
]

#: Speaker-file arrays holding the MAP statistics (float32; the second order only when variances adapt).
STATS_KEYS = ("__stats_zeroth__", "__stats_first__", "__stats_second__")
#: Speaker-file arrays holding a speaker's scores on the cohort's impostor segments (mean, std, top-C, and
#: how many of the highest they summarise: -1 all; a file without the fourth key summarises all).
COHORT_KEYS = ("__cohort_mean__", "__cohort_std__", "__cohort_top_c__", "__cohort_top_k__")


def compact_stats(stats: SufficientStats, *, second_order: bool) -> SufficientStats:
    """``stats`` rounded to float32, as stored (the second order zeroed unless ``second_order``).

    The model is always derived from the rounded statistics, so the model enrolled and the one read back
    from the file are the same.
    """
    zeroth = np.asarray(stats.zeroth, np.float32).astype(np.float64)
    first = np.asarray(stats.first, np.float32).astype(np.float64)
    second = np.asarray(stats.second, np.float32).astype(np.float64) if second_order else np.zeros_like(first)
    return SufficientStats(zeroth, first, second, 0.0, int(stats.n_frames))


def stats_arrays(stats: SufficientStats, *, second_order: bool) -> dict[str, np.ndarray]:
    """The speaker-file arrays of ``stats`` (float32)."""
    arrays = {
        STATS_KEYS[0]: np.asarray(stats.zeroth, np.float32),
        STATS_KEYS[1]: np.asarray(stats.first, np.float32),
        "__stats_frames__": np.asarray(int(stats.n_frames), np.int64),
    }
    if second_order:
        arrays[STATS_KEYS[2]] = np.asarray(stats.second, np.float32)
    return arrays


def has_stats(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether a speaker file holds MAP statistics (format 3) rather than model parameters."""
    return STATS_KEYS[0] in arrays


def read_stats(arrays: Mapping[str, np.ndarray], file: Path, shape: tuple[int, int]) -> SufficientStats:
    """The statistics of a speaker file, checked against the UBM's ``shape`` (StoreError naming ``file``)."""
    zeroth = np.asarray(arrays[STATS_KEYS[0]])
    first = np.asarray(arrays.get(STATS_KEYS[1], np.zeros(0)))
    second = np.asarray(arrays.get(STATS_KEYS[2], np.zeros(shape, np.float32)))
    problems = [
        (
            zeroth.shape != (shape[0],) or first.shape != tuple(shape) or second.shape != tuple(shape),
            f"statistics of shape {zeroth.shape}, {first.shape}, {second.shape}; the UBM is "
            f"{shape[0]} x {shape[1]}",
        ),
        (any(a.dtype.kind != "f" for a in (zeroth, first, second)), "statistics are not floating point"),
        (
            not all(np.all(np.isfinite(a)) for a in (zeroth, first, second)),
            "statistics hold NaN or infinite values",
        ),
        (bool(np.any(zeroth < 0)), "negative zeroth-order statistics"),
    ]
    for broken, reason in problems:
        if broken:
            raise StoreError(f"{file}: invalid speaker: {reason}")
    frames = int(to_python(arrays.get("__stats_frames__", np.asarray(0))))
    return SufficientStats(
        zeroth.astype(np.float64), first.astype(np.float64), second.astype(np.float64), 0.0, frames
    )


def cohort_arrays(cohort_stats: Any) -> dict[str, np.ndarray]:
    """The speaker-file arrays of a :class:`~spkid.store.SpeakerCohortStats`."""
    return {
        COHORT_KEYS[0]: np.asarray(cohort_stats.mean, np.float64),
        COHORT_KEYS[1]: np.asarray(cohort_stats.std, np.float64),
        COHORT_KEYS[2]: np.asarray(-1 if cohort_stats.top_c is None else cohort_stats.top_c),
        COHORT_KEYS[3]: np.asarray(-1 if cohort_stats.top_k is None else cohort_stats.top_k),
    }


def read_cohort_stats(
    arrays: Mapping[str, np.ndarray], file: Path
) -> tuple[float, float, int | None, int | None] | None:
    """``(mean, std, top_c, top_k)`` stored with a speaker, or None when it has none (StoreError when
    invalid); a speaker file written before ``top_k`` was kept summarises all the cohort scores (None)."""
    if COHORT_KEYS[0] not in arrays:
        return None
    top_c = int(arrays[COHORT_KEYS[2]])
    top_k = int(arrays[COHORT_KEYS[3]]) if COHORT_KEYS[3] in arrays else -1
    mean, std = float(arrays[COHORT_KEYS[0]]), float(arrays[COHORT_KEYS[1]])
    if not (np.isfinite(mean) and np.isfinite(std) and std >= 0):
        raise StoreError(f"{file}: invalid cohort statistics (mean {mean}, std {std})")
    return mean, std, None if top_c < 0 else top_c, None if top_k < 0 else top_k
