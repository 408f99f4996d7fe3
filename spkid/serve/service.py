"""The resident model behind ``spkid serve``: identify, verify, enroll, remove and list, safe across threads.

:class:`SpeakerService` keeps a :class:`~spkid.recognizer.Recognizer`, the speaker models and their scorer
in memory, and notices enrollments and removals made by anyone (the service or the CLI) from the model
directory's modification times, reloading before the next request. At most :func:`spkid.blas.cpu_budget`
requests compute at once, and they share the CPUs between them (numba threads per request = budget /
requests computing), so concurrent requests never run more busy threads than there are CPUs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from spkid.audio import audio_info
from spkid.blas import cpu_budget, thread_limits, worker_threads
from spkid.errors import AudioError, SpkidError, StoreError
from spkid.recognizer import (
    Identification,
    Recognizer,
    Verification,
    describe_model,
    enroll_from_audio,
    remove_speaker,
)
from spkid.score import Scorer
from spkid.store.layout import CALIBRATION_FILE, COHORT_FILE, MANIFEST_FILE, SPEAKERS_DIR

__all__ = ["NotFoundError", "SpeakerService", "TooLargeError", "Upload"]

Result = TypeVar("Result")


class NotFoundError(StoreError):
    """A speaker the request names is not enrolled (HTTP 404).

    Examples
    --------
    >>> from spkid.serve.app import status_of
    >>> status_of(NotFoundError("speaker 'nobody' is not enrolled"))
    404
    """


class TooLargeError(SpkidError):
    """A request or a recording is over the service's limits (HTTP 413).

    Examples
    --------
    >>> from spkid.serve.app import status_of
    >>> status_of(TooLargeError("call.wav: 300.0 s of audio, over the limit of 120 s"))
    413
    """


@dataclass(frozen=True)
class Upload:
    """An audio recording sent with a request: its file name (as the client gave it) and its bytes.

    Examples
    --------
    >>> upload = Upload("call.wav", b"RIFF...")
    >>> upload.filename, len(upload.data)
    ('call.wav', 7)
    """

    filename: str
    data: bytes


@dataclass
class _Snapshot:
    """The model as loaded at one state of the directory."""

    stamp: tuple
    recognizer: Recognizer
    names: list[str]
    scorer: Scorer | None
    model_stats: np.ndarray | None
    thresholds: np.ndarray


class SpeakerService:
    """A model directory held in memory for many requests.

    Parameters
    ----------
    model_dir : path
    allow_paths : bool
        Whether requests may name audio files on the server instead of uploading them.
    max_duration_s : float
        Recordings longer than this are refused with :class:`TooLargeError`.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(f"{tmp.name}/model", {name: files[:2] for name, files in corpus.items()})
    >>> service = SpeakerService(f"{tmp.name}/model", allow_paths=True)
    >>> service.health()["speakers"]
    2
    >>> [found.speaker for found in service.identify(paths=[str(corpus["spk01"][2])])]
    ['spk01']
    >>> tmp.cleanup()
    """

    def __init__(
        self, model_dir: str | os.PathLike[str], *, allow_paths: bool = False, max_duration_s: float = 120.0
    ):
        self.model_dir = Path(model_dir)
        self.allow_paths = allow_paths
        self.max_duration_s = max_duration_s
        self.budget = cpu_budget()
        self._gate = threading.BoundedSemaphore(self.budget)
        self._reload_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._computing = 0
        self._snapshot: _Snapshot | None = None
        self.snapshot()  # fail now, not at the first request, when the model is unusable

    # ------------------------------------------------------------------------------------------ model
    def _stamp(self) -> tuple:
        """Modification times of what enroll, remove and calibrate change (cheap: a few stat calls)."""
        stamp = []
        for name in (MANIFEST_FILE, SPEAKERS_DIR, COHORT_FILE, CALIBRATION_FILE):
            try:
                status = os.stat(self.model_dir / name)
                stamp.append((status.st_mtime_ns, status.st_size, status.st_ino))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def snapshot(self) -> _Snapshot:
        """The loaded model, reloaded first when the directory changed since it was loaded."""
        stamp = self._stamp()
        current = self._snapshot
        if current is not None and current.stamp == stamp:
            return current
        with self._reload_lock:
            if self._snapshot is not None and self._snapshot.stamp == stamp:
                return self._snapshot
            recognizer = Recognizer.open(self.model_dir)
            names = recognizer.store.speakers()
            scorer = model_stats = None
            thresholds = np.zeros(0)
            if names:
                models = recognizer.speakers(names)
                scorer = Scorer(recognizer.ubm, models, top_c=recognizer.score_config.top_c)
                model_stats = recognizer.normalizer.model_statistics(scorer)
                thresholds = recognizer.default_thresholds(models)
            self._snapshot = _Snapshot(stamp, recognizer, names, scorer, model_stats, thresholds)
            return self._snapshot

    # ------------------------------------------------------------------------------------------ compute
    @contextmanager
    def _computing_slot(self) -> Iterator[None]:
        """At most ``budget`` requests compute at once; each gets its share of the CPUs."""
        with self._gate:
            with self._count_lock:
                self._computing += 1
                share = worker_threads(self._computing, budget=self.budget)
            try:
                with thread_limits(share):
                    yield
            finally:
                with self._count_lock:
                    self._computing -= 1

    @contextmanager
    def _audio_files(
        self, uploads: Sequence[Upload], paths: Sequence[str]
    ) -> Iterator[list[tuple[str, Path]]]:
        """``(name shown, file)`` of every recording: uploads written to a private folder, paths checked."""
        if paths and not self.allow_paths:
            raise SpkidError("paths on the server are not accepted: start spkid serve with --allow-paths")
        if not uploads and not paths:
            raise SpkidError("no recording: upload an audio file (field 'audio')")
        with tempfile.TemporaryDirectory(prefix="spkid-serve-") as folder:
            files = []
            for index, upload in enumerate(uploads):
                name = Path(upload.filename or f"upload-{index}").name or f"upload-{index}"
                target = Path(folder) / f"{index}" / name
                target.parent.mkdir()
                target.write_bytes(upload.data)
                files.append((name, target))
            files += [(path, Path(path)) for path in paths]
            try:
                for shown, file in files:
                    info = audio_info(file)
                    if info.duration_s > self.max_duration_s:
                        raise TooLargeError(
                            f"{shown}: {info.duration_s:.1f} s of audio, over the limit of "
                            f"{self.max_duration_s:g} s (spkid serve --max-duration)"
                        )
                yield files
            except AudioError as exc:  # name the upload as the client sent it, not our temporary copy
                shown = dict((str(file), shown) for shown, file in files).get(str(exc.path), str(exc.path))
                raise AudioError(shown, exc.reason) from None

    def _scores(
        self, uploads: Sequence[Upload], paths: Sequence[str]
    ) -> tuple[_Snapshot, list[str], np.ndarray]:
        snapshot = self.snapshot()
        if snapshot.scorer is None:
            raise NotFoundError(f"{self.model_dir}: no speakers enrolled; run spkid enroll first")
        with self._audio_files(uploads, paths) as files, self._computing_slot():
            recognizer = snapshot.recognizer
            features = recognizer.extract([file for _, file in files])
            normalizer = recognizer.normalizer
            raw = snapshot.scorer.llr_many(list(features))
            scores = normalizer.apply(raw, snapshot.model_stats, normalizer.test_statistics(list(features)))
            return snapshot, [shown for shown, _ in files], recognizer.calibrated(scores)

    # ------------------------------------------------------------------------------------------ requests
    def identify(
        self,
        uploads: Sequence[Upload] = (),
        paths: Sequence[str] = (),
        *,
        top_k: int = 5,
        open_set: bool = False,
        threshold: float | None = None,
    ) -> list[Identification]:
        """Rank the enrolled speakers for each recording, as ``spkid identify`` does."""
        if top_k < 0:
            raise SpkidError(f"top_k={top_k}: must be 0 (all speakers) or more")
        snapshot, shown, scores = self._scores(uploads, paths)
        names = snapshot.names
        limit = len(names) if top_k == 0 else min(top_k, len(names))
        cutoffs = snapshot.thresholds if threshold is None else np.full(len(names), float(threshold))
        results = []
        for recording, row in zip(shown, scores, strict=True):
            order = np.argsort(-row, kind="stable")
            cutoff = float(cutoffs[order[0]]) if open_set else None
            accepted = cutoff is None or bool(row[order[0]] >= cutoff)
            ranked = [(names[i], float(row[i])) for i in order[:limit]]
            best = names[order[0]] if accepted else None
            results.append(Identification(recording, best, ranked, accepted=accepted, threshold=cutoff))
        return results

    def verify(
        self,
        speaker: str,
        uploads: Sequence[Upload] = (),
        paths: Sequence[str] = (),
        *,
        threshold: float | None = None,
    ) -> list[Verification]:
        """Accept or reject each recording as ``speaker``, as ``spkid verify`` does."""
        snapshot = self.snapshot()
        if speaker not in snapshot.names:
            self._not_found(lambda: snapshot.recognizer.speakers([speaker]))
        snapshot, shown, scores = self._scores(uploads, paths)
        column = snapshot.names.index(speaker)
        cutoff = float(snapshot.thresholds[column]) if threshold is None else float(threshold)
        return [
            Verification(recording, speaker, float(value), cutoff, bool(value >= cutoff))
            for recording, value in zip(shown, scores[:, column], strict=True)
        ]

    def enroll(
        self,
        speaker: str,
        uploads: Sequence[Upload] = (),
        paths: Sequence[str] = (),
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Enroll ``speaker`` from the recordings (``spkid enroll --speaker``); seen by the next request."""
        with self._audio_files(uploads, paths) as files, self._computing_slot():
            result = enroll_from_audio(
                self.model_dir, {speaker: [file for _, file in files]}, replace=replace
            )
        return {"speaker": speaker, "files": result.enrolled.get(speaker, 0)}

    def remove(self, speaker: str) -> dict[str, Any]:
        """Remove an enrolled speaker (``spkid remove``)."""
        self._not_found(lambda: remove_speaker(self.model_dir, speaker))
        return {"removed": speaker}

    def speakers(self) -> dict[str, Any]:
        """The model summary of ``spkid list --json``."""
        return describe_model(self.model_dir).to_dict()

    def health(self) -> dict[str, Any]:
        """Whether the model loads, and how many speakers it holds."""
        return {"status": "ok", "speakers": len(self.snapshot().names), "cpu_budget": self.budget}

    @staticmethod
    def _not_found(call: Callable[[], Result]) -> Result:
        try:
            return call()
        except StoreError as exc:
            if "is not enrolled" in str(exc):
                raise NotFoundError(str(exc)) from None
            raise
