"""``train-ubm`` on the pools users have: the front-end rate chosen from the pool, the pool's feature
statistics stored in the model, and messy pools (clips without speech, clipped files) handled in bulk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import PROGRESS_LINE, check_cli_error, check_cli_ok, cli_invoke

from spkid.corpora.synthetic import make_speakers
from spkid.features import FeatureConfig, GlobalStats, adaptive_cmvn, extract, extract_many
from spkid.recognizer import SKIPPED_LIST_FILE, Recognizer, load_config, train_ubm_from_audio
from spkid.store import ModelStore

#: raw scores: these pools are too small for a cohort to normalise with (which train-ubm would say)
SMALL = ["ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4", "score.normalization=none"]
SMALL_CLI = [arg for setting in SMALL for arg in ("--set", setting)]


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Path]]:
    """The same synthetic voices at 8 and 16 kHz: ``{rate: files}``."""
    root = tmp_path_factory.mktemp("pools")
    pools = {}
    for rate in (8000, 16000):
        corpus = make_speakers(
            root / str(rate), n_speakers=3, n_utterances=3, duration_s=2.0, sample_rate=rate, seed=5
        )
        pools[rate] = [path for paths in corpus.values() for path in paths]
    return pools


def _stored_features(model_dir: Path) -> dict:
    return ModelStore.open(model_dir).feature_config


# ----------------------------------------------------------------------------------------- sample_rate: auto
@pytest.mark.parametrize(("rate", "f_max_hz", "n_fft"), [(8000, 3800.0, 256), (16000, 7600.0, 512)])
def test_auto_rate_follows_the_pool(
    tmp_path: Path, pools: dict, rate: int, f_max_hz: float, n_fft: int
) -> None:
    config = load_config(None, [*SMALL, "features.f_max_hz=7600"])  # the full band: fitted below Nyquist
    result = train_ubm_from_audio(tmp_path / "model", pools[rate], config)
    stored = _stored_features(tmp_path / "model")
    assert (result.sample_rate, stored["sample_rate"], stored["f_max_hz"]) == (rate, rate, f_max_hz)
    assert FeatureConfig.from_dict(stored).fft_size == n_fft


def test_auto_rate_of_a_mixed_pool_goes_by_duration(tmp_path: Path, pools: dict) -> None:
    mostly_narrow = pools[8000] + pools[16000][:2]
    assert train_ubm_from_audio(tmp_path / "a", mostly_narrow, load_config(None, SMALL)).sample_rate == 8000
    mostly_wide = pools[16000] + pools[8000][:2]
    assert train_ubm_from_audio(tmp_path / "b", mostly_wide, load_config(None, SMALL)).sample_rate == 16000


def test_an_explicit_rate_is_kept(tmp_path: Path, pools: dict) -> None:
    config = load_config(None, [*SMALL, "features.sample_rate=16000"])
    assert train_ubm_from_audio(tmp_path / "model", pools[8000], config).sample_rate == 16000


def test_cli_reports_the_chosen_rate_and_warns_once_about_narrowband_recordings(
    tmp_path: Path, pools: dict
) -> None:
    check_cli_ok(cli_invoke("train-ubm", tmp_path / "model", *pools[16000], *SMALL_CLI))
    result = cli_invoke("train-ubm", tmp_path / "model8", *pools[8000], *SMALL_CLI)
    check_cli_ok(result)
    assert "8000 Hz front-end" in result.stdout
    check_cli_ok(cli_invoke("enroll", tmp_path / "model", "--speaker", "a", *pools[16000][:2]))
    result = cli_invoke("identify", tmp_path / "model", *pools[8000][:3])
    check_cli_ok(result)
    warnings = [line for line in result.stderr.splitlines() if "below the front-end's 16000 Hz" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 3 files were recorded below"), (
        result.stderr
    )


# ----------------------------------------------------------------------------------------- pool statistics
def test_pool_statistics_round_trip_through_the_store(tmp_path: Path, pools: dict) -> None:
    config = load_config(None, [*SMALL, "features.cmvn=adaptive", "features.cmvn_relevance_frames=100"])
    train_ubm_from_audio(tmp_path / "model", pools[16000], config)
    recognizer = Recognizer.open(tmp_path / "model")
    raw_config = dataclasses.replace(recognizer.feature_config, cmvn="none")
    expected = GlobalStats.from_features(extract_many(pools[16000], raw_config))
    stats = recognizer.feature_stats
    np.testing.assert_allclose(stats.mean, expected.mean, rtol=1e-10)
    np.testing.assert_allclose(stats.variance, expected.variance, rtol=1e-10)
    assert stats.n_frames == expected.n_frames
    test_file = pools[8000][0]
    np.testing.assert_allclose(
        recognizer.extract([test_file])[0],
        adaptive_cmvn(extract(test_file, raw_config), expected, relevance_frames=100.0),
        atol=1e-5,
    )


def test_models_without_pool_statistics_need_none(tmp_path: Path, pools: dict) -> None:
    config = load_config(None, [*SMALL, "features.cmvn=utterance"])
    train_ubm_from_audio(tmp_path / "model", pools[16000], config)
    assert not (tmp_path / "model" / "frontend.npz").exists()
    assert Recognizer.open(tmp_path / "model").feature_stats is None


def test_cache_key_holds_the_statistics(tmp_path: Path, pools: dict) -> None:
    config = FeatureConfig(cmvn="global")
    stats = [GlobalStats(np.zeros(60), np.ones(60), 10), GlobalStats(np.ones(60), np.ones(60), 10)]
    first, second = (extract_many(pools[16000][:1], config, cache_dir=tmp_path, stats=s)[0] for s in stats)
    np.testing.assert_allclose(first - second, 1.0, atol=1e-4)
    assert len(list(tmp_path.rglob("*.npy"))) == 2


# ----------------------------------------------------------------------------------------- messy pools
def _short_clips(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"short_{index}.wav"
        soundfile.write(path, (0.1 * rng.normal(size=800)).astype(np.float32), 16000)  # 50 ms
        paths.append(path)
    return paths


def test_clips_without_enough_speech_are_skipped_and_listed(tmp_path: Path, pools: dict) -> None:
    short = _short_clips(tmp_path / "short", 2)
    result = cli_invoke("train-ubm", tmp_path / "model", *pools[16000], *short, *SMALL_CLI)
    check_cli_ok(result)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("skipped: 2 pool files with too little speech"), lines
    listed = (tmp_path / "model" / SKIPPED_LIST_FILE).read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [str(path) for path in short]
    assert all("too short" in line for line in listed)
    assert "on 9 files" in result.stdout


def test_a_pool_of_mostly_unusable_clips_stops(tmp_path: Path, pools: dict) -> None:
    short = _short_clips(tmp_path / "short", 3)  # 3 of 12 = 25% > 20%
    result = cli_invoke("train-ubm", tmp_path / "model", *pools[16000], *short, *SMALL_CLI)
    check_cli_error(
        result,
        "3 of 12 files (25%) hold too little speech",
        "ubm.max_unusable_fraction=0.2",
        allow_warnings=True,
    )
    assert not (tmp_path / "model" / "manifest.json").exists()
    check_cli_ok(
        cli_invoke(
            "train-ubm",
            tmp_path / "model",
            *pools[16000],
            *short,
            *SMALL_CLI,
            "--set",
            "ubm.max_unusable_fraction=0.3",
        )
    )


def test_unreadable_pool_files_still_need_skip_bad(tmp_path: Path, pools: dict) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "model", *pools[16000], broken, *SMALL_CLI),
        "broken.wav",
        allow_warnings=True,
    )
    check_cli_ok(cli_invoke("train-ubm", tmp_path / "model", *pools[16000], broken, *SMALL_CLI, "--skip-bad"))


def test_repeated_warnings_are_summarised(tmp_path: Path, pools: dict) -> None:
    loud = []
    for index, path in enumerate(pools[16000][:5]):
        signal, rate = soundfile.read(path, dtype="float32")
        target = tmp_path / "loud" / f"loud_{index}.wav"
        target.parent.mkdir(exist_ok=True)
        soundfile.write(target, np.clip(signal * 50, -1, 1), rate)  # heavily clipped
        loud.append(target)
    result = cli_invoke("train-ubm", tmp_path / "model", *pools[16000][5:], *loud, *SMALL_CLI)
    check_cli_ok(result)
    clipped = [line for line in result.stderr.splitlines() if "clipped" in line]
    assert len(clipped) == 1 and clipped[0].startswith("warning: 5 files have clipped audio"), result.stderr
    assert "and 2 more" in clipped[0]


# ----------------------------------------------------------------------------------------- bad settings
def test_misspelt_cmvn_gets_a_did_you_mean(tmp_path: Path, pools: dict) -> None:
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "model", *pools[16000], "--set", "features.cmvn=warp"),
        "features.cmvn='warp'",
        "did you mean 'warping'",
        allow_warnings=True,
    )


def test_auto_rate_with_an_empty_pool_gets_the_pools_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    check_cli_error(
        cli_invoke("train-ubm", tmp_path / "model", tmp_path / "empty"), "no audio files", allow_warnings=True
    )
