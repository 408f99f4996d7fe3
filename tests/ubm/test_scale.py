"""Out-of-core UBM training: the feature store, sharded E-steps, and the local / joblib / dask backends."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from typer.testing import CliRunner

from spkid.errors import ConfigError, ConvergenceWarning, ModelError, StoreError
from spkid.features import FeatureConfig, FeatureFile, FeatureStore, StoredFeatures, extract_many
from spkid.gmm import DiagonalGMM, run_em
from spkid.ubm import UBMConfig, shards, train_ubm
from spkid.ubm.backends import (
    DaskBackend,
    LocalBackend,
    ShardStatistics,
    initial_model,
    open_backend,
)
from spkid.ubm.shards import ModelParams, ShardTask, frame_sources, make_shards, task_statistics
from spkid.ubm.train import train_sharded

N_FEATURES = 5
SHARD_FRAMES = 1500  # several shards from a few thousand frames, so workers really share the work


def utterances(n_frames: int, seed: int) -> list[np.ndarray]:
    """Frames from 6 well-separated Gaussians, cut into utterances of uneven length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(6, N_FEATURES))
    labels = rng.integers(0, 6, n_frames)
    frames = (centres[labels] + rng.normal(size=(n_frames, N_FEATURES))).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, n_frames), size=24, replace=False))
    return np.split(frames, cuts)


@pytest.fixture(scope="module")
def pool() -> list[np.ndarray]:
    return utterances(9000, seed=5)


@pytest.fixture(scope="module")
def stored(pool: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> StoredFeatures:
    store = FeatureStore(tmp_path_factory.mktemp("store"))
    return store.write("pool", ((f"utt{i}", frames) for i, frames in enumerate(pool)))


@pytest.fixture(scope="module")
def dask_address():
    """One local Dask cluster (2 worker processes on 127.0.0.1) for the module, started by the backend."""
    pytest.importorskip("dask.distributed")
    backend = DaskBackend(scheduler=None, n_workers=2)
    yield backend._cluster.scheduler_address
    backend.close()


def config(**settings) -> UBMConfig:
    return UBMConfig(**{"n_components": 8, "max_iter": 4, "tol": 0.0, "random_state": 3, **settings})


def assert_same_model(a: DiagonalGMM, b: DiagonalGMM) -> None:
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.variances_, b.variances_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.history_, b.history_, rtol=1e-6)


