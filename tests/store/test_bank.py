"""The speaker bank: the same scores as the speaker files, checksums, staleness, and SIGKILL at any step.

Stores here are synthetic (a random UBM, speakers from random MAP statistics), so every test is fast.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spkid.gmm import MixtureParameters, SufficientStats
from spkid.recognizer import load_config
from spkid.score import Scorer, bank_scoring
from spkid.store import ModelStore
from spkid.store import bank as bank_module
from spkid.store.bank import BankCorruptError

N_COMPONENTS, N_FEATURES, TOP_C = 16, 6, 4


def make_ubm(seed: int = 0) -> MixtureParameters:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(N_COMPONENTS, 5.0))
    means = rng.normal(0, 2, (N_COMPONENTS, N_FEATURES))
    variances = rng.uniform(0.5, 2.0, (N_COMPONENTS, N_FEATURES))
    return MixtureParameters(weights, means, variances)


def make_stats(ubm: MixtureParameters, seed: int) -> SufficientStats:
    rng = np.random.default_rng(1000 + seed)
    zeroth = rng.gamma(2.0, 5.0, N_COMPONENTS)
    first = zeroth[:, None] * (ubm.means_ + rng.normal(0, 0.5, ubm.means_.shape))
    return SufficientStats(zeroth, first, np.zeros_like(first), 0.0, int(zeroth.sum()))


def make_store(path: Path) -> ModelStore:
    config = load_config(None)
    return ModelStore.create(
        path,
        feature_config=config.features.to_dict(),
        ubm_config=config.ubm.to_dict(),
        enroll_config=config.enroll.to_dict(),
        score_config=config.score.to_dict(),
        ubm=make_ubm(),
    )


def utterances(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(0, 2, (int(rng.integers(20, 90)), N_FEATURES)).astype(np.float32) for _ in range(n)]


def full_scores(store: ModelStore, top_k: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    view = store.open_bank()
    index, scores = bank_scoring.search_bank(
        store.load_ubm(), utterances(), view.segments, view.columns, top_c=TOP_C, top_k=top_k
    )
    return view.names, index, scores


@pytest.fixture
def grown_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """300 speakers in a batch, then singles added, one replaced, one removed: several segments."""
    monkeypatch.setattr(bank_scoring, "CHUNK_SPEAKERS", 128)  # several chunks to merge
    store = make_store(tmp_path / "model")
    ubm = store.load_ubm()
    names = [f"s{index:03d}" for index in range(300)]
    with store.bank_batch(names):
        for index, name in enumerate(names):
            store.save_speaker_stats(name, make_stats(ubm, index))
    for index in range(300, 304):
        store.save_speaker_stats(f"s{index:03d}", make_stats(ubm, index))
    store.save_speaker_stats("s010", make_stats(ubm, 999), replace=True)
    store.remove_speaker("s020")
    return store


def test_bank_gives_the_scores_of_the_speaker_files(grown_store: ModelStore):
    names, index, scores = full_scores(grown_store)
    assert sorted(names) == grown_store.speakers() and len(names) == 303
    models = {name: grown_store.load_speaker(name) for name in names}
    expected = Scorer(grown_store.load_ubm(), models, top_c=TOP_C).llr_many(utterances())
    got = np.full_like(expected, np.nan)
    np.put_along_axis(got, index, scores, axis=1)
    # The same stored values, summed in another float32 order (blocks of another width): ~1e-7.
    np.testing.assert_array_equal(got, expected)
    _, top_index, top_scores = full_scores(grown_store, top_k=3)
    best = np.argsort(-got, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(top_index, best)
    np.testing.assert_array_equal(top_scores, np.take_along_axis(got, best, axis=1))


def test_bank_stores_the_scorers_quantised_values(grown_store: ModelStore):
    view = grown_store.open_bank()
    models = {name: grown_store.load_speaker(name) for name in view.names}
    reference = Scorer(grown_store.load_ubm(), models, top_c=TOP_C)._bank
    number = 0
    for segment, columns in zip(view.segments, view.columns, strict=True):
        for column in columns:
            j, i = divmod(int(column), segment.width)
            rj, ri = divmod(number, reference.width)
            np.testing.assert_array_equal(segment.blocks[j, :, :, i], reference.blocks[rj, :, :, ri])
            np.testing.assert_array_equal(segment.scale[j, :, i], reference.scale[rj, :, ri])
            np.testing.assert_array_equal(segment.constant[j, :, i], reference.constant[rj, :, ri])
            number += 1
    assert number == len(view.names)


def test_one_column_scores_as_the_whole_bank(grown_store: ModelStore):
    names, index, scores = full_scores(grown_store)
    view = grown_store.open_bank()
    number = names.index("s010")
    segment = view.segments[-1]  # s010 was re-saved alone, the last segment written
    column = int(view.columns[-1][0])
    assert segment.names == ["s010"]
    single = bank_scoring.score_columns(grown_store.load_ubm(), utterances(), segment, column, top_c=TOP_C)
    reference = Scorer(grown_store.load_ubm(), {"s010": grown_store.load_speaker("s010")}, top_c=TOP_C)
    np.testing.assert_array_equal(single, reference.llr_many(utterances())[:, 0])  # the same path: exact
    np.testing.assert_allclose(single, scores[index == number], rtol=0, atol=1e-6)


def test_compaction_keeps_every_speaker_and_score(grown_store: ModelStore, monkeypatch):
    def by_name() -> dict[str, np.ndarray]:
        names, index, scores = full_scores(grown_store)
        got = np.full((len(scores), len(names)), np.nan)
        np.put_along_axis(got, index, scores, axis=1)
        return {name: got[:, number] for number, name in enumerate(names)}

    before = by_name()
    monkeypatch.setattr(bank_module, "MAX_SEGMENTS", 2)
    grown_store.save_speaker_stats("late", make_stats(grown_store.load_ubm(), 500))
    view = grown_store.open_bank()
    assert len(view.segments) == 1 and len(list((grown_store.path / "bank").glob("seg-*"))) == 1
    assert sorted(view.names) == grown_store.speakers()
    after = by_name()
    assert set(after) == set(before) | {"late"}
    for name, scores in before.items():
        np.testing.assert_allclose(after[name], scores, rtol=0, atol=1e-6, err_msg=name)


def test_a_flipped_bit_in_a_block_is_named(grown_store: ModelStore):
    view = grown_store.open_bank()
    file = view.segments[0].file
    data = bytearray(file.read_bytes())
    offset = (
        view.segments[0].blocks.__array_interface__["data"][0]
        - np.frombuffer(view.segments[0]._map, np.uint8, count=1).__array_interface__["data"][0]
    )
    del view
    data[offset + 1000] ^= 0x10
    file.write_bytes(bytes(data))
    with pytest.raises(BankCorruptError, match=rf"{file.name}: block 0 \(speakers 0-127\) fails its CRC-32"):
        full_scores(grown_store)


def test_the_bank_checksum_is_zlibs_crc32_so_banks_written_either_way_read_the_same():
    import zlib

    from spkid.store import bank_file

    data = np.random.default_rng(5).integers(0, 256, 200_003, dtype=np.uint8)
    for start in (0, 12345):
        assert bank_file.crc32(data, start) == zlib.crc32(data, start)
        assert bank_file.crc32(data[:7].tobytes(), start) == zlib.crc32(data[:7].tobytes(), start)


def test_a_damaged_header_or_stale_bank_is_rebuilt_with_a_warning(grown_store: ModelStore, caplog):
    view = grown_store.open_bank()
    file = view.segments[0].file
    del view
    data = bytearray(file.read_bytes())
    data[40] ^= 0x01
    file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="spkid.store.bank"):
        names, _, _ = full_scores(grown_store)
    assert sorted(names) == grown_store.speakers()
    assert f"{file.name}: bank segment header fails its CRC-32" in caplog.text and "rebuilding" in caplog.text
    caplog.clear()
    grown_store.speaker_path("s100").unlink()  # removed behind the store's back
    with caplog.at_level(logging.WARNING, logger="spkid.store.bank"):
        names, _, _ = full_scores(grown_store)
    assert "s100" not in names and "(stale)" in caplog.text


# The store's operations in a child process that SIGKILLs itself at the n-th step of the write protocol
# (before or after each temp-file creation, fsync, rename, unlink), printing each operation it finished.
CHILD = """
import os, signal, sys
from pathlib import Path
kill_at = int(sys.argv[2])
import spkid.atomic as atomic, spkid.store.bank as bank
steps = 0
def step():
    global steps
    steps += 1
    if steps == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
