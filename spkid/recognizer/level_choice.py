"""``features.cmvn: auto``: whether a model keeps the recordings' loudness, chosen from its enrollment.

A recording's level (the mean of c0, its log energy) is the speaker where each speaker's recordings keep a
level (voice, device, distance), and noise where every recording has a gain of its own: no fixed
normalisation is right for both (``bench_accuracy.py``). So with ``auto``, ``train-ubm`` trains two models
on the pool: the main one ``adaptive_level`` (loudness removed) and, in :data:`LEVEL_KEPT_DIR`, one with no
CMVN (loudness kept), each with its band companion. Once 3 speakers with two recordings are enrolled, the
enrollment measures how consistent the level is within them and applies the rule of
:mod:`spkid.recognizer.level_rule`: the no-CMVN model is kept when the share of the level variance between
speakers is high, unless most recordings have another band than the UBM pool's and are long; under 10
speakers only once the share's confidence interval lies on one side of the threshold. The other model is
deleted; later commands use the model left. Until then speakers go into both models (the main one answers
meanwhile), their levels kept in :data:`LEVELS_FILE`, so the choice is made on all of them.
From 10 speakers the share decides (unmeasurable: the loudness is removed, the safer side). The switch goes
through :meth:`spkid.store.ModelStore.create` (crash-safe); a marker written before it starts lets the next
enrollment finish an interrupted switch.

When the choice is made by the enrollment of the model's first speakers (all of them at once, as a recipe or a
folder of speakers gives them), :mod:`spkid.recognizer.channel_rule` then checks whether removing each
recording's channel harder identifies their recordings clearly better; if so the main model is kept, with
``cmvn_relevance_frames`` 300 for it and its companion (their UBMs as trained), whatever the level said.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from spkid.atomic import atomic_write_bytes
from spkid.audio import find_audio_files
from spkid.errors import StoreError
from spkid.recognizer.bands import COMPANION_DIRS, WIDEBAND_RATE_HZ, drop_from_companion, is_wideband
from spkid.recognizer.channel_choice import channel_check, remove_channel_harder
from spkid.recognizer.level_rule import LevelChoice, choose_level
from spkid.recognizer.recognizer import Recognizer
from spkid.store import COHORT_FILE, MANIFEST_FILE, ModelStore
from spkid.store.layout import write_error

logger = logging.getLogger(__name__)

__all__ = [
    "LEVELS_FILE",
    "LEVEL_CHOICE_FILE",
    "LEVEL_KEPT_DIR",
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
#: The levels of the speakers enrolled while the choice waits, in LEVEL_KEPT_DIR (JSON).
LEVELS_FILE = "levels.json"
_SWITCHING = ".switching"  # marker in LEVEL_KEPT_DIR: the level is kept, the switch has started
ENROLLING_LOCK = ".enrolling"  # in LEVEL_KEPT_DIR: enrollments while the choice waits run one at a time
_LEFTOVER = ".level-kept-removed"


def settle_level_choice(
    model_dir: PathLike,
    speakers: Mapping[str, Sequence[PathLike]],
    *,
    add: bool = False,
    final: bool = False,
    skip_bad: bool = False,
    n_jobs: int = 1,
    cache_dir: PathLike | None = None,
) -> LevelChoice | None:
    """Before an enrollment: choose between the two models of a ``cmvn: auto`` directory, keep one.

    None for any other model. While the levels (with those enrolled while it waited) leave it unclear the
    choice is ``pending``: the caller enrolls into both models, then calls :func:`record_levels`. With no
    ``speakers`` and ``final``, after an enrollment no other will follow (a recipe's): the choice is made.

    Parameters
    ----------
    model_dir : path
    speakers : mapping of str to sequence of path
        The speakers about to be enrolled (their files or folders).
    add : bool
        The recordings add to speakers enrolled before (``enroll --add``).
    final : bool
        Choose now (:func:`~spkid.recognizer.level_rule.choose_level`).
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
    checked = Recognizer(main)  # settings this spkid cannot use stop the enrollment here, before any choice
    try:
        kept = ModelStore.open(kept_dir)
    except StoreError as exc:
        raise StoreError(f"{exc}; delete {kept_dir} to settle features.cmvn auto on the main model") from None
    enrolled = set(main.speakers())
    earlier = _read_levels(kept_dir).get("speakers", {})
    redone = set() if add else set(speakers)  # re-enrolled in both: a copy missing there does not matter
    mirrored = _mirrored(main, kept, enrolled - redone)  # else lacking in the no-CMVN model: main one stays
    options = {"skip_bad": skip_bad, "n_jobs": n_jobs, "cache_dir": cache_dir}
    unnormalised = Recognizer(kept) if mirrored and speakers else None
    measured, features = _measure(unnormalised, speakers, **options) if unnormalised else ({}, {})
    records = {name: earlier[name] for name in enrolled & set(earlier)}
    for name, new in measured.items():
        records[name] = records.get(name, []) + new if add else new
    choice = choose_level(records, final=final) if mirrored else None
    if choice is not None and not choice.pending and not enrolled and unnormalised:  # the first speakers
        choice = channel_check(checked, unnormalised, choice, features, **options)
    try:
        if choice is None or not choice.pending:
            _apply(model_dir, kept_dir, choice)
    except OSError as exc:
        raise write_error(model_dir, exc) from None
    return choice if choice is None or not choice.pending else dataclasses.replace(choice, measured=measured)


def record_levels(model_dir: PathLike, measured: Mapping[str, Sequence], add: bool = False) -> None:
    """After a ``pending`` enrollment: keep the levels ``measured`` (``LevelChoice.measured``) of the speakers
    it enrolled in both models for the enrollment that will choose (unwritable: they will not count)."""
    kept_dir = Path(model_dir) / LEVEL_KEPT_DIR
    earlier = _read_levels(kept_dir).get("speakers", {})
    for name, new in measured.items():
        earlier[name] = earlier.get(name, []) + list(new) if add else list(new)
    try:
        atomic_write_bytes(kept_dir / LEVELS_FILE, json.dumps({"speakers": earlier}).encode())
    except OSError as exc:
        logger.warning("%s: the levels of %s were not kept (%s)", kept_dir, ", ".join(measured), exc.strerror)


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
        record = json.dumps({k: v for k, v in dataclasses.asdict(choice).items() if k != "measured"}).encode()
        if choice.relevance_frames is not None:
            remove_channel_harder(model_dir, choice.relevance_frames)
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
    kept: Recognizer, speakers: Mapping[str, Sequence[PathLike]], *, skip_bad: bool, **options
) -> tuple[dict[str, list[list[float]]], dict[str, dict[Path, np.ndarray]]]:
    """Each speaker's recordings as ``[level, seconds, other band]``, on the no-CMVN model's features (c0:
    the log energy, unnormalised), and those features (speaker -> file -> frames)."""
    files_of = {name: find_audio_files(list(paths)) for name, paths in speakers.items()}
    unique = list(dict.fromkeys(file for files in files_of.values() for file in files))
    config = kept.feature_config
    wideband_pool = config.sample_rate >= WIDEBAND_RATE_HZ
    extracted = kept.extract(unique, skip_bad=skip_bad, **options)
    frames_of = dict(zip(extracted.paths, extracted, strict=True))
    shift_s = config.frame_shift / config.sample_rate
    record_of = {
        path: [
            float(np.mean(frames[:, 0])),
            frames.shape[0] * shift_s,
            float(is_wideband(path) != wideband_pool),
        ]
        for path, frames in frames_of.items()
    }
    records = {
        name: [record_of[file] for file in files if file in record_of] for name, files in files_of.items()
    }
    return records, {
        name: {file: frames_of[file] for file in files if file in frames_of}
        for name, files in files_of.items()
    }


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
