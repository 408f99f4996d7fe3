"""Tests of the cohort's split of the UBM pool: the impostor test segments held out of UBM training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spkid.features import FeatureStore, StoredFeatures
from spkid.gmm import DiagonalGMM
from spkid.score import cohort_segment_rows, hold_out_cohort_segments, select_cohort
from spkid.ubm import EnrollConfig, UBMConfig


def _pool(n_features: int = 3) -> list[np.ndarray]:
    """Utterances of distinct random rows, long ones and one under MIN_SPLIT_FRAMES (used whole)."""
    rng = np.random.default_rng(1)
    return [rng.normal(size=(n, n_features)).astype(np.float32) for n in (700, 90, 400, 1000, 250, 520)]


def _sorted_rows(arrays) -> np.ndarray:
    rows = np.concatenate(list(arrays))
    return rows[np.lexsort(rows.T[::-1])]


def test_hold_out_cohort_segments_removes_exactly_the_cohort_test_segments(tmp_path: Path):
    pool = _pool()
    config = UBMConfig(n_components=4, random_state=5)
    chosen = cohort_segment_rows([len(u) for u in pool], size=4, random_state=5)
    assert len(chosen) == 4 and list(chosen) == sorted(chosen)
    kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=config, cohort_size=4)
    ubm = DiagonalGMM.from_params(np.ones(1), np.zeros((1, 3)), np.ones((1, 3)))
    cohort = select_cohort(pool, ubm, size=4, enroll_config=EnrollConfig(), random_state=5)
    assert n_held_out == sum(map(len, cohort.segments)) == sum(chosen.values()) > 0
    # What the UBM trains on and the cohort's segments split the pool's frames exactly, nothing shared.
    np.testing.assert_array_equal(_sorted_rows([*kept, *cohort.segments]), _sorted_rows(pool))
    for index, frames in enumerate(pool):  # views of the pool, not copies; the others whole
        assert any(np.shares_memory(part, frames) for part in kept) == (chosen.get(index, 0) < len(frames))
        if index not in chosen:
            assert any(np.shares_memory(part, frames) and len(part) == len(frames) for part in kept)
    # The same split from a feature store: its files are cut, not copied.
    stored = FeatureStore(tmp_path / "store").write("pool", ((f"u{i}", u) for i, u in enumerate(pool)))
    stored_kept, stored_held_out = hold_out_cohort_segments(stored, ubm_config=config, cohort_size=4)
    assert isinstance(stored_kept, StoredFeatures) and stored_held_out == n_held_out
    assert [item.path for item in stored_kept.files] == [
        stored.files[i].path for i in range(len(pool)) if chosen.get(i, 0) < len(pool[i])
    ]
    for got, expected in zip(stored_kept, kept, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_small_pools_keep_every_frame_for_the_ubm():
    pool = _pool()
    n_frames = sum(map(len, pool))
    # 64 components at 40 frames each need 2560 of the 2960 frames: holding ~1000 out would shrink the UBM.
    config = UBMConfig(n_components=64, min_frames_per_component=40)
    kept, n_held_out = hold_out_cohort_segments(pool, ubm_config=config, cohort_size=4)
    assert n_frames == 2960 and kept is pool and n_held_out == 0
    # Allowed once the UBM keeps its size without them.
    kept, n_held_out = hold_out_cohort_segments(
        pool, ubm_config=UBMConfig(n_components=32, min_frames_per_component=40), cohort_size=4
    )
    assert n_held_out > 0 and sum(map(len, kept)) == n_frames - n_held_out