# ------------------------------------------------------------------------------------------ feature store
class TestFeatureStore:
    def test_round_trip_is_memory_mapped(self, pool, stored):
        assert len(stored) == len(pool) and stored.n_frames == sum(len(x) for x in pool)
        reloaded = FeatureStore(Path(stored.files[0].path).parents[2]).load("pool")
        assert reloaded.utterance_ids == [f"utt{i}" for i in range(len(pool))]
        for original, mapped in zip(pool, reloaded, strict=True):
            assert isinstance(mapped, np.memmap) and mapped.dtype == np.float32
            np.testing.assert_array_equal(mapped, original)
            with pytest.raises(ValueError):
                mapped[0, 0] = 1.0  # read-only
        index = json.loads((Path(stored.files[0].path).parents[2] / "index" / "pool.json").read_text())
        assert index["columns"][:3] == ["utterance_id", "source", "n_frames"]
        assert [row[2] for row in index["utterances"]] == [len(x) for x in pool]

    def test_memmap_views_are_described_by_file_and_rows(self, stored, pool):
        whole = stored[3]
        view = whole[5:40]
        described = FeatureFile.of_memmap(view)
        assert described is not None and described.path == stored.files[3].path
        np.testing.assert_array_equal(described.open(), pool[3][5:40])
        np.testing.assert_array_equal(described.open(10, 12), pool[3][15:17])
        assert FeatureFile.of_memmap(np.array(view)) is None  # in memory
        assert FeatureFile.of_memmap(whole[:, 1:3]) is None  # rows not contiguous
        sources, width = frame_sources([whole, np.asarray(pool[1])])
        assert width == N_FEATURES
        assert isinstance(sources[0], FeatureFile) and isinstance(sources[1], np.ndarray)

    def test_load_detects_missing_files(self, tmp_path):
        store = FeatureStore(tmp_path)
        written = store.write("x", [("a", np.ones((4, 2))), ("b", np.zeros((3, 2)))])
        os.remove(written.files[1].path)
        with pytest.raises(StoreError, match="missing or changed"):
            store.load("x")
        with pytest.raises(StoreError, match="no such feature index"):
            store.load("y")
        with pytest.raises(StoreError, match="index name"):
            store.load("../x")

    def test_build_extracts_once_shares_the_cache_and_notices_changes(
        self, synthetic_corpus, tmp_path, monkeypatch
    ):
        files = sorted(synthetic_corpus.rglob("*.wav"))[:6]
        feature_config = FeatureConfig()
        built = FeatureStore(tmp_path).build(files, feature_config)
        reference = extract_many(files, feature_config)
        assert built.paths == files and len(list(tmp_path.glob("index/*.json"))) == 1
        for mapped, expected in zip(built, reference, strict=True):
            np.testing.assert_array_equal(mapped, expected)

        from spkid.features import batch

        def no_extraction(function, paths, *args, **kwargs):
            if paths:
                raise AssertionError(f"features of {paths} were extracted again")
            return iter(())

        monkeypatch.setattr(batch, "run_batches", no_extraction)
        again = FeatureStore(tmp_path).build(files, feature_config)  # index re-used
        assert [f.path for f in again.files] == [f.path for f in built.files]
        shared = extract_many(files, feature_config, cache_dir=tmp_path)  # extract_many reads the same files
        assert all(np.array_equal(a, b) for a, b in zip(shared, reference, strict=True))

        os.utime(files[2], ns=(10**18, 10**18))  # a changed source is extracted again, the others are not
        calls = []
        monkeypatch.undo()
        real = batch.run_batches

        def counting(function, paths, *args, **kwargs):
            calls.append(paths)
            return real(function, paths, *args, **kwargs)

        monkeypatch.setattr(batch, "run_batches", counting)
        FeatureStore(tmp_path).build(files, feature_config)
        assert calls == [[files[2]]]


