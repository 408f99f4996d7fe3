"""Enrolling speakers from audio: whole folders of speakers, named speakers, and sessions added to one.

:func:`enroll_from_audio` is what ``spkid enroll`` calls (a folder of speakers is read by
:func:`spkid.recognizer.speaker_folders.speakers_in_folder`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spkid.audio import find_audio_files
from spkid.errors import DataError, SpkidError, StoreError
from spkid.features import SkippedFile
from spkid.gmm import SufficientStats
from spkid.recognizer.bands import Dropped, all_in_band, companion_of, drop_from_companion
from spkid.recognizer.batch import SpeakerOutcome, adapt_speaker, enroll_task, run_tasks, wants_workers
from spkid.recognizer.level_choice import (
    LEVEL_KEPT_DIR,
    LevelChoice,
    record_levels,
    resume_level_choice,
    settle_level_choice,
)
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.waiting_lock import one_at_a_time_while_waiting
from spkid.store import ModelStore, validate_speaker_name

__all__ = ["EnrollResult", "enroll_from_audio"]

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)  # per-step detail, shown by spkid --verbose


@dataclass(frozen=True)
class EnrollResult:
    """Speakers enrolled (name -> number of recordings used), the files skipped, and what an enrollment
    of a ``cmvn: auto`` model chose, or that the choice waits (:mod:`spkid.recognizer.level_choice`).

    Examples
    --------
    >>> from spkid.recognizer import EnrollResult
    >>> result = EnrollResult(enrolled={"spk01": 2, "spk02": 3})
    >>> sum(result.enrolled.values()), result.skipped, result.level_choice
    (5, [], None)
    """

    enrolled: dict[str, int]
    skipped: list[SkippedFile] = field(default_factory=list)
    level_choice: LevelChoice | None = None


@one_at_a_time_while_waiting
def enroll_from_audio(
    model_dir: PathLike,
    speakers: Mapping[str, Sequence[PathLike]],
    *,
    replace: bool = False,
    add: bool = False,
    skip_bad: bool = False,
    n_jobs: int = 1,
    progress: bool = False,
    cache_dir: PathLike | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    final: bool = False,
) -> EnrollResult:
    """MAP-adapt one model per speaker from its recordings (features with the stored settings) and store it.

    Speakers are saved one by one as they are done, so an interruption keeps those already enrolled. A model
    with a companion (``features.bands: auto``) enrolls a speaker there too when all its recordings have the
    companion's band, wideband or narrowband (:mod:`spkid.recognizer.bands`). A ``cmvn: auto`` model keeps
    one of its two models once enough speakers with two recordings are enrolled (3 to 10), both until then,
    when an unusable file stops the enrollment before any speaker (:mod:`spkid.recognizer.level_choice`).

    Parameters
    ----------
    model_dir : path
    speakers : mapping of str to sequence of path
        Speaker name -> audio files/folders.
    replace : bool
        Re-enroll names that already exist (otherwise that is an error, raised before any work).
    add : bool
        Add the recordings to speakers already enrolled: the result equals enrolling all their recordings
        at once (the stored MAP statistics grow). Speakers enrolled by an spkid before format 3 kept no
        statistics and are refused (re-enroll them with ``replace``).
    skip_bad : bool
        Skip unusable files; a speaker left with no usable file is skipped too (fails if none remains).
    n_jobs : int
        Worker processes (-1: all cores). With several speakers per worker, each speaker is extracted and
        MAP-adapted in a joblib worker process; else only feature extraction is spread.
    backend, scheduler
        ``"local"`` (this machine, as ``n_jobs`` says), ``"joblib"``, or ``"dask"``: speakers adapted on the
        Dask cluster at ``scheduler`` (else a local one of ``n_jobs`` workers); the model directory must be
        on a filesystem the workers share. The main process saves each speaker as it arrives and writes
        the bank once, at the end; the stored speakers equal a serial enrollment's.
    final : bool
        No other speakers will follow (``spkid enroll --final``): a ``cmvn: auto`` choice is made now, on
        these speakers and any enrolled while it waited, where it would wait under 10 speakers.

    Raises
    ------
    StoreError
        No model, an invalid speaker name, an existing name without ``replace`` or ``add``, or with ``add``
        a speaker not enrolled or stored without statistics.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> result = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> result.enrolled, result.skipped
    ({'spk01': 2, 'spk02': 2, 'spk03': 2}, [])
    >>> tmp.cleanup()
    """
    resumed = resume_level_choice(model_dir)  # a cmvn: auto switch an interrupted enrollment left half done
    store = ModelStore.open(model_dir)
    if not speakers:
        raise DataError("no speakers to enroll")
    if add and replace:
        raise DataError(
            "--add and --replace exclude each other: --add grows a speaker, --replace restarts it"
        )
    existing = set(store.speakers())
    files_of: dict[str, list[Path]] = {}
    earlier = {}
    for name, paths in speakers.items():
        validate_speaker_name(name)
        if add:
            if name not in existing:
                raise StoreError(
                    f"speaker {name!r} is not enrolled in {store.path}, so --add has nothing to add to; "
                    "enroll it without --add"
                )
            earlier[name] = store.load_speaker_stats(name)
        elif name in existing and not replace:
            raise StoreError(
                f"speaker {name!r} is already enrolled in {store.path}; pass --replace to re-enroll, "
                "or --add to add these recordings"
            )
        files_of[name] = find_audio_files(list(paths))
    options = {"skip_bad": skip_bad, "n_jobs": n_jobs, "cache_dir": cache_dir}
    choice = settle_level_choice(store.path, files_of, add=add, final=final, **options) or resumed
    store = store if choice is None or choice.pending else ModelStore.open(store.path)  # maybe no-CMVN now
    companion = companion_of(store.path)
    in_companion: dict[str, list[Path]] = {}
    dropped = Dropped()
    if companion is not None:  # a speaker is in the companion while all its recordings have its band
        companion_store = ModelStore.open(companion)
        in_companion = {
            name: files
            for name, files in files_of.items()
            if all_in_band(files, companion) and (not add or name in companion_store)
        }
        # out before the main enrollment: an interruption leaves a speaker missing there, not stale; put back
        # when the main enrollment fails (bad input loses nothing) or skips the speaker. --add keeps a speaker
        # the companion holds (its statistics are needed there): interrupted between the two models, the
        # companion's copy lacks the added recordings until the next --add or re-enrollment
        dropped = drop_from_companion(
            store.path, [name for name in files_of if name not in in_companion or not add]
        )
    options |= {"backend": backend, "scheduler": scheduler}
    try:
        enrolled, skipped = _enroll_main(
            store, files_of, earlier, replace=replace, add=add, progress=progress, **options
        )
    except BaseException:  # back only where the main model's copy is still the one it had
        dropped.put_back(where_main_unchanged=True)
        raise
    dropped.put_back([name for name in dropped.kept if name not in enrolled])
    in_companion = {name: files for name, files in in_companion.items() if name in enrolled}
    if companion is not None and in_companion:
        enroll_from_audio(companion, in_companion, add=add, progress=progress, **options)
    if choice is not None and choice.pending:  # into the no-CMVN model too, for the enrollment that chooses
        kept_dir = store.path / LEVEL_KEPT_DIR
        both = {name: files_of[name] for name in enrolled if not add or name in ModelStore.open(kept_dir)}
        if both:
            enroll_from_audio(kept_dir, both, replace=not add, add=add, **options)
        record_levels(
            store.path, {name: choice.measured[name] for name in both if name in choice.measured}, add
        )
    return EnrollResult(enrolled=enrolled, skipped=skipped, level_choice=choice)


def _enroll_main(
    store: ModelStore,
    files_of: dict[str, list[Path]],
    earlier: dict[str, SufficientStats],
    *,
    replace: bool,
    add: bool,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
    backend: str,
    scheduler: str | None,
) -> tuple[dict[str, int], list[SkippedFile]]:
    """The speakers enrolled in ``store`` itself (its main model), each with its count of usable files, and
    the files skipped."""
    recognizer = Recognizer(store)
    if wants_workers(backend, n_jobs, len(files_of)):
        enrolled, skipped = _enroll_on_workers(
            store,
            [(name, files, earlier.get(name)) for name, files in files_of.items()],
            replace=replace or add,
            backend=backend,
            scheduler=scheduler,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            cache_dir=cache_dir,
        )
    else:
        enrolled, skipped = _enroll_here(
            recognizer,
            files_of,
            earlier,
            replace=replace or add,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            progress=progress,
            cache_dir=cache_dir,
        )
    if not enrolled:
        n_files = len(skipped) - len(files_of)  # one entry per speaker left without a usable file
        raise DataError(f"nothing enrolled: no speaker has a usable recording ({n_files} files skipped)")
    return enrolled, skipped


def _enroll_here(
    recognizer: Recognizer,
    files_of: dict[str, list[Path]],
    earlier: dict[str, SufficientStats],
    *,
    replace: bool,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
    cache_dir: PathLike | None,
) -> tuple[dict[str, int], list[SkippedFile]]:
    """Every speaker in this process (feature extraction over ``n_jobs`` processes); saved one by one."""
    store = recognizer.store
    unique_files = list(dict.fromkeys(file for files in files_of.values() for file in files))
    started = time.perf_counter()
    extracted = recognizer.extract(
        unique_files, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    logger.info(
        "features of %d files in %.2f s (%d skipped)",
        len(extracted),
        time.perf_counter() - started,
        len(extracted.skipped),
    )
    features_of = dict(zip(extracted.paths, extracted, strict=True))
    enrolled: dict[str, int] = {}
    skipped = list(extracted.skipped)
    with store.bank_batch(list(files_of)):  # the bank is written once, at the end
        for name, files in files_of.items():
            usable = [features_of[file] for file in files if file in features_of]
            if not usable:
                skipped.append(_no_usable(name))
                continue
            started = time.perf_counter()
            stats, cohort_stats = adapt_speaker(recognizer, usable, earlier.get(name))
            store.save_speaker_stats(name, stats, replace=replace, cohort_stats=cohort_stats)
            enrolled[name] = len(usable)
            logger.info(
                "speaker %r: %s from %d recordings (%d frames), stored in %.2f s",
                name,
                "statistics added" if name in earlier else "MAP-adapted",
                len(usable),
                sum(len(frames) for frames in usable),
                time.perf_counter() - started,
            )
    return enrolled, skipped


def _no_usable(name: str) -> SkippedFile:
    return SkippedFile(Path(name), f"speaker {name!r}: no usable recordings, not enrolled")


def _enroll_on_workers(
    store: ModelStore,
    items: list[tuple[str, list[Path], SufficientStats | None]],
    *,
    replace: bool,
    backend: str,
    scheduler: str | None,
    n_jobs: int,
    skip_bad: bool,
    cache_dir: PathLike | None,
) -> tuple[dict[str, int], list[SkippedFile]]:
    """Speakers adapted on workers and saved here as each arrives (a crash keeps those saved); the bank is
    written once, at the end. Results in input order; the first error (in input order) is raised after
    every speaker that finished is saved."""
    outcomes: dict[int, SpeakerOutcome | SpkidError] = {}
    with store.bank_batch([name for name, _, _ in items]):
        for index, outcome in run_tasks(
            enroll_task,
            items,
            backend=backend,
            scheduler=scheduler,
            n_jobs=n_jobs,
            model_dir=str(store.path),
            skip_bad=skip_bad,
            cache_dir=None if cache_dir is None else str(cache_dir),
        ):
            outcomes[index] = outcome
            if isinstance(outcome, SpeakerOutcome) and outcome.stats is not None:
                store.save_speaker_stats(
                    outcome.name, outcome.stats, replace=replace, cohort_stats=outcome.cohort_stats
                )
    enrolled: dict[str, int] = {}
    skipped: list[SkippedFile] = []
    for index in range(len(items)):
        outcome = outcomes[index]
        if isinstance(outcome, SpkidError):
            raise outcome
        skipped.extend(outcome.skipped)
        if outcome.stats is None:
            skipped.append(_no_usable(outcome.name))
        else:
            enrolled[outcome.name] = outcome.n_used
    return enrolled, skipped
