"""The condition matrix of ``bench_accuracy.py``: real corpora and conditions derived from them by code.

Two real protocols from ``../shared/data`` (see its README): LibriSpeech ("ls": read speech, 10 speakers
enrolled on ~1 min, 50 whole-utterance tests) and Speech Commands ("sc": 1-s words from people's own
devices, 53 speakers enrolled on 10 words, 2,132 one-word tests). From them, by code (telephone channel,
cuts, swaps; only numpy/scipy/soundfile, so independent of spkid's front-end): narrowband versions with a
narrowband UBM pool, clean enrollment with telephone tests and the reverse, 0.5/1/3-s tests, enrollment from
3 short clips, each corpus' speakers against the other corpus' UBM pool, a telephone UBM pool meeting
clean tests (with telephone or clean enrollment), and each corpus with every enrollment and test recording
through a handset response of its own (a channel per recording, as calls give: the case utterance CMVN is
for, on long recordings and on words) or at a random level of its own (what a cepstral mean kept whole must
survive). Two more, named only (:data:`EXTRA_CONDITIONS`), give each recording a call of its own: a handset
response, then the telephone line, with a telephone pool. Derived audio is written once under the cache
folder and reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import condition_corpora as degrade
import numpy as np
from joblib import Parallel, delayed

from spkid.corpora.librispeech import prepare_librispeech
from spkid.corpora.protocol import Protocol
from spkid.corpora.speech_commands import prepare_speech_commands

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIBRISPEECH = DATA / "LibriSpeech"
SPEECH_COMMANDS = DATA / "speech_commands_test_v0.02"

#: Length of each clip of the "enrollment from 3 short clips" conditions cut from LibriSpeech utterances.
SHORT_CLIP_S = 2.0


@dataclass(frozen=True)
class Condition:
    """One cell row of the matrix: a UBM pool (by name), enrolled speakers and labelled tests."""

    name: str
    description: str
    pool: str
    speakers: dict[str, list[Path]]
    tests: list[tuple[Path, str]]


#: Every condition: name -> (corpus it needs, description).
CONDITIONS: dict[str, tuple[str, str]] = {
    "ls": ("ls", "LibriSpeech reference protocol (whole tests, ~1 min enrollment)"),
    "ls-3s": ("ls", "LibriSpeech, tests cut to 3 s"),
    "ls-1s": ("ls", "LibriSpeech, tests cut to 1 s"),
    "ls-0.5s": ("ls", "LibriSpeech, tests cut to 0.5 s"),
    "ls-enroll-3clips": ("ls", f"LibriSpeech, enrollment from 3 clips of {SHORT_CLIP_S:g} s"),
    "ls-narrowband": ("ls", "LibriSpeech through a telephone channel (8 kHz mu-law), UBM pool too"),
    "ls-tel-tests": ("ls", "LibriSpeech, clean UBM and enrollment, telephone tests"),
    "ls-tel-enroll": ("ls", "LibriSpeech, clean UBM and tests, telephone enrollment"),
    "ls-tel-speakers": ("ls", "LibriSpeech, clean UBM, telephone enrollment and tests"),
    "ls-nb-ubm-wb-tests": ("ls", "LibriSpeech, telephone UBM pool and enrollment, clean tests"),
    "ls-nb-ubm-wb-speakers": ("ls", "LibriSpeech, telephone UBM pool, clean enrollment and tests"),
    "ls-handsets": (
        "ls",
        "LibriSpeech, clean UBM, each enrollment and test recording through a handset of its own",
    ),
    "ls-levels": ("ls", "LibriSpeech, each enrollment and test recording at a level of its own (-24..0 dB)"),
    "sc-levels": ("sc", "Speech Commands, each enrollment and test word at a level of its own (-24..0 dB)"),
    "sc-handsets": (
        "sc",
        "Speech Commands, clean UBM, each enrollment and test word through a handset of its own",
    ),
    "sc": ("sc", "Speech Commands reference protocol (1-s words, own device per clip)"),
    "sc-enroll-3clips": ("sc", "Speech Commands, enrollment from 3 words"),
    "sc-narrowband": ("sc", "Speech Commands through a telephone channel, UBM pool too"),
    "sc-tel-tests": ("sc", "Speech Commands, clean UBM and enrollment, telephone tests"),
    "sc-tel-enroll": ("sc", "Speech Commands, clean UBM and tests, telephone enrollment"),
    "sc-tel-speakers": ("sc", "Speech Commands, clean UBM, telephone enrollment and tests"),
    "sc-nb-ubm-wb-tests": ("sc", "Speech Commands, telephone UBM pool and enrollment, clean tests"),
    "sc-nb-ubm-wb-speakers": ("sc", "Speech Commands, telephone UBM pool, clean enrollment and tests"),
    "ls-spk-sc-ubm": ("ls+sc", "LibriSpeech speakers, UBM pool of Speech Commands words"),
    "sc-spk-ls-ubm": ("ls+sc", "Speech Commands speakers, UBM pool of LibriSpeech read speech"),
}
#: Conditions measured after the matrix above (``--conditions`` names them; ``--full`` leaves them out, so the
#: README's table stays one run): a call per recording, a handset response then a telephone line on each
#: enrollment and test recording, with a telephone UBM pool (what telephone corpora give).
EXTRA_CONDITIONS: dict[str, tuple[str, str]] = {
    "ls-tel-handsets": (
        "ls",
        "LibriSpeech, telephone pool, each recording through a handset then a telephone line",
    ),
    "sc-tel-handsets": (
        "sc",
        "Speech Commands, telephone pool, each word through a handset then a telephone line",
    ),
}
#: The matrix of ``--full`` and the conditions ``--conditions`` may name.
FULL_CONDITIONS: tuple[str, ...] = tuple(CONDITIONS)
CONDITIONS.update(EXTRA_CONDITIONS)


def available(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split condition names into those whose corpora are present and reasons for the others."""
    have = {
        "ls": (LIBRISPEECH / "train-clean-100").is_dir() and (LIBRISPEECH / "test-other").is_dir(),
        "sc": SPEECH_COMMANDS.is_dir(),
    }
    kept, missing = [], []
    for name in names:
        needs = CONDITIONS[name][0].split("+")
        if all(have[corpus] for corpus in needs):
            kept.append(name)
        else:
            missing.append(f"{name}: needs {' and '.join(str(_root(c)) for c in needs if not have[c])}")
    return kept, missing


