"""Which of a model's two front-ends scores a comparison (``features.bands: auto``, :mod:`.bands`).

A recording is scored by the companion (wideband or narrowband) when it has the companion's band itself and
every speaker it is compared with (identification), or the claimed speaker (verification), is in the
companion, and both models hold the same calibration; otherwise by the main model. Identification,
verification, trial scoring, ``spkid run`` and ``spkid serve`` ask these functions, then join the parts in
input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence, Set
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from spkid.metrics import Trial
from spkid.recognizer.bands import companion_of, in_band, split_by_band
from spkid.recognizer.recognizer import Recognizer
from spkid.score import ScoreConfig
from spkid.store import SPEAKERS_DIR, ModelStore

__all__ = [
    "calibrations_agree",
    "companion_covers",
    "in_input_order",
    "join_routed",
    "recordings_of",
    "route_recordings",
    "route_trials",
    "routed_score_rows",
]

PathLike = str | os.PathLike[str]


class _HasRecording(Protocol):
    recording: str


class _RoutedResult(Protocol):
    results: list
    skipped: list
    kind: str


Result = TypeVar("Result", bound=_HasRecording)
Routed = TypeVar("Routed", bound=_RoutedResult)


def route_recordings(
    model_dir: PathLike, files: Sequence[Path], *, speaker: str | None = None
) -> list[tuple[Path, list[Path]]]:
    """Which model scores which recordings: ``[(model directory, its files), ...]``, the main model last.

    The companion takes the recordings of its band when it holds every enrolled speaker (identification) or
    ``speaker`` (verification), and both models hold the same calibration (:func:`calibrations_agree`);
    everything else goes to the main model. When the companion takes every recording, the main model is
    still opened, so a broken main model is the error it would be without a companion.

    Examples
    --------
    >>> route_recordings("model", [])
    [(PosixPath('model'), [])]
    """
    main = Path(model_dir)
    companion = companion_of(main)
    if companion is None or not files:
        return [(main, list(files))]
    main_store, companion_store = ModelStore.open(main), ModelStore.open(companion)
    if not calibrations_agree(main_store, companion_store):
        return [(main, list(files))]
    # speaker files compared by name: both stores name a speaker's file the same way (a listing, no parsing)
    wanted = None if speaker is None else companion_store.speaker_path(speaker).name
    if not companion_covers(_speaker_files(companion), lambda: _speaker_files(main), wanted):
        return [(main, list(files))]
    inside, other = split_by_band(files, companion)
    if not other:
        Recognizer(main_store)  # its settings checked as when it scores
    return [(model, part) for model, part in ((companion, inside), (main, other)) if part]


def calibrations_agree(main: PathLike | ModelStore, companion: PathLike | ModelStore) -> bool:
    """Whether the two models' scores are on one scale: both uncalibrated, or both holding one calibration.

    Either model is given by its directory or as an open store.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=2, duration_s=1.0)
    >>> config = load_config(None, ["ubm.n_components=4", "ubm.max_iter=1"])  # bands: auto, 16 kHz audio
    >>> model = Path(tmp.name, "model")
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> companion = companion_of(model)
    >>> calibrations_agree(model, companion)
    True
    >>> ModelStore.open(model).save_calibration({"scale": 2.0, "offset": -1.0, "p_effective": 0.5})
    >>> calibrations_agree(model, companion)
    False
    >>> tmp.cleanup()
    """
    main_store, companion_store = (
        model if isinstance(model, ModelStore) else ModelStore.open(model) for model in (main, companion)
    )
    return main_store.load_calibration() == companion_store.load_calibration()


def companion_covers(
    in_companion: Set[str], in_main: Callable[[], Set[str]], speaker: str | None = None
) -> bool:
    """Whether the companion holds ``speaker`` (verification), or, with None, every speaker of the main
    model (identification: one ranking stays on one scale); ``in_main`` is asked only then.

    Examples
    --------
    >>> companion_covers({"a"}, lambda: {"a", "b"}), companion_covers({"a"}, lambda: {"a", "b"}, "a")
    (False, True)
    >>> companion_covers(set(), set)
    False
    """
    if speaker is not None:
        return speaker in in_companion
    return bool(in_companion) and set(in_companion) == set(in_main())


def join_routed(files: Sequence[Path], parts: Sequence[Routed]) -> Routed:
    """Results of the parts :func:`route_recordings` made, as one: outcomes in the order of ``files``, the
    skipped files of every part, and what the scores are (the main model's: the last part).

    Examples
    --------
    >>> from spkid.recognizer.results import Verification, VerifyResult
    >>> parts = [VerifyResult([Verification("b.wav", "x", 1.0, 0.0, True)]),
    ...          VerifyResult([Verification("a.wav", "x", 0.5, 0.0, True)], kind="raw")]
    >>> joined = join_routed([Path("a.wav"), Path("b.wav")], parts)
    >>> [r.recording for r in joined.results], joined.kind
    (['a.wav', 'b.wav'], 'raw')
    """
    return type(parts[-1])(
        results=in_input_order(files, [outcome for part in parts for outcome in part.results]),
        skipped=[skipped for part in parts for skipped in part.skipped],
        kind=parts[-1].kind,
    )


def _speaker_files(model_dir: Path) -> set[str]:
    """Names of the speaker files of a model directory (one directory listing)."""
    try:
        return {name for name in os.listdir(model_dir / SPEAKERS_DIR) if name.endswith(".npz")}
    except FileNotFoundError:
        return set()


def in_input_order(files: Sequence[Path], results: Sequence[Result]) -> list[Result]:
    """``results`` (each with a ``recording`` path string) sorted into the order of ``files``.

    Examples
    --------
    >>> from spkid.recognizer.results import Verification
    >>> found = [Verification("b.wav", "x", 1.0, 0.0, True), Verification("a.wav", "x", 0.5, 0.0, True)]
    >>> [r.recording for r in in_input_order([Path("a.wav"), Path("b.wav")], found)]
    ['a.wav', 'b.wav']
    """
    position = {str(path): index for index, path in enumerate(files)}
    return sorted(results, key=lambda result: position.get(result.recording, len(position)))


def route_trials(
    model_dir: PathLike,
    trials: Sequence[Trial],
    enroll_recordings: Mapping[str, Sequence[Path]],
    test_recordings: Mapping[str, Path],
) -> list[tuple[Path, list[Trial]]]:
    """Which model scores which trials, in trial order within each: ``[(model directory, trials), ...]``.

    A trial goes to the companion when its test recording has the companion's band and its model side does
    too: an enrolled speaker the companion holds, or recordings (an on-the-fly model) all of its band. As for
    :func:`route_recordings`, the main model scores everything while the two calibrations differ.

    Examples
    --------
    >>> route_trials("model", [], {}, {})
    [(PosixPath('model'), [])]
    """
    main = Path(model_dir)
    companion = companion_of(main)
    if companion is None or not trials:
        return [(main, list(trials))]
    companion_store = ModelStore.open(companion)
    if not calibrations_agree(main, companion_store):
        return [(main, list(trials))]
    in_companion = set(companion_store.speakers())
    inside = {path: in_band(path, companion) for path in {*test_recordings.values()}}
    for paths in enroll_recordings.values():
        inside.update((path, in_band(path, companion)) for path in paths if path not in inside)

    def companion_trial(trial: Trial) -> bool:
        if not inside[test_recordings[trial.test]]:
            return False
        if trial.enroll in enroll_recordings:
            return all(inside[path] for path in enroll_recordings[trial.enroll])
        return trial.enroll in in_companion

    flags = [companion_trial(trial) for trial in trials]
    parts = (
        (companion, [trial for trial, flag in zip(trials, flags, strict=True) if flag]),
        (main, [trial for trial, flag in zip(trials, flags, strict=True) if not flag]),
    )
    return [(model, part) for model, part in parts if part]


def recordings_of(trials: Sequence[Trial], recordings: Mapping[str, Mapping]) -> dict[str, dict]:
    """The ``enroll_recordings`` and ``test_recordings`` that ``trials`` name, in the order of ``recordings``
    (so a part of the trials scores as it would with the whole).

    Examples
    --------
    >>> recordings = {"enroll_recordings": {"a": ["a.wav"], "b": ["b.wav"]},
    ...               "test_recordings": {"t1": "t1.wav", "t2": "t2.wav"}}
    >>> recordings_of([Trial("b", "t2")], recordings)
    {'enroll_recordings': {'b': ['b.wav']}, 'test_recordings': {'t2': 't2.wav'}}
    """
    enrolls, tests = {t.enroll for t in trials}, {t.test for t in trials}
    return {
        "enroll_recordings": {k: v for k, v in recordings["enroll_recordings"].items() if k in enrolls},
        "test_recordings": {k: v for k, v in recordings["test_recordings"].items() if k in tests},
    }


def routed_score_rows(
    model_dir: PathLike,
    paths: Sequence[Path],
    names: Sequence[str],
    *,
    score_config: ScoreConfig | None = None,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: PathLike | None = None,
) -> dict[Path, np.ndarray]:
    """Each recording's scores against the enrolled speakers ``names``, from the model that scores it
    (:func:`route_recordings`): ``{path: row of shape (len(names),)}``, no row for a file skipped as unusable.

    ``score_config`` replaces the stored scoring settings (None: the stored ones); the other options are
    :meth:`Recognizer.extract`'s.

    Examples
    --------
    >>> routed_score_rows("model", [], [])
    {}
    """
    rows: dict[Path, np.ndarray] = {}
    for scoring_dir, part in route_recordings(model_dir, paths):
        if not part:
            continue
        recognizer = Recognizer(ModelStore.open(scoring_dir), score_config=score_config)
        features = recognizer.extract(
            part, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress, cache_dir=cache_dir
        )
        if features:
            matrix = recognizer.score_matrix(recognizer.speakers(names), features, progress=progress)
            rows.update(zip(features.paths, matrix, strict=True))
    return rows
