"""``features.cmvn: auto``: whether a model keeps the recordings' loudness, chosen from its first enrollment.

A recording's level (the mean of c0, its log energy) is the speaker where each speaker's recordings come at a
consistent level (their voice, their device, their distance: short words, one session per speaker), and
noise where every recording has a gain of its own. No fixed normalisation is right for both
(``bench_accuracy.py``: no CMVN is 1.1-1.6 EER points better than ``adaptive_level`` on words through a
telephone channel or enrolled from 3 words, and 5.5 points worse where each word has a random level).
So with ``auto``, ``train-ubm`` trains two models on the same pool: the main one with ``adaptive_level``
(loudness removed) and, in :data:`LEVEL_KEPT_DIR`, one with no CMVN (loudness kept), each with its band
companion. The first enrollment measures how consistent the level is within its speakers,
:func:`level_consistency` (the share of the recordings' level variance that lies between speakers), keeps
the no-CMVN model when it reaches :data:`KEEP_LEVEL_CONSISTENCY` and most of the recordings have the UBM
pool's band (a model with no normalisation compares its speakers with the pool through the channel both
went through: with telephone enrollment and a wideband pool, or the reverse, it was 0.1-1.1 EER points worse
on 3 of the 4 such conditions), and removes the other; every later command uses the model left, as any
model. Where it cannot be measured (fewer than 3 speakers with two recordings each), the loudness is
removed: the safer side.

The switch goes through :meth:`spkid.store.ModelStore.create` (crash-safe); a marker in the kept model's
folder, written before it starts, lets the next enrollment finish an interrupted switch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.atomic import atomic_write_bytes
from spkid.audio import find_audio_files
from spkid.recognizer.bands import COMPANION_DIRS, WIDEBAND_RATE_HZ, is_wideband
from spkid.recognizer.recognizer import Recognizer
from spkid.store import COHORT_FILE, MANIFEST_FILE, ModelStore

__all__ = [
    "KEEP_LEVEL_CONSISTENCY",
    "LEVEL_CHOICE_FILE",
    "LEVEL_KEPT_DIR",
    "LevelChoice",
    "level_consistency",
    "remove_level_kept",
    "resume_level_choice",
    "settle_level_choice",
]

PathLike = str | os.PathLike[str]

#: The no-CMVN model's folder in a model directory trained with ``cmvn: auto``, until the first enrollment.
LEVEL_KEPT_DIR = "level-kept"
#: What the first enrollment chose, in the model directory (JSON).
LEVEL_CHOICE_FILE = "level_choice.json"
#: Share of the level variance between speakers from which the loudness is kept. Measured on the enrollment
#: recordings of the 22 conditions of bench_accuracy.py: 0.64-0.84 where each speaker's recordings keep their
#: own level (no CMVN 1.1-1.9 EER points better on five of them, at most 0.21 worse on the others), 0.35 and
#: 0.43 with a random level per recording (no CMVN 3.5-5.6 points worse), 0.55 with a random handset per
#: Speech Commands word (the two models 0.27 points apart).
KEEP_LEVEL_CONSISTENCY = 0.6
_MIN_SPEAKERS = 3  # with two recordings or more
_SWITCHING = ".switching"  # marker in LEVEL_KEPT_DIR: the level is kept, the switch has started
_LEFTOVER = ".level-kept-removed"


@dataclass(frozen=True)
class LevelChoice:
    """What the first enrollment of a ``cmvn: auto`` model chose.

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

    def describe(self) -> str:
        """One line for the terminal."""
        what = "loudness kept (no CMVN)" if self.kept else "loudness removed (cmvn adaptive_level)"
        if self.consistency is None:
            return f"{what}: too few speakers with two recordings to measure the level's consistency"
        line = (
            f"{what}: {self.consistency:.0%} of the level variance of {self.n_recordings} recordings lies "
            f"between {self.n_speakers} speakers"
        )
        return line + (
            ", but most recordings have another band than the UBM pool's" if self.other_band else ""
        )


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
    if sum(len(group) > 1 for group in groups) < _MIN_SPEAKERS:
        return None
    dof = sum(len(group) - 1 for group in groups)
    within = sum(float(np.sum((group - group.mean()) ** 2)) for group in groups) / dof
    total = float(np.var(np.concatenate(groups)))
    return 1.0 - within / total if total > 0 else 0.0