def hooked(function):
    def call(*args, **kwargs):
        step(); result = function(*args, **kwargs); step(); return result
    return call
atomic.tempfile.mkstemp = hooked(atomic.tempfile.mkstemp)
for name in ("fsync", "replace", "unlink"):
    setattr(atomic.os, name, hooked(getattr(atomic.os, name)))
bank.os.unlink = atomic.os.unlink
bank.MAX_SEGMENTS = 3
sys.path.insert(0, sys.argv[3])
from test_bank import make_stats
from spkid.store import ModelStore
store = ModelStore.open(sys.argv[1])
ubm = store.load_ubm()
def done(what):
    print(what, flush=True)
for index in range(4):
    store.save_speaker_stats(f"k{index}", make_stats(ubm, 50 + index)); done(f"saved k{index}")
store.remove_speaker("s001"); done("removed s001")
names = ["b0", "b1", "b2"]
with store.bank_batch(names):
    for index, name in enumerate(names):
        store.save_speaker_stats(name, make_stats(ubm, 60 + index)); done(f"saved {name}")
store.remove_speaker("k0"); done("removed k0")
done("finished")
"""


def test_sigkill_at_any_step_loses_no_speaker_and_leaves_a_bank_that_loads(tmp_path: Path):
    model = tmp_path / "model"
    store = make_store(model)
    ubm = store.load_ubm()
    with store.bank_batch(["s000", "s001", "s002"]):
        for index in range(3):
            store.save_speaker_stats(f"s{index:03d}", make_stats(ubm, index))
    steps = [1, 2, 5, 9, 14, *random.Random(16).sample(range(15, 260), 7)]
    outcomes = []
    for kill_at in [*steps, 0]:
        copy = tmp_path / f"run{kill_at}"
        subprocess.run(["cp", "-a", str(model), str(copy)], check=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(copy), str(kill_at), str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        finished = child.stdout.split()
        if kill_at == 0:
            assert child.returncode == 0 and "finished" in finished, child.stderr
        present = {"s000", "s001", "s002"}
        for line in child.stdout.splitlines():
            verb, name = line.split()[0], line.split()[-1]
            present = present | {name} if verb == "saved" else present - {name}
        reopened = ModelStore.open(copy)
        stored = set(reopened.speakers())
        in_flight = {"k0", "k1", "k2", "k3", "b0", "b1", "b2", "s001"}
        assert present - in_flight <= stored, f"step {kill_at}: lost {sorted(present - stored)}"
        assert stored - present <= in_flight, f"step {kill_at}: unexpected {sorted(stored - present)}"
        finished_ops = present if "finished" in finished else set()
        assert not finished_ops or stored == finished_ops
        view = reopened.open_bank()
        assert sorted(view.names) == sorted(stored), f"step {kill_at}: bank {view.names} vs {stored}"
        assert list((copy / "bank").glob("pending-*")) == []
        outcomes.append((kill_at, child.returncode, len(stored)))
    assert any(code == -9 for _, code, _ in outcomes) and outcomes[-1][1] == 0
    print(json.dumps(outcomes))


def test_segments_carry_each_speakers_summary_kind_and_older_segments_read_as_over_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The bank keeps which cohort scores a speaker's stored summary covers (adaptive S-norm's top k, or all);
    a segment written before that array existed reads as 'all', as its speaker files do."""
    from spkid.store import SpeakerCohortStats, bank_file

    store = make_store(tmp_path / "model")
    ubm = store.load_ubm()
    summaries = {"a": SpeakerCohortStats(-1.0, 0.5, TOP_C, 50), "b": SpeakerCohortStats(-2.0, 0.25, TOP_C)}
    for index, (name, summary) in enumerate(summaries.items()):
        store.save_speaker_stats(name, make_stats(ubm, index), cohort_stats=summary)
    view = store.open_bank()
    assert [view.cohort_stats(view.names.index(name)) for name in summaries] == [
        tuple(s) for s in summaries.values()
    ]
    reopened = ModelStore.open(tmp_path / "model")
    reopened.load_speaker("a")
    assert reopened.cohort_stats["a"] == summaries["a"]
    # as an spkid before the array wrote it: the same file layout without cohort_top_k
    monkeypatch.setattr(bank_file, "_ARRAYS", bank_file._ARRAYS[:-1])
    store.rebuild_bank()
    monkeypatch.undo()
    old = ModelStore.open(tmp_path / "model").open_bank()
    assert "cohort_top_k" not in old.segments[0]._header()[0]["arrays"]  # the older layout
    assert old.cohort_stats(old.names.index("a")) == (-1.0, 0.5, TOP_C, None)
    assert old.cohort_stats(old.names.index("b")) == (-2.0, 0.25, TOP_C, None)
