"""Tests of spkid.store: layout, validation, atomic writes, locking, crash safety, and no pickle anywhere."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import multiprocessing
import os
import pickle
import random
import signal
import stat
from pathlib import Path

import numpy as np
import pytest

import spkid
import spkid.atomic
from spkid.atomic import atomic_write_bytes, encode_npz
from spkid.errors import StoreError
from spkid.gmm import DiagonalGMM
from spkid.store import (
    FORMAT_VERSION,
    ModelStore,
    config_differences,
    speaker_file_name,
    validate_speaker_name,
)
from spkid.store.locking import writer_lock
from spkid.store.manifest import new_manifest

N_COMPONENTS, N_FEATURES = 8, 6
FEATURES = {"sample_rate": 16000, "n_ceps": 2, "delta_order": 2, "window": "hamming"}
CONFIGS = {
    "feature_config": FEATURES,
    "ubm_config": {"n_components": N_COMPONENTS, "random_state": 0},
    "enroll_config": {"relevance_factor": 16.0, "adapt": ("means",)},
    "score_config": {"top_c": 5},
}


def make_gmm(seed: int, n_components: int = N_COMPONENTS, n_features: int = N_FEATURES) -> DiagonalGMM:
    rng = np.random.default_rng(seed)
    weights = rng.random(n_components) + 0.1
    return DiagonalGMM.from_params(
        weights / weights.sum(),
        rng.standard_normal((n_components, n_features)),
        rng.random((n_components, n_features)) + 0.5,
    )


def assert_same_gmm(left: DiagonalGMM, right: DiagonalGMM) -> None:
    np.testing.assert_array_equal(left.weights_, right.weights_)
    np.testing.assert_array_equal(left.means_, right.means_)
    np.testing.assert_array_equal(left.variances_, right.variances_)


def temp_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(spkid.atomic.TEMP_PREFIX + "*")]


@pytest.fixture()
def store(tmp_path) -> ModelStore:
    return ModelStore.create(tmp_path / "model", ubm=make_gmm(0), **CONFIGS)


# ------------------------------------------------------------------------------------------ layout
def test_create_open_and_manifest(store):
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION and manifest["spkid_version"] == spkid.__version__
    assert manifest["feature_config"] == FEATURES
    assert manifest["enroll_config"] == {"relevance_factor": 16.0, "adapt": ["means"]}
    assert manifest["ubm_shape"] == [N_COMPONENTS, N_FEATURES]
    assert manifest["files"]["ubm.npz"] == hashlib.sha256((store.path / "ubm.npz").read_bytes()).hexdigest()
    assert "T" in manifest["created"]
    opened = ModelStore.open(store.path)
    assert opened.feature_config == FEATURES and opened.score_config == {"top_c": 5}
    assert opened.ubm_config == CONFIGS["ubm_config"] and opened.speakers() == []
    assert_same_gmm(opened.load_ubm(), make_gmm(0))


def test_speakers_round_trip_replace_and_remove(store):
    store.save_speaker("alice", make_gmm(1))
    store.save_speaker("bob", make_gmm(2))
    reopened = ModelStore.open(store.path)
    assert reopened.speakers() == ["alice", "bob"] and "alice" in reopened and "carol" not in reopened
    assert_same_gmm(reopened.load_speaker("alice"), make_gmm(1))
    with pytest.raises(StoreError, match=r"speaker 'alice' is already enrolled .*replace=True"):
        reopened.save_speaker("alice", make_gmm(3))
    assert_same_gmm(reopened.load_speaker("alice"), make_gmm(1))
    reopened.save_speaker("alice", make_gmm(3), replace=True)
    loaded = reopened.load_speakers()
    assert list(loaded) == ["alice", "bob"]
    assert_same_gmm(loaded["alice"], make_gmm(3))
    reopened.remove_speaker("alice")
    assert reopened.speakers() == ["bob"]
    with pytest.raises(StoreError, match=r"speaker 'alice' is not enrolled"):
        reopened.remove_speaker("alice")
    with pytest.raises(StoreError, match=r"speaker 'alice' is not enrolled"):
        reopened.load_speaker("alice")


def test_missing_model_dir(tmp_path):
    with pytest.raises(StoreError, match=r"no model at .*nowhere; run spkid train-ubm first"):
        ModelStore.open(tmp_path / "nowhere")


def test_create_refuses_to_overwrite_unless_asked(store):
    store.save_speaker("alice", make_gmm(1))
    store.save_cohort({"scores": np.arange(3.0)})
    with pytest.raises(StoreError, match=r"a model already exists here; pass overwrite=True"):
        ModelStore.create(store.path, ubm=make_gmm(5), **CONFIGS)
    assert ModelStore.open(store.path).speakers() == ["alice"]
    fresh = ModelStore.create(store.path, ubm=make_gmm(5, n_components=4), **CONFIGS, overwrite=True)
    assert fresh.speakers() == [] and not fresh.has_cohort() and fresh.ubm_shape == (4, N_FEATURES)
    assert_same_gmm(ModelStore.open(store.path).load_ubm(), make_gmm(5, n_components=4))
    # the old handle notices the UBM changed under it instead of writing a mismatched speaker
    with pytest.raises(StoreError, match="re-created since it was opened"):
        store.save_speaker("bob", make_gmm(2))


def test_loaded_mean_only_speakers_share_the_ubm_arrays(store):
    ubm = store.load_ubm()
    mean_only = DiagonalGMM.from_params(ubm.weights_, ubm.means_ + 0.5, ubm.variances_)
    own_variances = DiagonalGMM.from_params(ubm.weights_, ubm.means_ + 0.5, ubm.variances_ * 1.5)
    store.save_speaker("alice", mean_only)
    store.save_speaker("bob", own_variances)
    alice, bob = store.load_speaker("alice"), store.load_speaker("bob")
    # One read-only copy of the UBM's arrays for every mean-only speaker, and the parameters unchanged.
    assert alice.weights_ is ubm.weights_ and alice.variances_ is ubm.variances_
    assert bob.weights_ is ubm.weights_ and bob.variances_ is not ubm.variances_
    assert_same_gmm(alice, mean_only)
    assert_same_gmm(bob, own_variances)
    assert not alice.variances_.flags.writeable
    shared = mean_only.parameters().sharing(own_variances.parameters())
    assert shared.weights_ is own_variances.weights_ and shared.variances_ is mean_only.variances_


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("format_version", FORMAT_VERSION + 1, rf"format {FORMAT_VERSION + 1}\); this is .*upgrade spkid"),
        ("format_version", 0, r"model format 0\).*retrain it with spkid train-ubm"),
        ("spkid_version", "99.0.0", r"written by spkid 99.0.0 .*retrain"),
        ("format", "something-else", r"not a spkid model manifest"),
    ],
)
def test_version_checks(store, field, value, pattern):
    manifest_path = store.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest[field] = value
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=pattern):
        ModelStore.open(store.path)


def test_unreadable_manifest(store):
    (store.path / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"manifest.json: unreadable model manifest"):
        ModelStore.open(store.path)


@pytest.mark.parametrize("key", ["score_config", "ubm_shape", "files"])
def test_manifest_missing_a_required_key_is_refused(store, key):
    manifest_path = store.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest[key]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=rf"manifest.json: manifest lacks '{key}'"):
        ModelStore.open(store.path)


def test_new_manifest_needs_every_config_section():
    configs = {name: {} for name in ("feature_config", "ubm_config", "enroll_config")}
    with pytest.raises(StoreError, match=r"config section 'score_config' is missing"):
        new_manifest(configs, (4, 3), {})
    with pytest.raises(StoreError, match=r"cannot be stored as JSON"):
        new_manifest({**configs, "score_config": {"bad": object()}}, (4, 3), {})


def test_feature_config_check_lists_every_difference(store):
    store.check_feature_config(dict(FEATURES))  # identical: fine
    changed = {**FEATURES, "sample_rate": 8000, "window": "hann", "n_mels": 40}
    del changed["n_ceps"]
    with pytest.raises(StoreError) as info:
        store.check_feature_config(changed)
    message = str(info.value)
    for expected in (
        "sample_rate (model 16000, now 8000)",
        'window (model "hamming", now "hann")',
        "n_ceps (model 2, now unset)",
        "n_mels (model unset, now 40)",
    ):
        assert expected in message
    assert "\n" not in message
    assert config_differences({"adapt": ("means",)}, {"adapt": ["means"]}) == []


# ------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "must not contain '..'"),
        ("a..b", "must not contain '..'"),
        (".hidden", "must not start with '.'"),
        ("", "must not be empty"),
        ("x" * 300, "is 300 characters long; the limit is 200"),
        ("a\x00b", "control characters"),
        ("line\nbreak", "control characters"),
        (" padded", "whitespace"),
        (123, "must be a string"),
    ],
)
def test_bad_speaker_names(store, name, rule):
    with pytest.raises(StoreError, match=rf"speaker name .*{rule}"):
        store.save_speaker(name, make_gmm(1))
    with pytest.raises(StoreError, match=rf"speaker name .*{rule}"):
        validate_speaker_name(name)
    assert list((store.path / "speakers").iterdir()) == []
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["model"]


@pytest.mark.parametrize(
    "name",
    [
        "José García",
        "id10270-x6uYqmx31kE-00001",
        "O'Brien & co",
        "名字",
        "名" * 200,
        "a" * 200,
        "100%",
        "a+b",
        "CON",
        "x~y",
    ],
)
def test_good_speaker_names_map_to_safe_files(store, name):
    store.save_speaker(name, make_gmm(1))
    (file,) = (store.path / "speakers").iterdir()
    assert file == store.speaker_path(name) and file.name == speaker_file_name(name)
    assert len(file.name.encode()) < 255 and "/" not in file.name and not file.name.startswith(".")
    assert store.speakers() == [name]
    assert_same_gmm(store.load_speaker(name), make_gmm(1))


def test_file_names_are_distinct_for_similar_names():
    names = ["a b", "a%20b", "a+b", "A b", "名" * 200, "名" * 199 + "字", "x" * 200, "x" * 199 + "y"]
    assert len({speaker_file_name(name) for name in names}) == len(names)


def test_stray_file_in_speakers_dir_is_reported(store):
    (store.path / "speakers" / "not canonical.npz").write_bytes(b"x")
    with pytest.raises(StoreError, match=r"not canonical.npz: not a speaker file written by spkid"):
        store.speakers()


# ------------------------------------------------------------------------------------------ validation
def test_models_that_do_not_fit_the_ubm_are_refused(store):
    with pytest.raises(StoreError, match=r"has 4 components x 6 features but the UBM has 8 x 6"):
        store.save_speaker("alice", make_gmm(1, n_components=4))
    with pytest.raises(StoreError, match=r"alice.npz: invalid speaker 'alice': .*NaN or infinite"):
        store.save_speaker("alice", NaNModel())
    assert store.speakers() == []


class NaNModel:
    """Not a DiagonalGMM (which refuses NaN itself): something whose arrays hold NaN, offered to the store."""

    def to_dict(self) -> dict:
        values = make_gmm(1).to_dict()
        values["means"] = np.full((N_COMPONENTS, N_FEATURES), np.nan)
        return values


def rewrite_speaker(store: ModelStore, name: str, **changes: np.ndarray) -> None:
    """Tamper with a speaker file but keep its embedded hash valid, so only validation can catch it."""
    file = store.speaker_path(name)
    with np.load(file, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if key != "__sha256__"}
    arrays.update(changes)
    file.write_bytes(encode_npz(arrays))


def test_tampered_speaker_files_are_rejected(store, tmp_path):
    store.save_speaker("alice", make_gmm(1))
    good = make_gmm(1).to_dict()
    key_means = next(key for key, value in good.items() if np.shape(value) == (N_COMPONENTS, N_FEATURES))
    means = np.array(make_gmm(1).means_)
    means[2, 3] = np.nan
    rewrite_speaker(store, "alice", **{key_means: means})
    with pytest.raises(StoreError, match=r"alice.npz: .*(NaN|non-finite|finite)"):
        store.load_speaker("alice")

    store.save_speaker("alice", make_gmm(1), replace=True)
    smaller = make_gmm(1, n_components=N_COMPONENTS - 1).to_dict()
    rewrite_speaker(store, "alice", **{k: np.asarray(v) for k, v in smaller.items() if v is not None})
    with pytest.raises(StoreError, match=r"alice.npz: .*(7 components|shape)"):
        store.load_speaker("alice")

    store.save_speaker("alice", make_gmm(1), replace=True)
    data = bytearray(store.speaker_path("alice").read_bytes())
    position = data.index(np.asarray(make_gmm(1).means_).tobytes()[:16])
    data[position] ^= 0xFF  # flip a byte inside the means without touching the zip structure
    store.speaker_path("alice").write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"alice.npz: speaker file"):
        store.load_speaker("alice")


@pytest.mark.parametrize(
    "offset, value",
    [
        (6, b"\x40\x00"),  # version needed to extract: 6.4, newer than zipfile reads
        (10, b"\x63\x00"),  # compression method 99: unknown
        (10, b"\x08\x00"),  # deflate over stored (uncompressed) bytes
        (8, b"\x01\x00"),  # flag bit 0: encrypted
    ],
)
def test_corrupted_zip_headers_of_a_speaker_file_are_rejected(store, offset, value):
    """Found by the robustness fuzz test: header corruptions zipfile reports outside BadZipFile."""
    store.save_speaker("alice", make_gmm(1))
    path = store.speaker_path("alice")
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[entry + offset : entry + offset + 2] = value
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"alice.npz: speaker file"):
        store.load_speaker("alice")


def test_non_positive_variances_with_valid_hash_are_rejected(store):
    store.save_speaker("alice", make_gmm(1))
    good = make_gmm(1)
    variances = np.array(good.variances_)
    variances[0, 0] = -1.0
    key = next(
        k
        for k, v in good.to_dict().items()
        if np.shape(v) == variances.shape and np.allclose(v, good.variances_)
    )
    rewrite_speaker(store, "alice", **{key: variances})
    with pytest.raises(StoreError, match=r"alice.npz: .*(variance|positive)"):
        store.load_speaker("alice")


def test_speaker_file_moved_or_from_another_model_is_rejected(store, tmp_path):
    store.save_speaker("alice", make_gmm(1))
    os.replace(store.speaker_path("alice"), store.speaker_path("bob"))
    with pytest.raises(StoreError, match=r"bob.npz: holds speaker 'alice', expected 'bob'"):
        store.load_speaker("bob")
    other = ModelStore.create(tmp_path / "other", ubm=make_gmm(9), **CONFIGS)
    other.save_speaker("carol", make_gmm(3))
    os.replace(other.speaker_path("carol"), store.speaker_path("carol"))
    with pytest.raises(StoreError, match=r"carol.npz: made with a different UBM"):
        store.load_speaker("carol")


def test_tampered_ubm_is_rejected(store):
    data = bytearray((store.path / "ubm.npz").read_bytes())
    data[-100] ^= 0x01
    (store.path / "ubm.npz").write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"ubm.npz: SHA-256 does not match the manifest"):
        ModelStore.open(store.path).load_ubm()


def test_pickle_is_never_used(store, monkeypatch):
    store.save_speaker("alice", make_gmm(1))
    # an object array needs pickle to load; it must be refused without ever unpickling
    np.savez(store.speaker_path("bob"), weights=np.array([{"evil": 1}], dtype=object), __sha256__="x")
    monkeypatch.setattr(pickle, "load", _forbidden)
    monkeypatch.setattr(pickle, "loads", _forbidden)
    with pytest.raises(StoreError, match=r"bob.npz: speaker file refused: .*pickle"):
        store.load_speaker("bob")
    assert_same_gmm(store.load_speaker("alice"), make_gmm(1))
    with pytest.raises(StoreError, match=r"cohort array 'x' has dtype object; expected numbers"):
        store.save_cohort({"x": np.array([object()], dtype=object)})
    with pytest.raises(StoreError, match=r"value of 'extra' \(dict\) cannot be stored without pickle"):
        spkid.atomic.to_arrays({"extra": {"nested": 1}}, what="speaker")


def _forbidden(*args, **kwargs):
    raise AssertionError("pickle was called")


# ------------------------------------------------------------------------------------------ cohort
def test_cohort_round_trip(store):
    assert not store.has_cohort()
    with pytest.raises(StoreError, match=r"no score-normalisation cohort saved"):
        store.load_cohort()
    cohort = {"scores": np.linspace(-1, 1, 7).astype(np.float32), "counts": np.arange(4), "matrix": np.eye(3)}
    store.save_cohort(cohort)
    loaded = ModelStore.open(store.path).load_cohort()
    assert sorted(loaded) == sorted(cohort)
    for key, value in cohort.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype
    with pytest.raises(StoreError, match=r"cohort array 'bad' holds NaN"):
        store.save_cohort({"bad": np.array([1.0, np.inf])})
    with pytest.raises(StoreError, match=r"cohort array name '__x' must be a non-empty string"):
        store.save_cohort({"__x": np.zeros(2)})
    np.testing.assert_array_equal(store.load_cohort()["scores"], cohort["scores"])  # old cohort kept


# ------------------------------------------------------------------------------------------ atomicity
def test_crash_between_temp_write_and_rename_keeps_old_store(store, monkeypatch):
    store.save_speaker("alice", make_gmm(1))
    before = {p.name: p.read_bytes() for p in store.path.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError(errno.EIO, "simulated crash before rename")

    monkeypatch.setattr(spkid.atomic.os, "replace", crash)
    with pytest.raises(StoreError, match=r"cannot write to the model directory \(simulated crash"):
        store.save_speaker("alice", make_gmm(2), replace=True)
    with pytest.raises(StoreError, match=r"simulated crash"):
        store.save_speaker("bob", make_gmm(2))
    monkeypatch.undo()
    assert temp_files(store.path) == []
    after = {p.name: p.read_bytes() for p in store.path.rglob("*") if p.is_file()}
    assert after == before
    reopened = ModelStore.open(store.path)
    assert reopened.speakers() == ["alice"]
    assert_same_gmm(reopened.load_speaker("alice"), make_gmm(1))


def test_disk_full_keeps_old_store(store, monkeypatch):
    store.save_speaker("alice", make_gmm(1))
    store.save_cohort({"scores": np.ones(3)})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spkid.atomic.os, "fsync", full)
    with pytest.raises(StoreError, match=r"No space left on device\); the stored model is intact"):
        store.save_speaker("alice", make_gmm(2), replace=True)
    with pytest.raises(StoreError, match=r"No space left"):
        store.save_cohort({"scores": np.zeros(3)})
    with pytest.raises(StoreError, match=r"No space left"):
        ModelStore.create(store.path.parent / "new", ubm=make_gmm(0), **CONFIGS)
    with pytest.raises(StoreError, match=r"No space left"):  # a new UBM over the old model
        ModelStore.create(store.path, ubm=make_gmm(5), **CONFIGS, overwrite=True)
    monkeypatch.undo()
    assert ModelStore.open(store.path).speakers() == ["alice"]
    assert_same_gmm(ModelStore.open(store.path).load_ubm(), make_gmm(0))
    assert temp_files(store.path) == []
    assert_same_gmm(store.load_speaker("alice"), make_gmm(1))
    np.testing.assert_array_equal(store.load_cohort()["scores"], np.ones(3))
    with pytest.raises(StoreError, match="no model at"):
        ModelStore.open(store.path.parent / "new")


def test_read_only_directory(store, monkeypatch):
    store.save_speaker("alice", make_gmm(1))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(spkid.atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(StoreError, match=r"Read-only file system"):
        store.save_speaker("bob", make_gmm(2))
    monkeypatch.undo()
    if os.geteuid() != 0:  # root ignores permission bits, so the real chmod check only runs as a user
        os.chmod(store.path / "speakers", 0o555)
        try:
            with pytest.raises(StoreError, match=r"Permission denied"):
                store.save_speaker("bob", make_gmm(2))
        finally:
            os.chmod(store.path / "speakers", 0o755)
    assert store.speakers() == ["alice"]


# ------------------------------------------------------------------------------------------ concurrency
def process_context() -> multiprocessing.context.BaseContext:
    """Fork where available: children start at once with spkid already imported (spawn re-imports it)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _enroll_many(path: str, prefix: str, count: int, start) -> None:
    start.wait()
    store = ModelStore.open(path)
    for index in range(count):
        store.save_speaker(f"{prefix}{index}", make_gmm(100 + index))