# ------------------------------------------------------------------------------------------ sharded E-step
def test_shard_statistics_match_a_reference_in_bounded_batches(stored, pool, monkeypatch):
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(4))
    means, variances = rng.normal(scale=5, size=(4, N_FEATURES)), rng.uniform(0.5, 2, size=(4, N_FEATURES))
    model = DiagonalGMM.from_params(weights, means, variances)
    monkeypatch.setattr(shards, "READ_BATCH_FRAMES", 700)
    seen = []

    class Spy:
        means_ = model.means_

        def accumulate(self, batch, **settings):
            seen.append(sum(len(x) for x in batch))
            assert all(isinstance(x, np.memmap) for x in batch)  # mapped from the files, not loaded
            return model.parameters().accumulate(batch, **settings)

    sources, _ = frame_sources(stored)
    total = sum(
        task_statistics(ModelParams(Spy()), ShardTask(shard)) for shard in make_shards(sources, SHARD_FRAMES)
    )
    assert max(seen) < 2 * 700 and sum(seen) == stored.n_frames
    # Responsibilities from scikit-learn with the same parameters.
    reference = GaussianMixture(4, covariance_type="diag")
    reference.weights_, reference.means_, reference.covariances_ = weights, means, variances
    reference.precisions_cholesky_ = 1 / np.sqrt(variances)
    frames = np.concatenate(pool).astype(np.float64)
    gamma = reference.predict_proba(frames)
    np.testing.assert_allclose(total.zeroth, gamma.sum(0), rtol=1e-4)
    np.testing.assert_allclose(total.first, gamma.T @ frames, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(total.second, gamma.T @ frames**2, rtol=1e-4, atol=1e-2)
    assert total.log_likelihood == pytest.approx(reference.score(frames) * len(frames), rel=1e-5)


# ------------------------------------------------------------------------------------------ backends agree
def test_in_process_joblib_and_dask_give_the_same_ubm(stored, pool, dask_address):
    from dask.distributed import Client, get_task_stream

    in_process = train_sharded(stored, config(), frames_per_shard=SHARD_FRAMES)
    from_memory = train_sharded(pool, config(), frames_per_shard=SHARD_FRAMES)
    joblib_model = train_sharded(stored, config(backend="joblib", n_jobs=2), frames_per_shard=SHARD_FRAMES)
    with Client(dask_address) as client, get_task_stream(client) as stream:
        dask_model = train_sharded(
            stored, config(backend="dask", scheduler=dask_address), frames_per_shard=SHARD_FRAMES
        )
    assert in_process.n_iter_ == 4 and in_process.history_[-1] > in_process.history_[0]
    for model in (from_memory, joblib_model, dask_model):
        assert_same_model(model, in_process)
    workers = {task["worker"] for task in stream.data if task["key"].startswith("shards_statistics")}
    assert len(workers) == 2  # both worker processes did part of the E-steps


def test_train_ubm_uses_the_configured_backend(stored, pool):
    local = train_ubm(pool, config(max_iter=3))
    pooled = train_ubm(stored, config(max_iter=3, backend="joblib", n_jobs=2))
    assert_same_model(local, pooled)
    frames = np.concatenate(pool)
    sklearn = GaussianMixture(8, covariance_type="diag", random_state=0, n_init=2).fit(frames)
    assert local.score(frames) == pytest.approx(sklearn.score(frames), abs=0.1)


# ------------------------------------------------------------------------------------------ one EM loop
@pytest.mark.parametrize("backend", ["local", "joblib"])
def test_diagonal_gmm_fit_and_train_ubm_run_the_same_em(pool, backend):
    """One loop (spkid.gmm.run_em) behind both: from the UBM's starting point, DiagonalGMM.fit on the same
    frames gives the UBM bit for bit (one shard, so the statistics are summed in the same order)."""
    settings = config(backend=backend, n_jobs=2 if backend == "joblib" else 1)
    ubm = train_ubm(pool, settings)
    sources, _ = frame_sources(pool)
    start = initial_model(sources, 8, settings)
    fitted = DiagonalGMM(
        8,
        max_iter=4,
        tol=0.0,
        variance_floor=settings.variance_floor,
        weights_init=start.weights_,
        means_init=start.means_,
        variances_init=start.variances_,
    ).fit(pool)
    for name in ("weights_", "means_", "variances_", "history_", "n_iter_", "converged_"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(ubm, name))


def test_train_ubm_logs_every_iteration_and_warns_only_for_a_requested_tol(pool, caplog):
    caplog.set_level(logging.INFO, logger="spkid.gmm.em")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ubm = train_ubm(pool, config(max_iter=3, tol=UBMConfig().tol))  # the default: no warning
    lines = [record.getMessage() for record in caplog.records if record.name == "spkid.gmm.em"]
    assert [line.split(":")[0] for line in lines[:3]] == [f"UBM EM iteration {i}/3" for i in (1, 2, 3)]
    assert f"log-likelihood per frame {ubm.history_[2]:.6f}, gain " in lines[2]
    assert lines[-1].startswith(("UBM EM converged", "UBM EM did not converge"))
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    with pytest.warns(ConvergenceWarning, match="UBM: EM did not converge within max_iter=2"):
        train_ubm(pool, config(max_iter=2, tol=1e-12))


# ------------------------------------------------------------------------------------------ subsampling
class CountingBackend(LocalBackend):
    def __init__(self) -> None:
        super().__init__()
        self.frames_per_iteration: list[int] = []

    def map(self, tasks, params):
        results = super().map(tasks, params)
        self.frames_per_iteration.append(sum(stats.n_frames for stats in results))
        return results


def test_subsampling_is_exact_reproducible_and_backend_independent(stored, pool):
    settings = config(max_frames=2000, max_iter=3)
    sources, _ = frame_sources(stored)
    backend = CountingBackend()
    start = initial_model(sources, 8, settings)
    source = ShardStatistics(
        make_shards(sources, SHARD_FRAMES), backend, max_frames=2000, random_state=settings.random_state
    )
    counted = run_em(start, source, max_iter=3, tol=0.0, variance_floor=settings.variance_floor)
    assert backend.frames_per_iteration == [2000, 2000, 2000]
    again = train_sharded(stored, settings, frames_per_shard=SHARD_FRAMES)
    np.testing.assert_array_equal(again.means_, counted.means_)  # same seed, same model, bit for bit
    in_memory = train_sharded(pool, settings, frames_per_shard=SHARD_FRAMES)
    np.testing.assert_array_equal(in_memory.means_, counted.means_)
    pooled = train_sharded(
        stored, config(max_frames=2000, max_iter=3, backend="joblib", n_jobs=2), frames_per_shard=SHARD_FRAMES
    )
    assert_same_model(pooled, counted)
    other_seed = train_sharded(
        stored, config(max_frames=2000, max_iter=3, random_state=4), frames_per_shard=SHARD_FRAMES
    )
    assert not np.allclose(other_seed.means_, counted.means_)
    full = train_sharded(stored, config(max_iter=3), frames_per_shard=SHARD_FRAMES)
    frames = np.concatenate(pool)
    assert counted.score(frames) == pytest.approx(full.score(frames), abs=0.05)


# ------------------------------------------------------------------------------------------ errors
def test_missing_dask_says_how_to_install(pool, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"dask\.distributed is not installed.*pip install 'spkid\[dask\]'"):
        train_ubm(pool, config(backend="dask"))


def test_bad_settings_and_bad_files(stored, tmp_path):
    with pytest.raises(ConfigError, match="ubm.scheduler='tcp://h:1': only used with ubm.backend=dask"):
        open_backend("joblib", scheduler="tcp://h:1")
    store = FeatureStore(tmp_path)
    frames = np.ones((400, 3), np.float32)
    frames[123, 1] = np.nan
    bad = store.write("bad", [("a", np.random.default_rng(0).normal(size=(400, 3))), ("b", frames)])
    with pytest.raises(ModelError, match=r"b.*\.npy: rows .* hold NaN"):
        train_ubm(bad, config(n_components=2, min_frames_per_component=10))
    gone = store.write("gone", [("a", np.ones((400, 3)))])
    os.remove(gone.files[0].path)
    with pytest.raises(StoreError, match="shared filesystem"):
        train_ubm(gone, config(n_components=2, min_frames_per_component=10))


# ------------------------------------------------------------------------------------------ command line
def test_cli_trains_from_a_feature_store_with_joblib(synthetic_corpus, tmp_path):
    from spkid.cli import app
    from spkid.store import ModelStore

    result = CliRunner().invoke(
        app,
        [
            "--quiet",
            "train-ubm",
            str(tmp_path / "model"),
            str(synthetic_corpus),
            "-k",
            "8",
            "--backend",
            "joblib",
            "--set",
            "ubm.n_jobs=2",
            "--set",
            "ubm.max_iter=2",
            "--feature-store",
            str(tmp_path / "features"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained UBM (8 components" in result.output
    # two indexes per front-end: the un-normalised features, then those normalised toward their statistics
    # (adaptive CMVN); bands: auto trains the wideband companion's UBM on this wideband pool too
    assert len(list((tmp_path / "features" / "index").glob("*.json"))) == 4
    assert ModelStore.open(tmp_path / "model").load_ubm().n_components == 8
    result = CliRunner().invoke(
        app, ["train-ubm", str(tmp_path / "m2"), str(synthetic_corpus), "--backend", "spark"]
    )
    assert result.exit_code == 1 and "ubm.backend='spark'" in result.output
