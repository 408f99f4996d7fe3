"""What every corpus preparer returns: utterances, enroll/test splits and verification trials.

A :class:`Protocol` names the UBM training pool, the enrollment utterances of each model, the test
utterances and the verification trials (model id, test utterance id, target or not). Trials and the
Kaldi-style trial-list and score-file I/O are :mod:`spkid.metrics.protocol`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spkid.atomic import atomic_write_bytes
from spkid.errors import DataError
from spkid.metrics.protocol import Trial

__all__ = ["Utterance", "Protocol", "all_pairs_trials"]


@dataclass(frozen=True)
class Utterance:
    """One recording: a corpus-unique id (no whitespace), its speaker and its audio file."""

    id: str
    speaker: str
    path: Path


@dataclass(frozen=True)
class Protocol:
    """A complete evaluation protocol.

    Attributes
    ----------
    name : str
    train : tuple of Utterance
        The UBM training pool.
    enroll : mapping of str to tuple of Utterance
        Model id (a speaker, or an enrollment utterance for VoxCeleb1 verification) to its utterances.
    test : tuple of Utterance
        Test utterances, each of a speaker in ``enroll`` for closed-set identification.
    trials : tuple of Trial
        Verification trials over ``enroll`` ids and ``test`` ids.
    """

    name: str
    train: tuple[Utterance, ...]
    enroll: Mapping[str, tuple[Utterance, ...]]
    test: tuple[Utterance, ...]
    trials: tuple[Trial, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dicts and lists (paths as strings)."""

        def utterances(items: Iterable[Utterance]) -> list[dict[str, str]]:
            return [{"id": u.id, "speaker": u.speaker, "path": str(u.path)} for u in items]

        return {
            "name": self.name,
            "train": utterances(self.train),
            "enroll": {model: utterances(items) for model, items in self.enroll.items()},
            "test": utterances(self.test),
            "trials": [[t.enroll, t.test, t.target] for t in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Inverse of :meth:`to_dict`; raises :class:`DataError` on a malformed document."""
        try:

            def utterances(items: Iterable[Mapping[str, str]]) -> tuple[Utterance, ...]:
                return tuple(Utterance(str(u["id"]), str(u["speaker"]), Path(u["path"])) for u in items)

            return cls(
                name=str(data["name"]),
                train=utterances(data["train"]),
                enroll={str(model): utterances(items) for model, items in data["enroll"].items()},
                test=utterances(data["test"]),
                trials=tuple(
                    Trial(str(enroll), str(test), None if target is None else bool(target))
                    for enroll, test, target in data["trials"]
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"protocol document is malformed ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> None:
        """Write the protocol as JSON (atomically)."""
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1).encode() + b"\n")

    @classmethod
    def load(cls, path: str | Path) -> Protocol:
        """Read a protocol written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read protocol ({exc})") from None
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def all_pairs_trials(
    enroll_ids: Iterable[str], test: Iterable[Utterance], speaker_of: Mapping[str, str] | None = None
) -> tuple[Trial, ...]:
    """Every test utterance against every model; a target when the model's speaker is the test's speaker.

    ``speaker_of`` maps model ids to speakers; by default a model id is its speaker.
    """
    enroll_ids = list(enroll_ids)
    speaker_of = speaker_of or {model: model for model in enroll_ids}
    return tuple(
        Trial(model, utterance.id, speaker_of[model] == utterance.speaker)
        for utterance in test
        for model in enroll_ids
    )
