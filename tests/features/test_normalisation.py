"""Feature normalisation: pool statistics, duration-aware (adaptive) CMVN, global CMVN, feature warping, the
recording's level.

Checked against direct numpy/scipy computations: ``scipy.stats.rankdata`` and ``norm.ppf`` for warping.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm, rankdata

from spkid.errors import FeatureError
from spkid.features import (
    FeatureConfig,
    GlobalStats,
    adaptive_cmvn,
    cmvn,
    extract,
    feature_warping,
    global_cmvn,
    level_normalisation,
    normalise,
)


def _frames(n_frames: int, n_dims: int = 4, seed: int = 0, offset: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (offset + rng.normal(size=(n_frames, n_dims)) * np.arange(1, n_dims + 1)).astype(np.float32)


def _direct_warping(frames: np.ndarray, window: int) -> np.ndarray:
    """Feature warping by definition: rank of each value in its window (ties averaged) -> normal quantile."""
    n_frames = len(frames)
    n_window = min(window, n_frames)
    out = np.empty(frames.shape)
    for t in range(n_frames):
        start = int(np.clip(t - n_window // 2, 0, n_frames - n_window))
        block = frames[start : start + n_window]
        for d in range(frames.shape[1]):
            rank = rankdata(block[:, d])[t - start]
            out[t, d] = norm.ppf((rank - 0.5) / n_window)
    return out


# ----------------------------------------------------------------------------------------------- statistics
def test_global_stats_pool_every_frame_like_numpy() -> None:
    utterances = [_frames(n, seed=n) for n in (5, 17, 40)]
    stats = GlobalStats.from_features(utterances)
    pooled = np.concatenate(utterances).astype(np.float64)
    np.testing.assert_allclose(stats.mean, pooled.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.variance, pooled.var(axis=0), rtol=1e-10)
    assert stats.n_frames == 62


def test_global_stats_round_trip_and_digest() -> None:
    stats = GlobalStats.from_features([_frames(30)])
    again = GlobalStats.from_arrays(stats.to_arrays())
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.variance, stats.variance)
    assert again.n_frames == stats.n_frames and again.digest() == stats.digest()
    other = GlobalStats(stats.mean + 1e-9, stats.variance, stats.n_frames)
    assert other.digest() != stats.digest()


@pytest.mark.parametrize(
    "arrays",
    [
        {"mean": np.zeros(3)},
        {"mean": np.zeros(3), "variance": np.ones(2), "n_frames": np.asarray(4)},
        {"mean": np.zeros(3), "variance": -np.ones(3), "n_frames": np.asarray(4)},
        {"mean": np.full(3, np.nan), "variance": np.ones(3), "n_frames": np.asarray(4)},
    ],
)
def test_global_stats_refuse_bad_arrays(arrays: dict) -> None:
    with pytest.raises(FeatureError, match="global statistics"):
        GlobalStats.from_arrays(arrays)


def test_global_stats_need_frames() -> None:
    with pytest.raises(FeatureError, match="no frames"):
        GlobalStats.from_features([])


# ----------------------------------------------------------------------------------------------- CMVN
def test_global_cmvn_uses_the_pool_statistics() -> None:
    frames = _frames(20)
    stats = GlobalStats(np.full(4, 1.5), np.array([4.0, 9.0, 16.0, 25.0]), 100)
    expected = (frames.astype(np.float64) - 1.5) / np.sqrt(stats.variance)
    np.testing.assert_allclose(global_cmvn(frames, stats), expected, rtol=1e-6)
    np.testing.assert_allclose(global_cmvn(frames, stats, variance=False), frames - 1.5, rtol=1e-6)


@pytest.mark.parametrize("variance", [True, False])
def test_adaptive_cmvn_tends_to_utterance_cmvn_for_long_input(variance: bool) -> None:
    stats = GlobalStats(np.full(4, -2.0), np.full(4, 5.0), 10_000)
    gaps = []  # largest difference, relative where the normalised value is beyond +-1
    for frames in (_frames(3_000), _frames(30_000), _frames(1_000_000)):
        utterance = cmvn(frames, variance=variance)
        adaptive = adaptive_cmvn(frames, stats, relevance_frames=300.0, variance=variance)
        gaps.append(np.max(np.abs(adaptive - utterance) / np.maximum(np.abs(utterance), 1.0)))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01, gaps
    # relevance 0 is exactly utterance CMVN, whatever the length
    short = _frames(7)
    np.testing.assert_allclose(
        adaptive_cmvn(short, stats, relevance_frames=0.0, variance=variance),
        cmvn(short, variance=variance),
        atol=1e-5,
    )


@pytest.mark.parametrize("variance", [True, False])
def test_adaptive_cmvn_tends_to_the_global_statistics_for_very_short_input(variance: bool) -> None:
    stats = GlobalStats(np.full(4, -10.0), np.full(4, 50.0), 10_000)
    one_frame = _frames(1)
    np.testing.assert_allclose(
        adaptive_cmvn(one_frame, stats, relevance_frames=1e6, variance=variance),
        global_cmvn(one_frame, stats, variance=variance),
        rtol=1e-4,
        atol=1e-4,
    )


def test_adaptive_cmvn_weights_the_utterance_by_its_length() -> None:
    stats = GlobalStats(np.zeros(1), np.ones(1), 1000)
    frames = np.full((100, 1), 4.0, np.float32)  # mean 4, variance 0
    centred = adaptive_cmvn(frames, stats, relevance_frames=300.0, variance=False)
    np.testing.assert_allclose(centred, 4.0 - 0.25 * 4.0)  # weight 100 / (100 + 300)
    scaled = adaptive_cmvn(frames, stats, relevance_frames=300.0)
    mixed_variance = 0.25 * (0 + 3.0**2) + 0.75 * (1 + 1.0**2)
    np.testing.assert_allclose(scaled, 3.0 / np.sqrt(mixed_variance), rtol=1e-6)


# ----------------------------------------------------------------------------------------------- warping
@pytest.mark.parametrize(("n_frames", "window"), [(40, 300), (700, 300), (301, 301), (50, 11)])
def test_feature_warping_matches_the_direct_rank_computation(n_frames: int, window: int) -> None:
    frames = _frames(n_frames, n_dims=3, seed=n_frames)
    frames[::7, 1] = frames[0, 1]  # ties share their mean rank
    np.testing.assert_allclose(
        feature_warping(frames, window_frames=window), _direct_warping(frames, window), atol=1e-6
    )


def test_feature_warping_is_standard_normal_over_the_window() -> None:
    frames = _frames(301, n_dims=5, seed=3) ** 3  # any monotone distortion of the channel
    warped = feature_warping(frames, window_frames=301).astype(np.float64)
    expected = norm.ppf((np.arange(1, 302) - 0.5) / 301)
    for dim in range(5):
        np.testing.assert_allclose(np.sort(warped[:, dim]), expected, atol=1e-6)
    assert np.all(np.abs(warped.mean(axis=0)) < 1e-6)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(min_value=2, max_value=80),
    st.floats(min_value=0.1, max_value=10.0),
    st.floats(min_value=-5.0, max_value=5.0),
)
def test_feature_warping_ignores_monotone_channel_changes(n_frames: int, gain: float, shift: float) -> None:
    frames = _frames(n_frames, n_dims=2, seed=n_frames)
    np.testing.assert_array_equal(
        feature_warping(frames, window_frames=30), feature_warping(gain * frames + shift, window_frames=30)
    )


# -------------------------------------------------------------------------------------------------- level
def test_level_normalisation_centres_c0_alone() -> None:
    frames = _frames(40)
    levelled = level_normalisation(frames)
    assert abs(float(levelled[:, 0].mean())) < 1e-5
    np.testing.assert_allclose(
        levelled[:, 0], frames[:, 0] - frames[:, 0].astype(np.float64).mean(), atol=1e-5
    )
    np.testing.assert_array_equal(levelled[:, 1:], frames[:, 1:])
    assert level_normalisation(frames[:0]).shape == (0, 4)


def _loud_and_quiet(folder, quiet_gain: float, duration_s: float = 3.0):
    """A synthetic recording peaking at 0.9, and a copy ``quiet_gain`` / 0.9 as loud (float WAV files)."""
    import soundfile

    from spkid.corpora.synthetic import make_utterance

    signal = make_utterance(1, 1, duration_s=duration_s)
    signal = signal / np.abs(signal).max()
    loud, quiet = folder / "loud.wav", folder / "quiet.wav"
    soundfile.write(loud, 0.9 * signal, 16000, subtype="FLOAT")
    soundfile.write(quiet, quiet_gain * signal, 16000, subtype="FLOAT")
    return loud, quiet


def test_level_makes_features_of_real_audio_gain_invariant(tmp_path) -> None:
    loud, quiet = _loud_and_quiet(tmp_path, 0.1)  # 19 dB quieter
    raw = FeatureConfig(cmvn="none", vad="none")
    assert np.abs(extract(loud, raw)[:, 0] - extract(quiet, raw)[:, 0]).min() > 10.0  # c0 holds the gain
    np.testing.assert_allclose(extract(loud, raw)[:, 1:], extract(quiet, raw)[:, 1:], atol=0.05)
    levelled = FeatureConfig(cmvn="level", vad="none")
    np.testing.assert_allclose(extract(loud, levelled), extract(quiet, levelled), atol=0.05)


def test_adaptive_level_is_adaptive_cmvn_with_c0_centred_on_its_own_mean(tmp_path) -> None:
    frames = _frames(40)
    stats = GlobalStats.from_features([_frames(500, seed=3, offset=0.0)])
    config = FeatureConfig(cmvn="adaptive_level", cmvn_relevance_frames=100.0)
    adapted = adaptive_cmvn(frames, stats, relevance_frames=100.0)
    levelled = normalise(frames, config, stats)
    np.testing.assert_array_equal(levelled[:, 1:], adapted[:, 1:])  # every other coefficient: adaptive
    centred = adapted[:, 0] - adapted[:, 0].mean(dtype=np.float64)
    np.testing.assert_allclose(levelled[:, 0], centred, atol=1e-5)
    assert abs(float(adapted[:, 0].mean())) > 0.5  # adaptive alone keeps most of a short input's mean
    # On audio: a 1-s word 8 dB quieter shifts adaptive's c0 mean; adaptive_level's stays at 0.
    loud, quiet = _loud_and_quiet(tmp_path, 0.36, duration_s=1.0)
    pool = GlobalStats.from_features([extract(loud, FeatureConfig(cmvn="none", vad="none"))])
    c0_means = {}
    for method in ("adaptive", "adaptive_level"):
        config = FeatureConfig(cmvn=method, vad="none")
        c0_means[method] = [float(extract(path, config, stats=pool)[:, 0].mean()) for path in (loud, quiet)]
    assert abs(c0_means["adaptive"][0] - c0_means["adaptive"][1]) > 0.3
    assert max(abs(mean) for mean in c0_means["adaptive_level"]) < 1e-5


# ----------------------------------------------------------------------------------------------- dispatch
def test_normalise_dispatches_every_method() -> None:
    frames = _frames(30)
    stats = GlobalStats.from_features([_frames(100, seed=9)])
    np.testing.assert_allclose(normalise(frames, FeatureConfig(cmvn="utterance")), cmvn(frames))
    np.testing.assert_allclose(normalise(frames, FeatureConfig(cmvn="warping")), feature_warping(frames))
    np.testing.assert_allclose(
        normalise(frames, FeatureConfig(cmvn="global"), stats), global_cmvn(frames, stats)
    )
    np.testing.assert_allclose(
        normalise(frames, FeatureConfig(cmvn="adaptive", cmvn_relevance_frames=50.0), stats),
        adaptive_cmvn(frames, stats, relevance_frames=50.0),
    )
    np.testing.assert_array_equal(normalise(frames, FeatureConfig(cmvn="none")), frames)
    np.testing.assert_array_equal(normalise(frames, FeatureConfig(cmvn="level")), level_normalisation(frames))
    with pytest.raises(FeatureError, match="needs the UBM pool's statistics"):
        normalise(frames, FeatureConfig(cmvn="adaptive"))
    with pytest.raises(FeatureError, match="3 dimensions, the features 4"):
        normalise(frames, FeatureConfig(cmvn="global"), GlobalStats(np.zeros(3), np.ones(3), 5))