def _enroll_same(path: str, seed: int, start, results) -> None:
    start.wait()
    try:
        ModelStore.open(path).save_speaker("shared", make_gmm(seed))
        results.put(("ok", seed))
    except StoreError as exc:
        results.put(("refused", str(exc)))


def test_two_concurrent_writers_both_land(store):
    context = process_context()
    start = context.Event()
    workers = [
        context.Process(target=_enroll_many, args=(str(store.path), prefix, 6, start)) for prefix in "ab"
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    expected = sorted(f"{prefix}{index}" for prefix in "ab" for index in range(6))
    assert store.speakers() == expected
    assert all(model.means_.shape == (N_COMPONENTS, N_FEATURES) for model in store.load_speakers().values())


def test_racing_enrolls_of_one_name_let_exactly_one_win(store):
    context = process_context()
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_enroll_same, args=(str(store.path), seed, start, results))
        for seed in (1, 2, 3)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=120)
    winners = [seed for status, seed in outcomes if status == "ok"]
    assert len(winners) == 1, outcomes
    assert all("already enrolled" in message for status, message in outcomes if status == "refused")
    assert_same_gmm(store.load_speaker("shared"), make_gmm(winners[0]))


def _save_when_told(path: str, go, trying) -> None:
    go.wait()
    trying.set()
    ModelStore.open(path).save_speaker("late", make_gmm(4))