def settle_level_choice(
    model_dir: PathLike,
    speakers: Mapping[str, Sequence[PathLike]],
    *,
    n_jobs: int = 1,
    cache_dir: PathLike | None = None,
) -> LevelChoice | None:
    """Before an enrollment: choose between the two models of a ``cmvn: auto`` directory, keep one.

    Nothing to do (None) for any other model, or one that already holds speakers (the main model is kept).

    Parameters
    ----------
    model_dir : path
    speakers : mapping of str to sequence of path
        The speakers about to be enrolled (their files or folders).
    n_jobs, cache_dir
        As for the enrollment: the levels come from the no-CMVN model's features of the same files (those
        that cannot be read or hold too little speech left out: the enrollment reports them).

    Returns
    -------
    LevelChoice or None
    """
    model_dir = Path(model_dir)
    resumed = resume_level_choice(model_dir)
    kept_dir = model_dir / LEVEL_KEPT_DIR
    if resumed is not None or not (kept_dir / MANIFEST_FILE).is_file():
        return resumed
    choice = None
    if not ModelStore.open(model_dir).speakers():
        choice = _choose(kept_dir, speakers, n_jobs=n_jobs, cache_dir=cache_dir)
    _apply(model_dir, kept_dir, choice)
    return choice


def resume_level_choice(model_dir: PathLike) -> LevelChoice | None:
    """Finish the switch to the no-CMVN model that an interrupted enrollment started (None: there was none).

    Called before the model is opened: a switch interrupted while the model directory was being rewritten
    leaves it without a manifest until then.
    """
    kept_dir = Path(model_dir) / LEVEL_KEPT_DIR
    marker = kept_dir / _SWITCHING
    if not marker.is_file():
        return None
    choice = LevelChoice(**json.loads(marker.read_text(encoding="utf-8")))
    _apply(Path(model_dir), kept_dir, choice)
    return choice


def _apply(model_dir: Path, kept_dir: Path, choice: LevelChoice | None) -> None:
    """Keep the model ``choice`` says (None: the main one), record the choice, delete the other model."""
    shutil.rmtree(model_dir / _LEFTOVER, ignore_errors=True)
    if choice is not None:
        record = json.dumps(dataclasses.asdict(choice)).encode()
        if choice.kept:
            atomic_write_bytes(kept_dir / _SWITCHING, record)
            _switch(model_dir, kept_dir)
        atomic_write_bytes(model_dir / LEVEL_CHOICE_FILE, record)
    try:
        os.rename(kept_dir, model_dir / _LEFTOVER)  # one step: what is left is never half a model
    except FileNotFoundError:  # another enrollment settled it first
        return
    shutil.rmtree(model_dir / _LEFTOVER, ignore_errors=True)


def remove_level_kept(model_dir: PathLike) -> None:
    """Delete the no-CMVN model of ``model_dir`` (before the model is retrained over)."""
    shutil.rmtree(Path(model_dir) / LEVEL_KEPT_DIR, ignore_errors=True)


def _choose(
    kept_dir: Path,
    speakers: Mapping[str, Sequence[PathLike]],
    *,
    n_jobs: int,
    cache_dir: PathLike | None,
) -> LevelChoice:
    """The level's consistency on the no-CMVN model's features (c0: the log energy, unnormalised)."""
    files_of = {name: find_audio_files(list(paths)) for name, paths in speakers.items()}
    unique = list(dict.fromkeys(file for files in files_of.values() for file in files))
    kept = ModelStore.open(kept_dir)
    wideband_pool = int(kept.feature_config["sample_rate"]) >= WIDEBAND_RATE_HZ
    other_band = 2 * sum(is_wideband(file) != wideband_pool for file in unique) > len(unique)
    extracted = Recognizer(kept).extract(unique, n_jobs=n_jobs, skip_bad=True, cache_dir=cache_dir)
    level_of = {
        path: float(np.mean(frames[:, 0])) for path, frames in zip(extracted.paths, extracted, strict=True)
    }
    levels = {
        name: [level_of[file] for file in files if file in level_of] for name, files in files_of.items()
    }
    consistency = level_consistency(levels)
    return LevelChoice(
        kept=consistency is not None and consistency >= KEEP_LEVEL_CONSISTENCY and not other_band,
        consistency=consistency,
        n_speakers=sum(1 for values in levels.values() if values),
        n_recordings=len(level_of),
        other_band=other_band,
    )


def _switch(model_dir: Path, kept_dir: Path) -> None:
    """Make ``model_dir`` the no-CMVN model: its UBM, settings and cohort, then its companion (idempotent)."""
    kept = ModelStore.open(kept_dir)
    configs = {name: kept.manifest[name] for name in ("feature_config", "ubm_config", "enroll_config")}
    store = ModelStore.create(
        model_dir, **configs, score_config=kept.manifest["score_config"], ubm=kept.load_ubm(), overwrite=True
    )
    if (kept_dir / COHORT_FILE).is_file():
        store.save_cohort(kept.load_cohort())
    for name in COMPANION_DIRS:  # the rename is the commit: a finished one is not redone
        if (kept_dir / name).is_dir():
            shutil.rmtree(model_dir / name, ignore_errors=True)
            os.rename(kept_dir / name, model_dir / name)
