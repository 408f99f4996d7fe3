"""The resident model behind ``spkid serve``: identify, verify, enroll, remove and list, safe across threads.

:class:`SpeakerService` keeps the model directory loaded (:class:`~spkid.serve.model.LoadedModel`: the
memory-mapped speaker bank, searched as ``spkid identify`` searches it) and notices enrollments and removals
made by anyone (the service or the CLI) from the model directory's modification times, reloading before the
next request. Requests share the :func:`spkid.blas.cpu_budget` CPUs: each computes on one it holds
(waiting when all are held), and scores on every CPU no other request is waiting for, so concurrent
requests never run more busy threads than there are CPUs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from spkid.audio import audio_info
from spkid.blas import cpu_budget, numba_threads
from spkid.errors import AudioError, SpkidError, StoreError
from spkid.recognizer import Identification, Verification, describe_model, enroll_from_audio, remove_speaker
from spkid.score import start_kernels
from spkid.serve.model import LoadedModel, directory_stamp

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
        self._cpus = threading.Condition()  # guards _free (CPUs of the budget no request holds), _queued
        self._free, self._queued = self.budget, 0
        self._reload_lock = threading.Lock()
        self._snapshot: LoadedModel | None = None
        self.snapshot()  # fail now, not at the first request, when the model is unusable
        start_kernels()  # and numba's runtime (~0.3 s) is not the first request's wait

    # ------------------------------------------------------------------------------------------ model
    def snapshot(self) -> LoadedModel:
        """The loaded model, reloaded first when the directory changed since it was loaded."""
        stamp = directory_stamp(self.model_dir)
        current = self._snapshot
        if current is not None and current.current(stamp):
            return current
        with self._reload_lock:
            if self._snapshot is not None and self._snapshot.current(directory_stamp(self.model_dir)):
                return self._snapshot
            self._snapshot = LoadedModel.load(self.model_dir)
            return self._snapshot

    # ------------------------------------------------------------------------------------------ compute
    @contextmanager
    def _computing_slot(self) -> Iterator[Callable[[], AbstractContextManager]]:
        """One CPU of the budget for the block (waiting for one when all are taken); the block's
        ``with widen():`` scores on every CPU no other request is waiting for."""
        with self._cpus:
            self._queued += 1
            try:
                self._cpus.wait_for(lambda: self._free > 0)
            finally:
                self._queued -= 1
            self._free -= 1
        held = [1]

        @contextmanager
        def widen() -> Iterator[None]:
            with self._cpus:
                if self._queued == 0:
                    held[0], self._free = held[0] + self._free, 0
            with numba_threads(held[0]):
                yield

        try:
            with numba_threads(1):
                yield widen
        finally:
            with self._cpus:
                self._free += held[0]
                self._cpus.notify_all()

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

    def _features(
        self,
        uploads: Sequence[Upload],
        paths: Sequence[str],
        score: Callable[[LoadedModel, list], list[Result]],
        *,
        speaker: str | None = None,
    ) -> tuple[list[str], list[Result]]:
        """``score(model, features)`` (one result per recording) of the recordings, each scored by the model
        the CLI would use (:meth:`LoadedModel.routes`), with the names they are shown by, in input order."""
        model = self.snapshot()
        if not model.names:
            raise NotFoundError(f"{self.model_dir}: no speakers enrolled; run spkid enroll first")
        with self._audio_files(uploads, paths) as files, self._computing_slot() as widen:
            results: dict[int, Result] = {}
            for scoring, indices in model.routes([file for _, file in files], speaker=speaker):
                features = list(scoring.recognizer.extract([files[i][1] for i in indices]))
                with widen():
                    results.update(zip(indices, score(scoring, features), strict=True))
            return [shown for shown, _ in files], [results[i] for i in range(len(files))]

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
        shown, ranked = self._features(
            uploads,
            paths,
            lambda model, features: model.identify(
                features, top_k=top_k, open_set=open_set, threshold=threshold
            ),
        )
        return [
            Identification(recording, best, scores, accepted=accepted, threshold=cutoff)
            for recording, (best, scores, accepted, cutoff) in zip(shown, ranked, strict=True)
        ]

    def verify(
        self,
        speaker: str,
        uploads: Sequence[Upload] = (),
        paths: Sequence[str] = (),
        *,
        threshold: float | None = None,
    ) -> list[Verification]:
        """Accept or reject each recording as ``speaker``, as ``spkid verify`` does."""
        model = self.snapshot()
        if model.names and speaker not in model.names:
            self._not_found(lambda: model.recognizer.speakers([speaker]))  # the CLI's "not enrolled" error

        def score(model: LoadedModel, features: list) -> list[tuple[float, float]]:
            scores, default = self._not_found(lambda: model.verify(speaker, features))
            cutoff = default if threshold is None else float(threshold)
            return [(float(value), cutoff) for value in scores]

        shown, checked = self._features(uploads, paths, score, speaker=speaker)
        return [
            Verification(recording, speaker, value, cutoff, bool(value >= cutoff))
            for recording, (value, cutoff) in zip(shown, checked, strict=True)
        ]

    def enroll(
        self,
        speaker: str,
        uploads: Sequence[Upload] = (),
        paths: Sequence[str] = (),
        *,
        replace: bool = False,
        final: bool = False,
    ) -> dict[str, Any]:
        """Enroll ``speaker`` from the recordings (``spkid enroll --speaker``); seen by the next request.

        With ``features.cmvn: auto`` the answer also says what the enrollment chose, or that the choice waits
        (``"cmvn_auto"``, the line ``spkid enroll`` prints); ``final`` (``spkid enroll --final``): no speaker
        will follow, the choice is made now on those enrolled.
        """
        with self._audio_files(uploads, paths) as files, self._computing_slot():  # one CPU
            result = enroll_from_audio(
                self.model_dir, {speaker: [file for _, file in files]}, replace=replace, final=final
            )
        answer: dict[str, Any] = {"speaker": speaker, "files": result.enrolled.get(speaker, 0)}
        if result.level_choice is not None:
            answer["cmvn_auto"] = result.level_choice.describe()
        return answer

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