def test_writers_wait_for_the_lock(store):
    context = process_context()
    go, trying = context.Event(), context.Event()
    # start the child before taking the lock: a forked child would otherwise inherit (and keep) our lock
    worker = context.Process(target=_save_when_told, args=(str(store.path), go, trying))
    worker.start()
    with writer_lock(store.path / ".lock"):
        go.set()
        assert trying.wait(timeout=120)
        worker.join(timeout=1.0)
        assert worker.is_alive() and store.speakers() == []  # blocked on the lock we hold
    worker.join(timeout=120)
    assert worker.exitcode == 0 and store.speakers() == ["late"]


def _enroll_until_killed(path: str, first: int, kill_at: int, acks) -> None:
    """Enroll speakers forever, sending each index once saved; with ``kill_at``, SIGKILL itself then."""
    calls = 0

    def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def hooked(function):
        def wrapper(*args, **kwargs):
            tick()  # die just before this step of the write protocol ...
            result = function(*args, **kwargs)
            tick()  # ... or just after it
            return result

        return wrapper

    if kill_at:  # this is a child process: patching here leaves the test process alone
        spkid.atomic.tempfile.mkstemp = hooked(spkid.atomic.tempfile.mkstemp)
        for name in ("fsync", "replace", "unlink"):
            setattr(spkid.atomic.os, name, hooked(getattr(spkid.atomic.os, name)))
    store = ModelStore.open(path)
    for index in range(first, first + 100_000):
        store.save_speaker(f"spk{index:05d}", make_gmm(index, n_components=64, n_features=60), replace=True)
        acks.send(index)


