"""Compiled kernels of top-C scoring (numba): component selection, pair grouping, products, LLR sums.

Every kernel is single-threaded and releases the GIL; :mod:`spkid.score` runs them on slices of rows from
plain Python threads. Matrix products inside the kernels go to BLAS through ``np.dot``, so the Python
interpreter is not involved once per component.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads

from spkid.blas import cached_njit
from spkid.gmm._kernels import clamped_exp

__all__ = [
    "block_llr_sums",
    "group_pairs",
    "quantized_products",
    "runtime_probe",
    "segment_llr_sums",
    "start_kernels",
    "ubm_top_components",
]

_EXP_FLOOR = np.float32(-80.0)  # exp below e^-80 is negligible next to the 1 of the best component
# Fast-math without the "no NaN / no inf" assumptions, so a non-finite score stays visible.
_FAST_FINITE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@cached_njit(nogil=True)
def runtime_probe(value):  # pragma: no cover - compiled
    """``value + 1``: its first call starts numba's compiled-code runtime, which every kernel shares."""
    return value + 1


def start_kernels() -> None:
    """Start the compiled-code runtime the scoring kernels share, and numba's thread count, now.

    The first kernel call of a process loads numba's runtime (~0.3 s, whatever the number of speakers);
    calling this first lets a command time that apart from the scoring itself (``spkid identify
    --timings``: ``kernels_s``). Later calls cost nothing.

    Examples
    --------
    >>> start_kernels()
    """
    runtime_probe(1)
    get_num_threads()


@cached_njit(nogil=True)
def ubm_top_components(design, ubm_form, n_best, top_index, log_post):  # pragma: no cover - compiled
    """Each frame's ``n_best`` best UBM components and their posteriors among those kept.

    Parameters
    ----------
    design : ndarray (n_frames, 2D+1) float32
        Rows ``[(x-c)^2, x-c, 1]``.
    ubm_form : ndarray (2D+1, K) float32
        ``design @ ubm_form`` is ``log w_k N(x | k)`` under the UBM.
    n_best : int
    top_index : ndarray (n_frames, n_best) int64, out
        Component indices, best first.
    log_post : ndarray (n_frames, n_best) float32, out
        ``log`` of each kept component's share of the kept UBM likelihood.
    """
    log_prob = np.dot(design, ubm_form)
    values = np.empty(n_best, np.float32)
    for row in range(log_prob.shape[0]):
        data, index = log_prob[row], top_index[row]
        for j in range(n_best):
            values[j] = -np.inf
            index[j] = 0
        threshold = values[n_best - 1]  # a local copy: the compiler cannot keep array elements in registers
        for k in range(data.shape[0]):
            value = data[k]
            if value > threshold:
                j = n_best - 1
                while j > 0 and values[j - 1] < value:
                    values[j] = values[j - 1]
                    index[j] = index[j - 1]
                    j -= 1
                values[j] = value
                index[j] = k
                threshold = values[n_best - 1]
        total = 0.0
        for j in range(n_best):
            total += math.exp(values[j] - values[0])
        log_total = values[0] + math.log(total)
        for j in range(n_best):
            log_post[row, j] = values[j] - log_total


@cached_njit(nogil=True)
def group_pairs(design, top_index, inverse_norm, n_components):  # pragma: no cover - compiled
    """Group the kept (frame, component) pairs by component (a counting sort, stable in frame order).

    Parameters
    ----------
    design : ndarray (n_frames, R) float32
        Design rows of the frames (``R`` = rows of the speaker parameter bank, the last the constant 1).
    top_index : ndarray (n_frames, C) int64
    inverse_norm : ndarray (K, R - 1) float32
        ``1 / row_norm`` of the quantised bank (see ``QuantizedBank``), folded into each pair's design row.
    n_components : int

    Returns
    -------
    pair_design : ndarray (n_frames * C, R) float32
        The design row of each pair, its non-constant terms divided by its component's row norms, grouped
        by component.
    bounds : ndarray (K + 1,) int64
        Pairs of component k are rows ``bounds[k]:bounds[k + 1]``.
    pair_rows : ndarray (n_frames, C) int64
        Row of ``pair_design`` holding frame t's c-th kept component.
    """
    n_frames, n_best = top_index.shape
    n_rows = design.shape[1] - 1  # normalised rows; the last, the constant 1, is copied
    bounds = np.zeros(n_components + 1, np.int64)
    for t in range(n_frames):
        for c in range(n_best):
            bounds[top_index[t, c] + 1] += 1
    for k in range(n_components):
        bounds[k + 1] += bounds[k]
    cursor = bounds[:-1].copy()
    pair_design = np.empty((n_frames * n_best, n_rows + 1), np.float32)
    pair_rows = np.empty((n_frames, n_best), np.int64)
    for t in range(n_frames):
        for c in range(n_best):
            k = top_index[t, c]
            row = cursor[k]
            cursor[k] += 1
            pair_rows[t, c] = row
            for d in range(n_rows):
                pair_design[row, d] = design[t, d] * inverse_norm[k, d]
            pair_design[row, n_rows] = design[t, n_rows]
    return pair_design, bounds, pair_rows


