"""Batch work on workers (issue #16): enrollment, identification and trial scoring on a Dask cluster or
joblib worker processes give the serial results, in input order; a worker's error keeps every speaker that
finished."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import check_cli_ok, cli_invoke

from spkid.errors import AudioError, ConfigError
from spkid.recognizer import (
    enroll_from_audio,
    identify,
    load_config,
    score_trials,
    speakers_in_folder,
    train_ubm_from_audio,
)
from spkid.store import ModelStore

distributed = pytest.importorskip("dask.distributed", reason="dask is optional: pip install spkid[dask]")


@pytest.fixture(scope="module")
def trained(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-component model of the synthetic corpus with no speaker enrolled (top-4 scoring: the bank), its
    CMVN named: a ``cmvn: auto`` model whose choice waits stops at a bad file before enrolling anyone."""
    model_dir = tmp_path_factory.mktemp("batch") / "model"
    overrides = ["ubm.n_components=8", "ubm.max_iter=4", "score.cohort_size=5", "score.top_c=4"]
    config = load_config(None, [*overrides, "features.cmvn=adaptive_level"])
    speakers = speakers_in_folder(synthetic_corpus)
    train_ubm_from_audio(model_dir, [paths[0] for paths in speakers.values()], config)
    return model_dir


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A Dask cluster of two single-threaded workers in this process (no process start-up)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _same_speakers(one: Path, two: Path) -> None:
    first, second = ModelStore.open(one), ModelStore.open(two)
    assert first.speakers() == second.speakers()
    assert sorted(second.open_bank().names) == second.speakers()
    for name in first.speakers():
        a, b = first.load_speaker_stats(name), second.load_speaker_stats(name)
        np.testing.assert_array_equal(a.zeroth, b.zeroth)
        np.testing.assert_array_equal(a.first, b.first)


def test_dask_enrollment_identification_and_scoring_equal_serial(
    trained: Path, synthetic_corpus: Path, tmp_path: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("spkid.recognizer.batch.RUN_ITEMS", 4)  # several runs of recordings from a few
    speakers = speakers_in_folder(synthetic_corpus)
    enroll_sets = {name: paths[1:3] for name, paths in speakers.items()}
    serial = shutil.copytree(trained, tmp_path / "serial")
    on_dask = shutil.copytree(trained, tmp_path / "dask")
    expected = enroll_from_audio(serial, enroll_sets)
    result = enroll_from_audio(on_dask, enroll_sets, backend="dask", scheduler=scheduler)
    assert list(result.enrolled.items()) == list(expected.enrolled.items())
    _same_speakers(serial, on_dask)

    tests = [path for paths in speakers.values() for path in paths[3:6]]
    in_order = identify(serial, tests, top_k=3, open_set=True)
    batch = identify(on_dask, tests, top_k=3, open_set=True, backend="dask", scheduler=scheduler)
    assert [r.recording for r in batch.results] == [str(path) for path in tests]
    assert [r.to_dict() for r in batch.results] == [r.to_dict() for r in in_order.results]

    trials = tmp_path / "trials.txt"
    names = list(speakers)
    trials.write_text(
        "".join(f"{names[i % len(names)]} {Path(test).stem}\n" for i, test in enumerate(tests))
        + f"{Path(tests[0]).stem} {Path(tests[1]).stem}\n"  # a model adapted from a recording
    )
    outputs = []
    for model, where in ((serial, {}), (on_dask, {"backend": "dask", "scheduler": scheduler})):
        output = tmp_path / f"scores-{model.name}.txt"
        scored = score_trials(model, trials, output=output, audio_root=synthetic_corpus, **where)
        assert scored.n_scored == len(tests) + 1
        outputs.append(output.read_text())
    assert outputs[0] == outputs[1]


def test_identify_and_enroll_on_dask_from_the_cli(
    trained: Path, synthetic_corpus: Path, tmp_path: Path, scheduler: str
):
    model = shutil.copytree(trained, tmp_path / "model")
    speakers = speakers_in_folder(synthetic_corpus)
    folder = tmp_path / "speakers"
    for name, paths in speakers.items():
        (folder / name).mkdir(parents=True)
        for path in paths[1:3]:
            shutil.copy(path, folder / name / path.name)
    enrolled = cli_invoke("-q", "enroll", model, folder, "--scheduler", scheduler)
    check_cli_ok(enrolled)
    assert [line.split()[1] for line in enrolled.stdout.splitlines()] == list(speakers)
    tests = [paths[4] for paths in speakers.values()]
    serial = cli_invoke("-q", "identify", model, *tests, "--json")
    batch = cli_invoke("-q", "identify", model, *tests, "--json", "--scheduler", scheduler)
    check_cli_ok(batch)
    assert json.loads(batch.stdout) == json.loads(serial.stdout)


def test_joblib_workers_score_as_serial_and_keep_finished_speakers(
    trained: Path, synthetic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("spkid.recognizer.batch.RUN_ITEMS", 3)
    speakers = speakers_in_folder(synthetic_corpus)
    model = shutil.copytree(trained, tmp_path / "model")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    names = list(speakers)
    enroll_sets = {name: paths[1:3] for name, paths in speakers.items()}
    enroll_sets[names[2]] = [*enroll_sets[names[2]], broken]
    with pytest.raises(AudioError, match="broken.wav"):
        enroll_from_audio(model, enroll_sets, backend="joblib", n_jobs=2)
    store = ModelStore.open(model)  # every other speaker finished and was kept, and the bank holds them
    assert store.speakers() == sorted(set(names) - {names[2]})
    assert sorted(store.open_bank().names) == store.speakers()

    tests = [path for paths in speakers.values() for path in paths[3:5]]
    trials = tmp_path / "trials.txt"
    kept = store.speakers()
    trials.write_text("".join(f"{kept[i % len(kept)]} {Path(t).stem}\n" for i, t in enumerate(tests)))
    serial = score_trials(model, trials, output=tmp_path / "serial.txt", audio_root=synthetic_corpus)
    parallel = score_trials(
        model, trials, output=tmp_path / "parallel.txt", audio_root=synthetic_corpus, n_jobs=2
    )
    assert parallel.n_scored == serial.n_scored == len(tests)
    assert (tmp_path / "parallel.txt").read_text() == (tmp_path / "serial.txt").read_text()
    with pytest.raises(ConfigError, match="--backend='spark'"):
        identify(model, tests, backend="spark")
