"""Identification results read back from ``spkid identify --json`` output, for accuracy and confusion plots.

The true speaker of a recording is the folder it sits in (the ``<speaker>/<recording>`` layout every
spkid corpus and SPEAKERS_DIR uses); a rejection (``"speaker": null``) is predicted as
:data:`REJECTED_LABEL`, a column of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import DataError

__all__ = ["REJECTED_LABEL", "IdentificationLabels", "read_identifications"]

#: The predicted label of an open-set rejection in a confusion matrix (brackets: never a folder name here).
REJECTED_LABEL = "(rejected)"


@dataclass(frozen=True)
class IdentificationLabels:
    """True and predicted speakers of each identified recording, in file order.

    Examples
    --------
    >>> labels = IdentificationLabels(["alice", "bob", "bob"], ["alice", "alice", "bob"])
    >>> round(labels.accuracy, 3)
    0.667
    """

    true: list[str]
    predicted: list[str]

    @property
    def accuracy(self) -> float:
        """Share of recordings identified as their true speaker."""
        return sum(t == p for t, p in zip(self.true, self.predicted, strict=True)) / len(self.true)


def read_identifications(path: str | Path) -> IdentificationLabels:
    """Read ``spkid identify --json`` output; the true speaker is each recording's folder name.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> file = Path(folder.name) / "ids.json"
    >>> _ = file.write_text('[{"recording": "test/alice/1.wav", "speaker": "alice"},'
    ...                     ' {"recording": "test/bob/2.wav", "speaker": null}]')
    >>> labels = read_identifications(file)
    >>> labels.true, labels.predicted, labels.accuracy
    (['alice', 'bob'], ['alice', '(rejected)'], 0.5)
    >>> folder.cleanup()
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not the JSON output of spkid identify --json ({exc})") from None
    if not isinstance(document, list) or not document:
        raise DataError(f"{path}: expected a non-empty list of identify results (spkid identify --json)")
    true, predicted = [], []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict) or "recording" not in item or "speaker" not in item:
            raise DataError(f"{path}: result {number} has no 'recording' and 'speaker'")
        true.append(Path(str(item["recording"])).parent.name or str(item["recording"]))
        predicted.append(REJECTED_LABEL if item["speaker"] is None else str(item["speaker"]))
    return IdentificationLabels(true, predicted)
