"""Trial lists as ``spkid score`` reads them, and finding the recordings their ids name.

Two formats are accepted and told apart by their first line:

- Kaldi: ``enroll_id test_id [target|nontarget]`` (see :func:`spkid.metrics.protocol.read_trials`); the
  enroll id is an enrolled speaker or a recording, the test id a recording.
- VoxCeleb: ``<1|0> <enroll.wav> <test.wav>`` (``veri_test.txt``, ``list_test_*.txt``): both sides are
  recordings, and ``1`` marks a target trial.

A recording id is found as a path (absolute, or relative to the audio root, to ``<audio root>/wav`` as in
the VoxCeleb layout, or to the current directory), else as a unique file stem under the audio root
(``1688-142285-0000`` finds ``.../1688-142285-0000.flac``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spkid.audio import AUDIO_EXTENSIONS, find_audio_files
from spkid.errors import AudioError, DataError
from spkid.metrics.protocol import Trial, read_trials

__all__ = ["TrialList", "RecordingResolver", "read_trial_list"]


@dataclass(frozen=True)
class TrialList:
    """Trials read from ``path``; ``format`` is ``"kaldi"`` or ``"voxceleb"``.

    Examples
    --------
    >>> from pathlib import Path
    >>> from spkid.metrics import Trial
    >>> trial_list = TrialList(Path("trials.txt"), [Trial("alice", "utt1", True)], "kaldi")
    >>> trial_list.format, len(trial_list.trials)
    ('kaldi', 1)
    """

    path: Path
    trials: list[Trial]
    format: str


def _looks_like_voxceleb(fields: Sequence[str]) -> bool:
    return (
        len(fields) == 3
        and fields[0] in ("0", "1")
        and all(Path(field).suffix.lower() in AUDIO_EXTENSIONS for field in fields[1:])
    )


def read_trial_list(path: str | Path) -> TrialList:
    r"""Read a Kaldi or VoxCeleb trial list (format detected from the first line).

    Raises
    ------
    DataError
        Missing or unreadable file, no trials, or a malformed line (naming file and line).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "veri_test.txt"
    ...     _ = path.write_text("1 id1/a.wav id1/b.wav\n0 id1/a.wav id2/c.wav\n")
    ...     trial_list = read_trial_list(path)
    >>> trial_list.format
    'voxceleb'
    >>> trial_list.trials[1]
    Trial(enroll='id1/a.wav', test='id2/c.wav', target=False)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such trial list") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read trial list ({exc})") from None
    lines = [
        (number, line.split())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise DataError(f"{path}: holds no trials")
    if not _looks_like_voxceleb(lines[0][1]):
        return TrialList(path, read_trials(path), "kaldi")
    trials = []
    for number, fields in lines:
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(
                f"{path}:{number}: expected '<1|0> <enroll.wav> <test.wav>' like line 1, got {fields}"
            )
        trials.append(Trial(fields[1], fields[2], fields[0] == "1"))
    return TrialList(path, trials, "voxceleb")


class RecordingResolver:
    """Maps recording ids of a trial list to audio files.

    Parameters
    ----------
    audio_root : Path or None
        The folder the ids are relative to (None: the current directory, and no stem lookup).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     (Path(folder) / "spk1").mkdir()
    ...     (Path(folder) / "spk1" / "utt1.wav").touch()
    ...     resolver = RecordingResolver(folder)
    ...     by_path, by_stem = resolver.find("spk1/utt1.wav"), resolver.find("utt1")
    ...     print(by_path == by_stem, by_stem.name, resolver.find("utt2"))
    True utt1.wav None
    """

    def __init__(self, audio_root: str | Path | None) -> None:
        self.audio_root = None if audio_root is None else Path(audio_root)
        if self.audio_root is not None and not self.audio_root.is_dir():
            raise AudioError(self.audio_root, "no such folder (--audio-root)")
        self._by_stem: dict[str, list[Path]] | None = None

    def _stems(self) -> dict[str, list[Path]]:
        if self._by_stem is None:
            self._by_stem = {}
            if self.audio_root is not None:
                try:
                    files = find_audio_files([self.audio_root])
                except AudioError:
                    files = []
                for file in files:
                    self._by_stem.setdefault(file.stem, []).append(file)
        return self._by_stem

    def find(self, identifier: str) -> Path | None:
        """The audio file ``identifier`` names, or None when there is none (or the stem is ambiguous)."""
        candidate = Path(identifier)
        if candidate.is_absolute():
            return candidate if candidate.is_file() else None
        roots = [Path.cwd()] if self.audio_root is None else [self.audio_root, self.audio_root / "wav"]
        for root in roots:
            if (root / candidate).is_file():
                return root / candidate
        matches = self._stems().get(identifier, [])
        return matches[0] if len(matches) == 1 else None

    def require(self, identifier: str, where: str) -> Path:
        """Like :meth:`find`, but a missing recording raises :class:`DataError` naming ``where``."""
        found = self.find(identifier)
        if found is None:
            root = "the current directory" if self.audio_root is None else str(self.audio_root)
            raise DataError(f"{where}: no recording {identifier!r} under {root} (set --audio-root?)")
        return found
