"""``features.cmvn: auto``: whether a model keeps the recordings' loudness, chosen from its enrollment.

A recording's level (the mean of c0, its log energy) is the speaker where each speaker's recordings keep a
level (voice, device, distance), and noise where every recording has a gain of its own: no fixed
normalisation is right for both (``bench_accuracy.py``). So with ``auto``, ``train-ubm`` trains two models
on the pool: the main one ``adaptive_level`` (loudness removed) and, in :data:`LEVEL_KEPT_DIR`, one with no
CMVN (loudness kept), each with its band companion. The enrollment that brings 3 speakers with two
recordings measures how consistent the level is within them, :func:`level_consistency` (the share of the
level variance between speakers), keeps the no-CMVN model when it reaches :data:`KEEP_LEVEL_CONSISTENCY`,
unless most recordings have another band than the UBM pool's and are long (:data:`SHORT_RECORDING_S`),
and deletes the other; later commands use the model left. Speakers enrolled before go into both models (the
main one answers meanwhile), their levels kept in :data:`LEVELS_FILE`: one speaker at a time ends where all
at once does. From 10 speakers without 3 to measure, the loudness is removed: the safer side. The switch
goes through :meth:`spkid.store.ModelStore.create` (crash-safe); a marker written before it starts lets
the next enrollment finish an interrupted switch.
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
from spkid.errors import StoreError
from spkid.recognizer.bands import COMPANION_DIRS, WIDEBAND_RATE_HZ, drop_from_companion, is_wideband
from spkid.recognizer.recognizer import Recognizer
from spkid.store import COHORT_FILE, MANIFEST_FILE, ModelStore

__all__ = [
    "KEEP_LEVEL_CONSISTENCY",
    "LEVELS_FILE",
    "LEVEL_CHOICE_FILE",
    "LEVEL_KEPT_DIR",
    "SHORT_RECORDING_S",
    "LevelChoice",
    "level_consistency",
    "record_levels",
    "remove_level_kept",
    "resume_level_choice",
    "settle_level_choice",
]

PathLike = str | os.PathLike[str]

#: The no-CMVN model's folder in a model directory trained with ``cmvn: auto``, until the choice.
LEVEL_KEPT_DIR = "level-kept"
#: What the enrollment chose, in the model directory (JSON).
LEVEL_CHOICE_FILE = "level_choice.json"
#: Share of the level variance between speakers from which the loudness is kept. Measured on the enrollment
#: recordings of the 25 conditions of bench_accuracy.py: 0.64-0.84 where each speaker's recordings keep their
#: own level (no CMVN 1.1-2.3 EER points better on eight of them, at most 0.21 worse on the others but the
#: band-mismatched LibriSpeech ones, below), 0.35 and 0.43 with a random level per recording (no CMVN 3.5-5.6
#: points worse), 0.55 with a random handset per Speech Commands word (the two models 0.27 points apart).
KEEP_LEVEL_CONSISTENCY = 0.6
#: Recordings of another band than the UBM pool's keep their loudness only when they are this short (median
#: seconds of the enrollment's recordings). bench_accuracy.py: with telephone enrollment and a wideband pool,
#: or the reverse, no CMVN was 0.13-1.07 EER points worse on the 3 such LibriSpeech conditions (recordings of
#: 2-18 s, median 6.1: the spectrum identifies the speaker, the level adds the channel) and 1.20-1.53 points
#: better on the 3 Speech Commands ones (1-s words: the level is much of what there is). Any bound between 1
#: and 6 s separates them; 3 s is the window of sliding CMVN and feature warping.
SHORT_RECORDING_S = 3.0
#: The levels of the speakers enrolled while the choice waits, in LEVEL_KEPT_DIR (JSON).
LEVELS_FILE = "levels.json"
_MIN_SPEAKERS, _WAIT_SPEAKERS = 3, 10  # speakers of 2 recordings to measure; without, stop waiting from 10
_SWITCHING = ".switching"  # marker in LEVEL_KEPT_DIR: the level is kept, the switch has started
ENROLLING_LOCK = ".enrolling"  # in LEVEL_KEPT_DIR: enrollments while the choice waits run one at a time
_LEFTOVER = ".level-kept-removed"


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

    def describe(self) -> str:
        """One line for the terminal."""
        if self.pending:
            return (
                f"choice waits for 3 speakers with two recordings ({self.n_speakers} enrolled so far); until "
                "then the loudness is removed (cmvn adaptive_level)"
            )
        what = "loudness kept (no CMVN)" if self.kept else "loudness removed (cmvn adaptive_level)"
        if self.consistency is None:
            return f"{what}: too few speakers with two recordings to measure the level's consistency"
        line = (
            f"{what}: {self.consistency:.0%} of the level variance of {self.n_recordings} recordings lies "
            f"between {self.n_speakers} speakers"
        )
        if not self.other_band:
            return line
        length = "" if self.median_s is None else f" (median {self.median_s:.1f} s)"
        but = ("; most", ", but are short") if self.kept else (", but most", " and are long")
        return line + f"{but[0]} recordings have another band than the UBM pool's{but[1]}{length}"


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
    add: bool = False,
    skip_bad: bool = False,
    n_jobs: int = 1,
    cache_dir: PathLike | None = None,
) -> LevelChoice | None:
    """Before an enrollment: choose between the two models of a ``cmvn: auto`` directory, keep one.

    None for any other model. With too few speakers to measure (with those enrolled while it waited) the
    choice is ``pending``: the caller enrolls into both models, then calls :func:`record_levels`.

    Parameters
    ----------
    model_dir : path
    speakers : mapping of str to sequence of path
        The speakers about to be enrolled (their files or folders).
    add : bool
        The recordings add to speakers enrolled before (``enroll --add``).
    skip_bad, n_jobs, cache_dir
        As for the enrollment (the levels come from the no-CMVN model's features of the same files): without
        ``skip_bad``, the first unusable file stops it with the enrollment's error, before anything is chosen.

    Raises
    ------
    StoreError
        The no-CMVN model cannot be read (the message says how to settle on the main one).
    SpkidError
        Without ``skip_bad``: the error of an unusable file, as the enrollment gives it.
    """
    model_dir = Path(model_dir)
    resumed = resume_level_choice(model_dir)
    kept_dir = model_dir / LEVEL_KEPT_DIR
    if resumed is not None or not (kept_dir / MANIFEST_FILE).is_file():
        return resumed
    main = ModelStore.open(model_dir)
    try:
        kept = ModelStore.open(kept_dir)
    except StoreError as exc:
        raise StoreError(f"{exc}; delete {kept_dir} to settle features.cmvn auto on the main model") from None
    enrolled = set(main.speakers())
    earlier = _read_levels(kept_dir).get("speakers", {})
    redone = set() if add else set(speakers)  # re-enrolled in both: a copy missing there does not matter
    if not _mirrored(main, kept, enrolled - redone):  # lacking in the no-CMVN model: the main one stays
        _apply(model_dir, kept_dir, None)
        return None
    measured = _measure(kept, speakers, skip_bad=skip_bad, n_jobs=n_jobs, cache_dir=cache_dir)
    records = {name: earlier[name] for name in enrolled & set(earlier)}
    for name, new in measured.items():
        records[name] = records.get(name, []) + new if add else new
    choice = _choose(records)
    if choice.pending:
        atomic_write_bytes(
            kept_dir / LEVELS_FILE, json.dumps({"speakers": earlier, "measured": measured}).encode()
        )
    else:
        _apply(model_dir, kept_dir, choice)
    return choice


def record_levels(model_dir: PathLike, names: Sequence[str], *, add: bool = False) -> None:
    """After a ``pending`` enrollment: keep the levels measured for ``names`` (the speakers it enrolled in
    both models) for the enrollment that will choose."""
    kept_dir = Path(model_dir) / LEVEL_KEPT_DIR
    levels = _read_levels(kept_dir)
    earlier, measured = levels.get("speakers", {}), levels.get("measured", {})
    for name in set(names) & set(measured):
        earlier[name] = earlier.get(name, []) + measured[name] if add else measured[name]
    atomic_write_bytes(kept_dir / LEVELS_FILE, json.dumps({"speakers": earlier}).encode())


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
            if not (kept_dir / _SWITCHING).is_file():  # speakers removed while the choice waited go
                enrolled, kept = set(ModelStore.open(model_dir).speakers()), ModelStore.open(kept_dir)
                drop_from_companion(
                    kept_dir, gone := [name for name in kept.speakers() if name not in enrolled]
                )
                for name in gone:
                    kept.remove_speaker(name)
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


def _read_levels(kept_dir: Path) -> dict:
    try:
        levels = json.loads((kept_dir / LEVELS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet (or damaged: the speakers it listed count as not measured)
        return {}
    return levels if isinstance(levels, dict) else {}


def _mirrored(main: ModelStore, kept: ModelStore, enrolled: set[str]) -> bool:
    """Whether the no-CMVN model holds every speaker of the main one from the same frames (an enrollment
    interrupted between the two models leaves a speaker missing there, or stale)."""
    for name in enrolled:
        try:
            frames = [float(store.load_speaker_stats(name).zeroth.sum()) for store in (main, kept)]
        except StoreError:  # missing there, or unreadable
            return False
        if abs(frames[0] - frames[1]) > 1e-3 * max(frames[0], 1.0):
            return False
    return True


def _measure(
    kept: ModelStore, speakers: Mapping[str, Sequence[PathLike]], *, skip_bad: bool, **options
) -> dict[str, list[list[float]]]:
    """Each speaker's recordings as ``[level, seconds, other band]``, on the no-CMVN model's features (c0:
    the log energy, unnormalised)."""
    files_of = {name: find_audio_files(list(paths)) for name, paths in speakers.items()}
    unique = list(dict.fromkeys(file for files in files_of.values() for file in files))
    wideband_pool = int(kept.feature_config["sample_rate"]) >= WIDEBAND_RATE_HZ
    recognizer = Recognizer(kept)
    extracted = recognizer.extract(unique, skip_bad=skip_bad, **options)
    shift_s = recognizer.feature_config.frame_shift / recognizer.feature_config.sample_rate
    record_of = {
        path: [
            float(np.mean(frames[:, 0])),
            frames.shape[0] * shift_s,
            float(is_wideband(path) != wideband_pool),
        ]
        for path, frames in zip(extracted.paths, extracted, strict=True)
    }
    return {
        name: [record_of[file] for file in files if file in record_of] for name, files in files_of.items()
    }


def _choose(records: Mapping[str, Sequence[Sequence[float]]]) -> LevelChoice:
    """The choice the recordings' ``[level, seconds, other band]`` call for."""
    everything = [record for values in records.values() for record in values]
    consistency = level_consistency(
        {name: [record[0] for record in values] for name, values in records.items()}
    )
    other_band = 2 * sum(record[2] > 0 for record in everything) > len(everything)
    median_s = float(np.median([record[1] for record in everything])) if everything else None
    short = median_s is not None and median_s <= SHORT_RECORDING_S
    return LevelChoice(
        kept=consistency is not None and consistency >= KEEP_LEVEL_CONSISTENCY and (short or not other_band),
        consistency=consistency,
        n_speakers=sum(1 for values in records.values() if values),
        n_recordings=len(everything),
        other_band=other_band,
        median_s=None if median_s is None else round(median_s, 2),
        pending=consistency is None and len(records) < _WAIT_SPEAKERS,
    )


def _switch(model_dir: Path, kept_dir: Path) -> None:
    """Make ``model_dir`` the no-CMVN model: its UBM, settings, cohort and speakers, then its companion
    (idempotent)."""
    kept = ModelStore.open(kept_dir)
    configs = {name: kept.manifest[name] for name in ("feature_config", "ubm_config", "enroll_config")}
    store = ModelStore.create(
        model_dir, **configs, score_config=kept.manifest["score_config"], ubm=kept.load_ubm(), overwrite=True
    )
    if (kept_dir / COHORT_FILE).is_file():
        store.save_cohort(kept.load_cohort())
    if names := kept.speakers():  # enrolled in both while the choice waited
        with store.bank_batch(names):
            for name in names:
                kept.load_speaker(name)  # reads its cohort statistics
                store.save_speaker_stats(
                    name, kept.load_speaker_stats(name), cohort_stats=kept.cohort_stats.get(name)
                )
    for name in COMPANION_DIRS:  # the rename is the commit: a finished one is not redone
        if (kept_dir / name).is_dir():
            shutil.rmtree(model_dir / name, ignore_errors=True)
            os.rename(kept_dir / name, model_dir / name)
