"""What identification and verification return: one result per recording, and what the scores are.

:class:`Identification` / :class:`IdentifyResult` and :class:`Verification` / :class:`VerifyResult` are
plain records (``to_dict()`` gives the CLI's JSON); :func:`score_kind` says whether a model's scores are
calibrated LLRs or raw frame-averaged LLRs; :func:`rank_rows` turns a matrix of scores into rankings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from spkid.features import SkippedFile
from spkid.recognizer.recognizer import Recognizer

__all__ = [
    "Identification",
    "IdentifyResult",
    "Ranking",
    "Verification",
    "VerifyResult",
    "rank_rows",
    "score_kind",
]

Outcome = TypeVar("Outcome")
#: Per recording: the best speaker (None when an open set rejects), the ranked ``(name, score)``, whether
#: it was accepted, the threshold it was decided on (None in a closed set).
Ranking = tuple[str | None, list[tuple[str, float]], bool, float | None]


@dataclass(frozen=True)
class _Results(Generic[Outcome]):
    """Outcomes in input order (skipped files left out), the skipped files, what the scores are."""

    results: list[Outcome]
    skipped: list[SkippedFile] = field(default_factory=list)
    kind: str = ""  # score_kind(): "calibrated LLR ..." or "raw score: frame-averaged LLR ..."


@dataclass(frozen=True)
class Identification:
    """One recording identified: the best speaker and the ranked scores, best first.

    In open-set identification ``threshold`` is the score the best speaker had to reach; a rejection has
    ``speaker`` None and ``accepted`` False (no name is reserved: a speaker may be enrolled as "unknown").
    Closed-set results are always accepted and carry ``threshold`` None.

    Examples
    --------
    >>> from spkid.recognizer import Identification
    >>> found = Identification("test.wav", "spk01", [("spk01", 1.25), ("spk02", -0.5)])
    >>> found.to_dict()["scores"][0]
    {'speaker': 'spk01', 'score': 1.25}
    """

    recording: str
    speaker: str | None
    scores: list[tuple[str, float]]
    accepted: bool = True
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"recording", "speaker", "accepted", "threshold", "scores": [{"speaker", "score"}, ...]}``."""
        return {
            "recording": self.recording,
            "speaker": self.speaker,
            "accepted": self.accepted,
            "threshold": self.threshold,
            "scores": [{"speaker": name, "score": score} for name, score in self.scores],
        }


def rank_rows(
    names: list[str], scores: np.ndarray, cutoffs: np.ndarray, *, top_k: int, open_set: bool
) -> list[Ranking]:
    """A :data:`Ranking` of every row of ``scores`` (recordings x speakers ``names``), best first.

    ``top_k`` speakers are listed (0: all); in an open set the best speaker is accepted when its score
    reaches its own entry of ``cutoffs`` (one per speaker), and a closed set accepts every recording.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[0.5, 2.0], [-1.0, -3.0]])
    >>> rank_rows(["spk01", "spk02"], scores, np.array([0.0, 0.0]), top_k=1, open_set=True)
    [('spk02', [('spk02', 2.0)], True, 0.0), (None, [('spk01', -1.0)], False, 0.0)]
    """
    limit = len(names) if top_k == 0 else min(top_k, len(names))
    rankings: list[Ranking] = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        cutoff = float(cutoffs[order[0]]) if open_set else None
        accepted = cutoff is None or bool(row[order[0]] >= cutoff)
        ranked = [(names[i], float(row[i])) for i in order[:limit]]
        rankings.append((names[order[0]] if accepted else None, ranked, accepted, cutoff))
    return rankings


def score_kind(recognizer: Recognizer, *, calibrated: bool = True) -> str:
    """What a model's scores are: ``"calibrated LLR ..."`` or ``"raw score: frame-averaged LLR ..."``.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import Recognizer, load_config, score_kind, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=2, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=2", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> score_kind(Recognizer.open(f"{tmp.name}/model"))  # no calibration stored yet
    'raw score: frame-averaged LLR (speaker vs UBM), not calibrated'
    >>> tmp.cleanup()
    """
    method = recognizer.score_config.normalization
    if calibrated and recognizer.calibrator is not None:
        return f"calibrated LLR (natural log; calibration of the model, normalization {method})"
    norm = "" if method == "none" else f", {method}-normalised"
    return f"raw score: frame-averaged LLR (speaker vs UBM{norm}), not calibrated"


@dataclass(frozen=True)
class IdentifyResult(_Results[Identification]):
    """Identifications in input order (skipped files left out), the skipped files, what the scores are.

    Examples
    --------
    >>> from spkid.recognizer import Identification, IdentifyResult
    >>> result = IdentifyResult([Identification("test.wav", "spk01", [("spk01", 1.25)])])
    >>> [found.speaker for found in result.results], result.skipped
    (['spk01'], [])
    """


@dataclass(frozen=True)
class Verification:
    """One recording checked against a claimed speaker.

    Examples
    --------
    >>> from spkid.recognizer import Verification
    >>> checked = Verification("test.wav", "spk01", score=1.25, threshold=3.0, accepted=False)
    >>> checked.to_dict()["accepted"]
    False
    """

    recording: str
    speaker: str
    score: float
    threshold: float
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "speaker": self.speaker,
            "score": self.score,
            "threshold": self.threshold,
            "accepted": self.accepted,
        }


@dataclass(frozen=True)
class VerifyResult(_Results[Verification]):
    """Verifications in input order (skipped files left out) and the skipped files.

    Examples
    --------
    >>> from spkid.recognizer import Verification, VerifyResult
    >>> result = VerifyResult([Verification("test.wav", "spk01", 1.25, 3.0, False)])
    >>> [checked.accepted for checked in result.results], result.skipped
    ([False], [])
    """
