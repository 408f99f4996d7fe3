"""The Python API behind every ``spkid`` command: train a UBM, enroll, identify, verify, score trial lists.

Each function takes paths, does the whole job and returns a small result object; the CLI only parses
arguments, calls one of these and prints. The feature settings chosen at :func:`train_ubm_from_audio` are
stored in the model and used by every later call, and the stored score normalisation is applied
automatically. Training is :mod:`spkid.recognizer.training`, identification, verification and trial
scoring :mod:`spkid.recognizer.identification`, evaluation of score files :mod:`spkid.metrics.evaluation`;
all are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spkid.audio import find_audio_files
from spkid.corpora.folders import list_speakers
from spkid.errors import DataError, StoreError
from spkid.features import SkippedFile
from spkid.metrics import evaluate, labelled_scores
from spkid.recognizer.identification import (
    Identification,
    IdentifyResult,
    Verification,
    VerifyResult,
    identify,
    verify,
)
from spkid.recognizer.recognizer import Recognizer
from spkid.recognizer.training import SKIPPED_LIST_FILE, TrainResult, train_ubm_from_audio
from spkid.recognizer.trial_scoring import ScoreResult, score_trials
from spkid.score import Calibrator
from spkid.store import ModelStore, validate_speaker_name

__all__ = [
    "SKIPPED_LIST_FILE",
    "EnrollResult",
    "Identification",
    "IdentifyResult",
    "ModelSummary",
    "ScoreResult",
    "TrainResult",
    "Verification",
    "VerifyResult",
    "calibrate_model",
    "describe_model",
    "enroll_from_audio",
    "evaluate",
    "identify",
    "rebuild_speaker_bank",
    "remove_speaker",
    "score_trials",
    "speakers_in_folder",
    "train_ubm_from_audio",
    "verify",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class EnrollResult:
    """Speakers enrolled (name -> number of recordings used) and the files skipped."""

    enrolled: dict[str, int]
    skipped: list[SkippedFile] = field(default_factory=list)


def speakers_in_folder(speakers_dir: PathLike) -> dict[str, list[Path]]:
    """``{sub-folder name: its audio files}`` for every non-hidden sub-folder of ``speakers_dir`` with audio.

    Raises
    ------
    DataError
        The folder is missing or no sub-folder holds audio.
    """
    return {
        name: [utterance.path for utterance in items] for name, items in list_speakers(speakers_dir).items()
    }


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
) -> EnrollResult:
    """MAP-adapt one model per speaker from its recordings (features with the stored settings) and store it.

    Speakers are saved one by one as they are done, so an interruption keeps those already enrolled.

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

    Raises
    ------
    StoreError
        No model, an invalid speaker name, an existing name without ``replace`` or ``add``, or with ``add``
        a speaker not enrolled or stored without statistics.
    """
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
    recognizer = Recognizer(store)
    unique_files = list(dict.fromkeys(file for files in files_of.values() for file in files))
    extracted = recognizer.extract(
        unique_files, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
    )
    features_of = dict(zip(extracted.paths, extracted, strict=True))
    enrolled: dict[str, int] = {}
    skipped = list(extracted.skipped)
    with store.bank_batch(list(files_of)):  # the bank is written once, at the end
        for name, files in files_of.items():
            usable = [features_of[file] for file in files if file in features_of]
            if not usable:
                skipped.append(
                    SkippedFile(Path(name), f"speaker {name!r}: no usable recordings, not enrolled")
                )
                continue
            stats = recognizer.ubm.accumulate(usable)
            if name in earlier:
                stats = stats + earlier[name]
            model = store.speaker_model(stats)
            store.save_speaker_stats(
                name, stats, replace=replace or add, cohort_stats=recognizer.cohort_statistics(model)
            )
            enrolled[name] = len(usable)
    if not enrolled:
        raise DataError(
            f"nothing enrolled: no speaker has a usable recording ({len(extracted.skipped)} files skipped)"
        )
    return EnrollResult(enrolled=enrolled, skipped=skipped)


@dataclass(frozen=True)
class ModelSummary:
    """What ``spkid list`` shows about a model."""

    model_dir: Path
    speakers: list[str]
    n_components: int
    n_features: int
    sample_rate: int
    normalization: str

    def to_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["model_dir"] = str(self.model_dir)
        return summary


def describe_model(model_dir: PathLike) -> ModelSummary:
    """Enrolled speakers and the main settings of a model directory."""
    store = ModelStore.open(model_dir)
    n_components, n_features = store.ubm_shape
    return ModelSummary(
        model_dir=Path(model_dir),
        speakers=store.speakers(),
        n_components=n_components,
        n_features=n_features,
        sample_rate=int(store.feature_config.get("sample_rate", 0)),
        normalization=str(store.score_config.get("normalization", "none")),
    )


def remove_speaker(model_dir: PathLike, name: str) -> None:
    """Delete an enrolled speaker (StoreError when the model or the speaker does not exist)."""
    ModelStore.open(model_dir).remove_speaker(name)


def rebuild_speaker_bank(model_dir: PathLike) -> int:
    """Rebuild a model's speaker bank from its speaker files; returns the number of speakers in it.

    Examples
    --------
    >>> from spkid.recognizer import rebuild_speaker_bank
    >>> rebuild_speaker_bank("no/such/model")
    Traceback (most recent call last):
    spkid.errors.StoreError: no model at no/such/model; run spkid train-ubm first
    """
    return ModelStore.open(model_dir).rebuild_bank()


def calibrate_model(
    model_dir: PathLike, scores: PathLike, trials: PathLike | None = None, *, p_effective: float = 0.5
) -> Calibrator:
    """Fit a linear calibration on a labelled score file and store it in the model.

    From then on :func:`identify` and :func:`verify` report calibrated LLRs and decide at the Bayes
    threshold (p_target 0.01) unless a threshold is given. Fit it on scores the model itself produced
    (``spkid score``) on development trials, not on the trials you evaluate.

    Raises
    ------
    StoreError
        No model. DataError: unlabelled or one-sided scores.
    """
    store = ModelStore.open(model_dir)
    target, nontarget = labelled_scores(scores, trials)
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    calibrator = Calibrator(p_effective).fit(np.concatenate([target, nontarget]), labels)
    store.save_calibration(
        {"scale": calibrator.scale_, "offset": calibrator.offset_, "p_effective": calibrator.p_effective}
    )
    return calibrator