def test_sigkill_during_enrolls_never_loses_speakers(tmp_path):
    """SIGKILL a process enrolling speakers, at random write steps or moments: no enrolled speaker is lost."""
    repeats = int(os.environ.get("SPKID_KILL_REPEATS", "8"))
    store = ModelStore.create(tmp_path / "model", ubm=make_gmm(0, n_components=64, n_features=60), **CONFIGS)
    context = process_context()
    rng = random.Random(1234)
    acknowledged: set[str] = set()
    next_index = 0
    for repeat in range(repeats):
        kill_at = rng.randint(1, 60) if repeat % 2 == 0 else 0
        receiver, sender = context.Pipe(duplex=False)
        arguments = (str(store.path), next_index, kill_at, sender)
        child = context.Process(target=_enroll_until_killed, args=arguments)
        child.start()
        sender.close()
        acked_now: set[int] = set()
        if not kill_at:  # let it finish a random number of enrolls, then kill it mid-stream
            for _ in range(rng.randint(1, 12)):
                acked_now.add(receiver.recv())
            os.kill(child.pid, signal.SIGKILL)
        with contextlib.suppress(EOFError):
            while True:  # enrolls acknowledged before the kill landed
                acked_now.add(receiver.recv())
        child.join(timeout=120)
        assert child.exitcode == -signal.SIGKILL
        acknowledged.update(f"spk{index:05d}" for index in acked_now)
        interrupted = max(acked_now, default=next_index - 1) + 1
        present = set(ModelStore.open(store.path).speakers())
        assert acknowledged <= present
        assert present - acknowledged <= {f"spk{interrupted:05d}"}  # only the interrupted one may be extra
        for name in present:  # every file present is complete and valid
            ModelStore.open(store.path).load_speaker(name)
        acknowledged = present
        next_index = interrupted + 1
    store.save_speaker("after", make_gmm(7, n_components=64, n_features=60))  # stale temp files are cleaned
    assert temp_files(store.path) == []


def test_an_output_that_is_a_pipe_or_device_is_written_through_not_replaced(tmp_path: Path):
    """``spkid score -o /dev/null`` (or a named pipe) once renamed a regular file over the device."""
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open does not block
    try:
        atomic_write_bytes(fifo, b"alice utt1 1.5\n")
        assert os.read(reader, 100) == b"alice utt1 1.5\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [entry.name for entry in tmp_path.iterdir()] == ["scores.fifo"]  # no temporary file left


def test_a_regular_output_is_still_replaced_atomically(tmp_path: Path):
    target = tmp_path / "scores.txt"
    target.write_text("old\n")
    inode = target.stat().st_ino
    atomic_write_bytes(target, b"new\n")
    assert target.read_bytes() == b"new\n" and target.stat().st_ino != inode  # a new file renamed over it