def _root(corpus: str) -> Path:
    return LIBRISPEECH if corpus == "ls" else SPEECH_COMMANDS


class Deriver:
    """Writes derived audio (telephone versions, cuts) under ``cache_dir`` once, in parallel."""

    def __init__(self, cache_dir: Path, n_jobs: int = 2) -> None:
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs

    def _many(
        self, kind: str, paths: Sequence[Path], keys: Sequence[str], make: Callable[[Path, Path], Path | None]
    ) -> list[Path | None]:
        targets = [self.cache_dir / kind / f"{key.replace('/', '__')}.wav" for key in keys]
        todo = [
            (path, target)
            for path, target in zip(paths, targets, strict=True)
            if not target.exists() and not target.with_suffix(".none").exists()
        ]
        if todo:
            Parallel(n_jobs=self.n_jobs, batch_size=16)(delayed(make)(path, target) for path, target in todo)
        return [target if target.exists() else None for target in targets]

    def telephone(self, paths: Sequence[Path], keys: Sequence[str]) -> list[Path]:
        """Each file through :func:`condition_corpora.telephone` (300-3400 Hz, 8 kHz, mu-law)."""
        return [path for path in self._many("telephone", paths, keys, _telephone) if path is not None]

    def telephone_handsets(self, paths: Sequence[Path], keys: Sequence[str]) -> list[Path]:
        """Each file through a :func:`condition_corpora.handset` of its own, then the telephone channel."""
        return [
            path for path in self._many("tel-handset", paths, keys, _telephone_handset) if path is not None
        ]

    def handsets(self, paths: Sequence[Path], keys: Sequence[str]) -> list[Path]:
        """Each file through a :func:`condition_corpora.handset` response of its own (seeded by its key)."""
        return [path for path in self._many("handset", paths, keys, _handset) if path is not None]

    def levels(self, paths: Sequence[Path], keys: Sequence[str]) -> list[Path]:
        """Each file at a :func:`condition_corpora.level` of its own (seeded by its key)."""
        return [path for path in self._many("level", paths, keys, _level) if path is not None]

    def chunks(self, paths: Sequence[Path], keys: Sequence[str], duration_s: float) -> list[Path | None]:
        """The most speech-active ``duration_s`` of each file (None where the file is shorter)."""
        return self._many(f"chunk-{duration_s:g}s", paths, keys, lambda p, t: _chunk(p, t, duration_s))


