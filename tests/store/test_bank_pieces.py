"""The bank is written in pieces of speakers (bounded memory at 100,000 speakers): a rebuild, a large sync and
a compaction written piece by piece hold exactly the stored values of one written at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bank import make_stats, make_store, make_ubm

from spkid.store import bank_store


def _columns(store) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    view = store.open_bank()
    blocks, scales, names = [], [], []
    for segment, columns in zip(view.segments, view.columns, strict=True):
        segment.check_all()
        for column in columns:
            j, i = divmod(int(column), segment.width)
            blocks.append(np.array(segment.blocks[j, :, :, i]))
            scales.append(np.array(segment.scale[j, :, i]))
        names.extend(segment.names[int(c)] for c in columns)
    order = np.argsort(names)
    return [names[i] for i in order], np.array(blocks)[order], np.array(scales)[order], view


def test_pieces_hold_the_values_of_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    whole = make_store(tmp_path / "whole")
    ubm = make_ubm()
    names = [f"s{index:04d}" for index in range(300)]
    with whole.bank_batch(names):
        for number, name in enumerate(names):
            whole.save_speaker_stats(name, make_stats(ubm, number))
    expected = _columns(whole)
    monkeypatch.setattr(bank_store, "_PIECE", 128)  # 300 speakers: pieces of 128, 128 and 44
    assert whole.rebuild_bank() == 300
    rebuilt = _columns(whole)
    assert rebuilt[0] == expected[0] == names
    np.testing.assert_array_equal(rebuilt[1], expected[1])
    np.testing.assert_array_equal(rebuilt[2], expected[2])
    assert len(rebuilt[3].segments) == 1 and rebuilt[3].segments[0].blocks.shape[0] == 3

    with whole.bank_batch(names[:200]):  # removing most columns compacts the bank, in pieces
        for name in names[:200]:
            whole.remove_speaker(name)
    view = whole.open_bank()
    assert sorted(view.names) == names[200:] and len(view.segments) == 1
    assert len(view.segments[0].names) == 100 and view.segments[0].blocks.shape[0] == 1  # compacted
    compacted = _columns(whole)
    np.testing.assert_array_equal(compacted[1], expected[1][200:])
