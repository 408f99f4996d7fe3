"""Scoring utterances against a stored speaker bank in blocks of speakers, keeping the best k per utterance.

The bank (:mod:`spkid.store.bank`) keeps every speaker's top-C parameters in the 16-bit block layout of
:class:`~spkid.score._bank.QuantizedBank`, memory-mapped. :func:`search_bank` scores a batch of utterances
against :data:`CHUNK_SPEAKERS` speakers at a time, straight from the mapping, merges their scores into the
best ``top_k`` of each utterance, and drops the chunk's pages from the process, so peak memory does not
grow with the number of speakers:

    peak ~ start-up (~150 MB: numpy, numba kernels, the UBM)
         + one chunk of the bank, CHUNK_SPEAKERS x K x (R - 1) x 2 bytes (2048 x 512 x 60 x 2 = 126 MB)
         + the scorer's work arrays, ~ 4096 frames x top-C x 128 x 4 bytes per thread (21 MB at C = 10)
         + UTTERANCE_BATCH x (CHUNK_SPEAKERS + top_k) x 8 bytes of scores (4 MB)

Each block's CRC-32 is checked as it is scored, so a flipped bit is named before any score from it is used.
The scores are those of :class:`~spkid.score.Scorer` built from the same speakers: the same stored values,
the same kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from spkid.score._bank import QuantizedBank, design_row_norms
from spkid.score.scorer import Scorer

__all__ = ["CHUNK_SPEAKERS", "UTTERANCE_BATCH", "BankSegment", "search_bank", "score_columns"]

#: Speakers scored at a time (a multiple of the 128-speaker block).
CHUNK_SPEAKERS = 2048
#: Utterances scored together against each chunk.
UTTERANCE_BATCH = 256


class BankSegment(Protocol):
    """What :func:`search_bank` needs of a stored segment (:class:`spkid.store.bank_file.Segment`)."""

    blocks: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    shared: bool
    width: int

    def check_block(self, j: int) -> None: ...

    def release(self, first_block: int, stop_block: int) -> None: ...


def _chunk_bank(segment: BankSegment, first: int, stop: int, norms: np.ndarray) -> QuantizedBank:
    for j in range(first, stop):
        segment.check_block(j)
    return QuantizedBank(
        segment.blocks[first:stop],
        segment.scale[first:stop],
        segment.constant[first:stop],
        norms,
        (stop - first) * segment.width,
    )


def _merge(best_index: np.ndarray, best_score: np.ndarray, index: np.ndarray, scores: np.ndarray, k: int):
    """The ``k`` best of the kept and the new (index, score) columns per row, best first, ties by index."""
    all_index = np.concatenate([best_index, np.broadcast_to(index, scores.shape)], axis=1)
    all_score = np.concatenate([best_score, scores], axis=1)
    if all_score.shape[1] > k:
        keep = np.argpartition(-all_score, k - 1, axis=1)[:, :k]
        all_index = np.take_along_axis(all_index, keep, axis=1)
        all_score = np.take_along_axis(all_score, keep, axis=1)
    order = np.lexsort((all_index, -all_score), axis=1) if all_score.size else all_score.astype(int)
    return np.take_along_axis(all_index, order, axis=1), np.take_along_axis(all_score, order, axis=1)


def search_bank(
    ubm: Any,
    utterances: Sequence[np.ndarray],
    segments: Sequence[BankSegment],
    columns: Sequence[np.ndarray],
    *,
    top_c: int,
    top_k: int,
    normalise: Callable[[np.ndarray, np.ndarray, slice], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` best speakers of each utterance among the live ``columns`` of ``segments``.

    Parameters
    ----------
    ubm : MixtureParameters
    utterances : sequence of ndarray of shape (n_frames_i, n_features)
    segments : sequence of BankSegment
    columns : sequence of ndarray of int
        The live columns of each segment; speakers are numbered segment by segment in this order.
    top_c : int
        Components per frame (less than the UBM's).
    top_k : int
        Speakers kept per utterance; 0 keeps all.
    normalise : callable, optional
        ``normalise(raw, numbers, rows)``: the final scores of a piece of raw LLRs, shape (n_rows, n_numbers),
        of the speakers ``numbers`` for the utterances ``utterances[rows]``; the best are kept by them (a
        per-speaker normalisation changes each utterance's ranking). None keeps the raw LLRs.

    Returns
    -------
    index : ndarray of shape (n_utterances, k), int64
        Speaker numbers, best first (ties by number).
    scores : ndarray of shape (n_utterances, k), float64
        Raw frame-averaged LLRs, or what ``normalise`` made of them.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> ubm = MixtureParameters(np.full(4, 0.25), np.arange(8.0).reshape(4, 2), np.ones((4, 2)))
    >>> index, scores = search_bank(ubm, [np.zeros((5, 2))], [], [], top_c=2, top_k=3)
    >>> index.shape, scores.shape
    ((1, 0), (1, 0))
    """
    n_total = sum(len(c) for c in columns)
    k = n_total if top_k == 0 else min(int(top_k), n_total)
    scorer = Scorer.without_speakers(ubm, top_c=top_c)
    norms = {shared: design_row_norms(ubm.variances_, shared).astype(np.float32) for shared in (True, False)}
    best_index = np.zeros((len(utterances), 0), np.int64)
    best_score = np.zeros((len(utterances), 0))
    results_index, results_score = [], []
    for start in range(0, len(utterances), UTTERANCE_BATCH):
        batch = list(utterances[start : start + UTTERANCE_BATCH])
        kept_index, kept_score = best_index[: len(batch)], best_score[: len(batch)]
        offset = 0
        for segment, live in zip(segments, columns, strict=True):
            per_chunk = max(1, CHUNK_SPEAKERS // segment.width)
            for first in range(0, segment.blocks.shape[0], per_chunk):
                stop = min(first + per_chunk, segment.blocks.shape[0])
                lo, hi = np.searchsorted(live, [first * segment.width, stop * segment.width])
                if hi > lo:
                    bank = _chunk_bank(segment, first, stop, norms[segment.shared])
                    scores = scorer.score_bank(batch, bank, shared=segment.shared)
                    picked = scores[:, live[lo:hi] - first * segment.width]
                    numbers = np.arange(offset + lo, offset + hi)
                    if normalise is not None:
                        picked = normalise(picked, numbers, slice(start, start + len(batch)))
                    kept_index, kept_score = _merge(kept_index, kept_score, numbers, picked, k)
                    segment.release(first, stop)
            offset += len(live)
        results_index.append(kept_index)
        results_score.append(kept_score)
    if not results_index:
        return best_index, best_score
    return np.concatenate(results_index), np.concatenate(results_score)


def score_columns(
    ubm: Any, utterances: Sequence[np.ndarray], segment: BankSegment, column: int, *, top_c: int
) -> np.ndarray:
    """Raw LLRs of ``utterances`` against one stored speaker (its block only): shape (n_utterances,).

    Examples
    --------
    >>> score_columns.__name__
    'score_columns'
    """
    j, i = divmod(int(column), segment.width)
    bank = _chunk_bank(segment, j, j + 1, design_row_norms(ubm.variances_, segment.shared).astype(np.float32))
    single = QuantizedBank(
        np.ascontiguousarray(bank.blocks[:, :, :, i : i + 1]),
        np.ascontiguousarray(bank.scale[:, :, i : i + 1]),
        np.ascontiguousarray(bank.constant[:, :, i : i + 1]),
        bank.row_norm,
        1,
    )
    return Scorer.without_speakers(ubm, top_c=top_c).score_bank(utterances, single, shared=segment.shared)[
        :, 0
    ]