@cached_njit(nogil=True)
def quantized_products(
    pair_design, bounds, components, bank_block, scale_block, constant_block, work, out
):  # pragma: no cover - compiled
    """``g`` of every pair of each component in ``components``, for one block of B speakers.

    ``out[pairs of k] = pair_design[pairs of k] @ W_k``, where ``W_k`` (R, B) is the block's component k
    in float32: rows ``float32(bank_block[k, r]) * scale_block[k]`` and, last, ``constant_block[k]``.

    Parameters
    ----------
    pair_design : ndarray (n_pairs, R) float32
        Normalised design rows grouped by component (see :func:`group_pairs`).
    bounds : ndarray (K + 1,) int64
    components : ndarray (n_used,) int64
        Components to compute (those with at least one pair).
    bank_block, scale_block, constant_block : ndarray (K, R - 1, B) int16, (K, B) float32, (K, B) float32
        One block of the quantised bank.
    work : ndarray (R, B) float32
        Scratch for ``W_k`` (stays in cache for its product).
    out : ndarray (n_pairs, B) float32
    """
    n_rows, width = bank_block.shape[1], bank_block.shape[2]
    for i in range(components.shape[0]):
        k = components[i]
        start, stop = bounds[k], bounds[k + 1]
        source, scale = bank_block[k], scale_block[k]
        for d in range(n_rows):
            row, target = source[d], work[d]
            for s in range(width):
                target[s] = np.float32(row[s]) * scale[s]
        work[n_rows, :] = constant_block[k]
        np.dot(pair_design[start:stop], work, out[start:stop])


@cached_njit(fastmath=_FAST_FINITE_MATH, nogil=True)
def segment_llr_sums(pair_scores, pair_rows, log_post, segment_starts, out):  # pragma: no cover - compiled
    """``out[g, s] = sum over frames t of segment g of log sum_c exp(log_post[t, c] + pair_scores[row, s])``.

    ``pair_rows[t, c]`` is the row of ``pair_scores`` holding frame t's c-th component. Segments are short
    enough that the product of the per-frame sums (each in [1, C]) stays finite in float32, so one log
    per segment replaces one log per frame.
    """
    n_speakers = pair_scores.shape[1]
    n_best = pair_rows.shape[1]
    for segment in range(segment_starts.shape[0] - 1):
        best = np.empty(n_speakers, np.float32)
        total = np.empty(n_speakers, np.float32)
        product = np.ones(n_speakers, np.float32)
        acc = out[segment]
        for t in range(segment_starts[segment], segment_starts[segment + 1]):
            first = pair_scores[pair_rows[t, 0]]
            shift = log_post[t, 0]
            for s in range(n_speakers):
                best[s] = shift + first[s]
            for c in range(1, n_best):
                scores = pair_scores[pair_rows[t, c]]
                shift = log_post[t, c]
                for s in range(n_speakers):
                    best[s] = max(best[s], shift + scores[s])
            total[:] = 0
            for c in range(n_best):
                scores = pair_scores[pair_rows[t, c]]
                shift = log_post[t, c]
                for s in range(n_speakers):
                    total[s] += clamped_exp(max(shift + scores[s] - best[s], _EXP_FLOOR))
            for s in range(n_speakers):
                product[s] *= total[s]
                acc[s] += best[s]
        for s in range(n_speakers):
            acc[s] += math.log(product[s])


@cached_njit(nogil=True)
def block_llr_sums(
    pair_design,
    bounds,
    components,
    bank_block,
    scale_block,
    constant_block,
    work,
    pair_scores,
    pair_rows,
    log_post,
    segment_starts,
    out,
):  # pragma: no cover - compiled
    """:func:`quantized_products` then :func:`segment_llr_sums` for one block of speakers, in one call.

    ``pair_scores`` (n_pairs, B) is scratch; ``out`` (n_segments, B) receives the per-segment sums.
    """
    quantized_products(
        pair_design, bounds, components, bank_block, scale_block, constant_block, work, pair_scores
    )
    segment_llr_sums(pair_scores, pair_rows, log_post, segment_starts, out)