def _telephone(path: Path, target: Path) -> Path:
    signal, rate = degrade.read(path)
    return degrade.write(target, degrade.telephone(signal, rate), degrade.TELEPHONE_RATE_HZ)


def _telephone_handset(path: Path, target: Path) -> Path:
    signal, rate = degrade.read(path)
    shaped = degrade.handset(signal, rate, _rng_of(target))
    return degrade.write(target, degrade.telephone(shaped, rate), degrade.TELEPHONE_RATE_HZ)


def _rng_of(target: Path) -> np.random.Generator:
    """A generator seeded by the derived file's name: the same draw for a file on every run."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(target.name.encode()).digest()[:8], "little"))


def _handset(path: Path, target: Path) -> Path:
    signal, rate = degrade.read(path)
    return degrade.write(target, degrade.handset(signal, rate, _rng_of(target)), rate)


def _level(path: Path, target: Path) -> Path:
    signal, rate = degrade.read(path)
    return degrade.write(target, degrade.level(signal, _rng_of(target)), rate)


def _chunk(path: Path, target: Path, duration_s: float) -> Path | None:
    signal, rate = degrade.read(path)
    chunk = degrade.speech_chunk(signal, rate, duration_s)
    if chunk is None:
        target.with_suffix(".none").parent.mkdir(parents=True, exist_ok=True)
        target.with_suffix(".none").touch()
        return None
    return degrade.write(target, chunk, rate)


def _speakers(protocol: Protocol) -> dict[str, list[Path]]:
    return {name: [u.path for u in items] for name, items in protocol.enroll.items()}


def _tests(protocol: Protocol) -> list[tuple[Path, str]]:
    return [(u.path, u.speaker) for u in protocol.test]


def build(
    names: Sequence[str], cache_dir: Path, *, n_jobs: int = 2
) -> tuple[dict[str, list[Path]], list[Condition]]:
    """The UBM pools (name -> files) and conditions ``names`` (in that order), deriving audio as needed."""
    deriver = Deriver(cache_dir / "audio", n_jobs)
    needs = {corpus for name in names for corpus in CONDITIONS[name][0].split("+")}
    ls = prepare_librispeech(LIBRISPEECH) if "ls" in needs else None
    sc = prepare_speech_commands(SPEECH_COMMANDS) if "sc" in needs else None
    pools: dict[str, list[Path]] = {}
    conditions: list[Condition] = []

    def protocol_of(name: str) -> tuple[Protocol, str]:
        return (ls, "ls") if name.startswith("ls") else (sc, "sc")

    def telephone_files(utterances: Sequence) -> list[Path]:
        return deriver.telephone([u.path for u in utterances], [f"{prefix}/{u.id}" for u in utterances])

    def level_files(utterances: Sequence) -> list[Path]:
        return deriver.levels([u.path for u in utterances], [f"{prefix}/{u.id}" for u in utterances])

    def handset_files(utterances: Sequence) -> list[Path]:
        return deriver.handsets([u.path for u in utterances], [f"{prefix}/{u.id}" for u in utterances])

    def telephone_pool() -> str:
        """The name of the condition's corpus' telephone UBM pool, derived on first use."""
        if f"{prefix}-telephone" not in pools:
            pools[f"{prefix}-telephone"] = telephone_files(protocol.train)
        return f"{prefix}-telephone"

    def telephone_handset_files(utterances: Sequence) -> list[Path]:
        keys = [f"{prefix}/{u.id}" for u in utterances]
        return deriver.telephone_handsets([u.path for u in utterances], keys)

    for name in names:
        protocol, prefix = protocol_of(name)
        description = CONDITIONS[name][1]
        clean_pool = f"{prefix}-clean"
        pools.setdefault(clean_pool, [u.path for u in protocol.train])
        speakers, tests = _speakers(protocol), _tests(protocol)
        pool = clean_pool
        if name in ("ls", "sc"):
            pass
        elif name.endswith("-narrowband"):
            pool = telephone_pool()
            speakers = {spk: telephone_files(items) for spk, items in protocol.enroll.items()}
            tests = list(zip(telephone_files(protocol.test), [u.speaker for u in protocol.test], strict=True))
        elif name.endswith("-tel-handsets"):  # a call per recording
            pool = telephone_pool()
            speakers = {spk: telephone_handset_files(items) for spk, items in protocol.enroll.items()}
            labels = [u.speaker for u in protocol.test]
            tests = list(zip(telephone_handset_files(protocol.test), labels, strict=True))
        elif name.endswith("-tel-tests"):
            tests = list(zip(telephone_files(protocol.test), [u.speaker for u in protocol.test], strict=True))
        elif name.endswith("-tel-enroll"):
            speakers = {spk: telephone_files(items) for spk, items in protocol.enroll.items()}
        elif name.endswith("-tel-speakers"):
            speakers = {spk: telephone_files(items) for spk, items in protocol.enroll.items()}
            tests = list(zip(telephone_files(protocol.test), [u.speaker for u in protocol.test], strict=True))
        elif name.startswith(f"{prefix}-nb-ubm-"):  # a telephone pool meets wideband recordings
            pool = telephone_pool()
            if name.endswith("-wb-tests"):
                speakers = {spk: telephone_files(items) for spk, items in protocol.enroll.items()}
        elif name.endswith(("-handsets", "-levels")):  # a degradation of its own per recording
            derive = handset_files if name.endswith("-handsets") else level_files
            speakers = {spk: derive(items) for spk, items in protocol.enroll.items()}
            tests = list(zip(derive(protocol.test), [u.speaker for u in protocol.test], strict=True))
        elif name.endswith("-enroll-3clips"):
            if prefix == "sc":
                speakers = {spk: [u.path for u in items[:3]] for spk, items in protocol.enroll.items()}
            else:
                speakers = {}
                for spk, items in protocol.enroll.items():
                    clips = deriver.chunks(
                        [u.path for u in items[:3]], [f"ls/{u.id}" for u in items[:3]], SHORT_CLIP_S
                    )
                    speakers[spk] = [clip for clip in clips if clip is not None]
        elif name.startswith("ls-") and name.endswith("s") and name[3:-1].replace(".", "").isdigit():
            duration_s = float(name[3:-1])
            cut = deriver.chunks(
                [u.path for u in protocol.test], [f"ls/{u.id}" for u in protocol.test], duration_s
            )
            pairs = zip(cut, protocol.test, strict=True)
            tests = [(clip, u.speaker) for clip, u in pairs if clip is not None]
        elif name == "ls-spk-sc-ubm":
            pools.setdefault("sc-clean", [u.path for u in sc.train])
            pool = "sc-clean"
        elif name == "sc-spk-ls-ubm":
            pools.setdefault("ls-clean", [u.path for u in ls.train])
            pool = "ls-clean"
        else:
            raise ValueError(f"unknown condition {name!r}")
        conditions.append(Condition(name, description, pool, speakers, tests))
    used = {condition.pool for condition in conditions}
    return {name: files for name, files in pools.items() if name in used}, conditions


def durations_s(paths: Sequence[Path]) -> np.ndarray:
    """Durations of audio files from their headers."""
    import soundfile

    return np.array([soundfile.info(str(path)).duration for path in paths])
