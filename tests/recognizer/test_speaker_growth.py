"""Speakers stored as MAP statistics: ``enroll --add`` equals enrolling everything at once; the bank serves
identify and verify with the scores of the speaker files; an old model without statistics or bank still
works, gets a bank, and refuses ``--add`` naming ``--replace``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, check_cli_error, check_cli_ok, cli_invoke

from spkid.errors import StoreError
from spkid.recognizer import (
    enroll_from_audio,
    identify,
    load_config,
    speakers_in_folder,
    train_ubm_from_audio,
    verify,
)
from spkid.recognizer.bands import COMPANION_DIR
from spkid.store import ModelStore


@pytest.fixture(scope="module")
def trained(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-component model of the synthetic corpus with no speaker enrolled (top-4 scoring: the bank)."""
    model_dir = tmp_path_factory.mktemp("growth") / "model"
    config = load_config(
        None, ["ubm.n_components=8", "ubm.max_iter=4", "score.cohort_size=5", "score.top_c=4"]
    )
    speakers = speakers_in_folder(synthetic_corpus)
    train_ubm_from_audio(model_dir, [paths[0] for paths in speakers.values()], config)
    return model_dir


def test_enroll_add_equals_enrolling_all_at_once(trained: Path, synthetic_corpus: Path, tmp_path: Path):
    speakers = speakers_in_folder(synthetic_corpus)
    name, files = next(iter(speakers.items()))
    at_once, grown = shutil.copytree(trained, tmp_path / "once"), shutil.copytree(trained, tmp_path / "grown")
    enroll_from_audio(at_once, {name: files[1:5]})
    enroll_from_audio(grown, {name: files[1:3]})
    check_cli_ok(cli_invoke("-q", "enroll", grown, "--speaker", name, "--add", *files[3:5]))
    one, two = ModelStore.open(at_once), ModelStore.open(grown)
    stats_one, stats_two = one.load_speaker_stats(name), two.load_speaker_stats(name)
    # Float32 E-steps over other batches of frames: counts agree to 1e-4 frames, first-order sums to 1e-5 of
    # the largest sum and the adapted means to 1e-4 (a statistic counted twice or lost would be off by whole
    # frames; cepstra normalised mostly by the pool's statistics, or not at all, come within these too).
    scale = np.abs(stats_one.first).max()
    np.testing.assert_allclose(stats_two.zeroth, stats_one.zeroth, rtol=1e-5, atol=1e-4)  # frame counts
    np.testing.assert_allclose(stats_two.first, stats_one.first, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(
        two.load_speaker(name).means_, one.load_speaker(name).means_, rtol=1e-4, atol=1e-4
    )
    assert two.cohort_stats[name].mean == pytest.approx(one.cohort_stats[name].mean, abs=1e-4)
    # Stored compactly: float32 statistics, well under a quarter megabyte with the bank at K=8.
    assert one.speaker_path(name).stat().st_size < 8 * 61 * 4 + 4000
    # --add on a name not enrolled, and --add with --replace, are refused before any work.
    check_cli_error(cli_invoke("enroll", grown, "--speaker", "nobody", "--add", files[0]), "not enrolled")
    check_cli_error(cli_invoke("enroll", grown, "--speaker", name, "--add", "--replace", files[0]), "--add")


def test_identify_and_verify_from_the_bank_equal_the_speaker_files(
    trained: Path, synthetic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    model = shutil.copytree(trained, tmp_path / "model")
    speakers = speakers_in_folder(synthetic_corpus)
    enroll_from_audio(model, {name: paths[1:3] for name, paths in speakers.items()})
    tests = [paths[4] for paths in speakers.values()]
    from_bank = identify(model, tests, top_k=0, open_set=True)
    verified = verify(model, "spk01" if "spk01" in speakers else next(iter(speakers)), tests)
    monkeypatch.setattr("spkid.recognizer.bank_search.bank_usable", lambda recognizer: False)
    from_files = identify(model, tests, top_k=0, open_set=True)
    verified_files = verify(model, verified.results[0].speaker, tests)
    for a, b in zip(from_bank.results, from_files.results, strict=True):
        assert a.speaker == b.speaker and [n for n, _ in a.scores] == [n for n, _ in b.scores]
        np.testing.assert_allclose([s for _, s in a.scores], [s for _, s in b.scores], rtol=0, atol=1e-6)
    for a, b in zip(verified.results, verified_files.results, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-6) and a.threshold == pytest.approx(b.threshold)
        assert a.accepted == b.accepted


def test_an_old_model_gets_a_bank_and_refuses_add_naming_replace(tmp_path: Path):
    old = shutil.copytree(FIXTURES / "model_v1", tmp_path / "model_v1")
    assert not (old / "model" / "bank").exists()
    outcome = identify(old / "model", [old / "audio" / "spk01.wav"], top_k=1)
    assert outcome.results[0].scores
    store = ModelStore.open(old / "model")
    assert (
        sorted(store.open_bank().names) == store.speakers()
        and (old / "model" / "bank" / "index.json").is_file()
    )
    with pytest.raises(StoreError, match="kept no statistics.*--replace"):
        store.load_speaker_stats("spk01")
    check_cli_error(
        cli_invoke("enroll", old / "model", "--speaker", "spk01", "--add", old / "audio" / "spk01.wav"),
        "--replace",
    )


def test_parallel_enroll_and_batch_identify_equal_serial(
    trained: Path, synthetic_corpus: Path, tmp_path: Path
):
    speakers = speakers_in_folder(synthetic_corpus)
    enroll_sets = {name: paths[1:3] for name, paths in speakers.items()}
    serial, parallel = (
        shutil.copytree(trained, tmp_path / "serial"),
        shutil.copytree(trained, tmp_path / "par"),
    )
    enroll_from_audio(serial, enroll_sets)
    enroll_from_audio(parallel, enroll_sets, n_jobs=2)
    one, two = ModelStore.open(serial), ModelStore.open(parallel)
    assert one.speakers() == two.speakers()
    for name in one.speakers():
        np.testing.assert_array_equal(two.load_speaker_stats(name).first, one.load_speaker_stats(name).first)
    tests = [path for paths in speakers.values() for path in paths[3:6]]
    in_order = identify(serial, tests, top_k=3)
    batch = identify(serial, tests, top_k=3, n_jobs=2)
    assert [r.recording for r in batch.results] == [str(path) for path in tests]
    assert [r.to_dict() for r in batch.results] == [r.to_dict() for r in in_order.results]


def test_rebuild_bank_and_timings_from_the_cli(trained: Path, synthetic_corpus: Path, tmp_path: Path):
    model = shutil.copytree(trained, tmp_path / "model")
    speakers = speakers_in_folder(synthetic_corpus)
    enroll_from_audio(model, {name: paths[1:2] for name, paths in speakers.items()})
    result = cli_invoke("rebuild-bank", model)
    check_cli_ok(result)
    assert f"({len(speakers)} speakers)" in result.stdout
    timed = cli_invoke("identify", model, next(iter(speakers.values()))[3], "--timings")
    check_cli_ok(timed)
    line = [item for item in timed.stderr.splitlines() if item.startswith("timings: ")][0]
    steps = {"startup_s", "model_s", "bank_s", "features_s", "kernels_s", "scoring_s"}
    assert steps <= set(json.loads(line[9:]))
    name, files = next(iter(speakers.items()))
    claim = ["--speaker", name, files[3], "--threshold", "-99"]
    checked = cli_invoke("-v", "verify", model, *claim, "--timings")
    check_cli_ok(checked)
    line = [item for item in checked.stderr.splitlines() if item.startswith("timings: ")][0]
    assert steps <= set(json.loads(line[9:]))
    assert "verify: scored 1 recording in" in checked.stderr


def test_a_read_only_model_whose_bank_needs_building_scores_from_the_speaker_files(
    trained: Path, synthetic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
):
    """A model on a read-only mount (simulated: writing the bank fails with EROFS) whose bank is missing:
    identify and verify warn once and give the bank's answers from the speaker files, writing nothing."""
    import errno

    model = shutil.copytree(trained, tmp_path / "model")
    speakers = speakers_in_folder(synthetic_corpus)
    enroll_from_audio(model, {name: paths[1:3] for name, paths in speakers.items()})
    tests = [paths[4] for paths in speakers.values()]
    claimed = next(iter(speakers))
    expected, expected_verify = identify(model, tests, top_k=0), verify(model, claimed, tests)
    banks = (model / "bank", model / COMPANION_DIR / "bank")  # the main model's and its wideband companion's
    for bank in banks:
        shutil.rmtree(bank)  # as a model made before banks, or copied without it

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ModelStore, "rebuild_bank", read_only)
    with caplog.at_level("WARNING", logger="spkid"):
        found, checked = identify(model, tests, top_k=0), verify(model, claimed, tests)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("cannot write the speaker bank (Read-only" in w for w in warnings)
    assert all("scoring from the speaker files instead" in w for w in warnings)
    assert not any(bank.exists() for bank in banks)
    for a, b in zip(found.results, expected.results, strict=True):
        assert a.speaker == b.speaker and [n for n, _ in a.scores] == [n for n, _ in b.scores]
        np.testing.assert_allclose([s for _, s in a.scores], [s for _, s in b.scores], rtol=0, atol=1e-6)
    for a, b in zip(checked.results, expected_verify.results, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-6) and a.accepted == b.accepted
    # Writing the bank itself (as enroll does) still fails with the one-line error.
    with pytest.raises(StoreError, match="cannot write the speaker bank"):
        ModelStore.open(model).open_bank()
