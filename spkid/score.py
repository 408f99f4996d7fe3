"""Log-likelihood-ratio scoring of utterances against many MAP-adapted speaker models (exact and top-C).

The score of utterance X against speaker s is the frame-averaged LLR
``mean_t [log p(x_t | s) - log p(x_t | UBM)]``. With top-C scoring (Reynolds et al. 2000) the UBM is
evaluated once, each frame keeps its C best UBM components, and both mixtures are summed over those
components only. Per frame this is ``log sum_c post_tc exp(g_tcs)``, where ``post_tc`` is the UBM posterior
of component c among the C kept and ``g_tcs = log w_sc N_sc(x_t) - log w_uc N_uc(x_t)`` is linear in
``[x^2, x, 1]`` (or in ``[x, 1]`` when the speakers share the UBM's variances, as mean-only MAP gives).
The (frame, component) pairs are grouped by component, so every speaker's parameters for component c
are read once per chunk, and each group is one matrix product against all speakers at once.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
from numba import get_num_threads, njit
from threadpoolctl import ThreadpoolController

from spkid._kernels import clamped_exp
from spkid.errors import ConfigError, ModelError
from spkid.normalize import METHODS
from spkid.ubm import check_settings

__all__ = ["ScoreConfig", "Scorer"]

# Scores of one chunk are held as a float32 (pairs, speakers) matrix of at most this many elements (32 MB).
_CHUNK_ELEMENTS = 8_000_000
_EXP_FLOOR = np.float32(-80.0)  # exp below e^-80 is negligible next to the 1 of the best component
# Below this many (pair, speaker) scores per call, threads cost more than they save.
_PARALLEL_ELEMENTS = 200_000
_BLAS = ThreadpoolController()
_POOLS: dict[int, ThreadPoolExecutor] = {}
_STACK_GROUP = 128  # speakers converted at a time when building the parameter bank
_MIN_BLOCK_SPEAKERS = 64  # top-C frame chunks are sized so speaker blocks hold at least this many
# Fast-math without the "no NaN / no inf" assumptions, so a non-finite score stays visible.
_FAST_FINITE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """How test utterances are scored.

    Attributes
    ----------
    top_c : int or None
        UBM components kept per frame (5 is the usual choice: within a few hundredths of the exact LLR at
        a hundredth of the cost). None scores with every component (exact).
    normalization : str
        Score normalisation: "none", "znorm", "tnorm", "ztnorm", "snorm" or "asnorm" (see spkid.normalize).
    cohort_size : int
        Number of impostor utterances/models in the normalisation cohort.
    asnorm_top_k : int
        Adaptive S-norm uses the ``asnorm_top_k`` closest cohort scores of each side.
    """

    top_c: int | None = 5
    normalization: str = "none"
    cohort_size: int = 100
    asnorm_top_k: int = 50

    def __post_init__(self) -> None:
        if self.top_c is not None and (isinstance(self.top_c, bool) or int(self.top_c) != self.top_c
                                       or self.top_c < 1):  # fmt: skip
            raise ConfigError(f"score.top_c={self.top_c!r}: must be a positive integer or None (exact)")
        if self.normalization not in METHODS:
            raise ConfigError(
                f"score.normalization={self.normalization!r}: must be one of {', '.join(METHODS)}"
            )
        for name in ("cohort_size", "asnorm_top_k"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ConfigError(f"score.{name}={getattr(self, name)!r}: must be a positive integer")

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> ScoreConfig:
        """Build from a mapping; missing keys take defaults, unknown keys raise :class:`ConfigError`."""
        return cls(**check_settings("score", cls, settings))


@njit(cache=True, nogil=True)
def _top_components(log_prob, n_best, top_index, top_value):  # pragma: no cover - compiled
    """Per row, the ``n_best`` largest values (descending) and their columns."""
    for row in range(log_prob.shape[0]):
        values, index, data = top_value[row], top_index[row], log_prob[row]
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


@njit(fastmath=_FAST_FINITE_MATH, cache=True, nogil=True)
def _segment_llr_sums(pair_scores, pair_rows, log_post, segment_starts, out):  # pragma: no cover - compiled
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


def _top_rows(log_prob, n_best, top_index, top_value, start: int, stop: int) -> None:
    _top_components(log_prob[start:stop], n_best, top_index[start:stop], top_value[start:stop])


def _segment_rows(pair_scores, pair_rows, log_post, segment_bounds, out, start: int, stop: int) -> None:
    _segment_llr_sums(pair_scores, pair_rows, log_post, segment_bounds[start : stop + 1], out[start:stop])


def _in_parallel(task: Callable[[int, int], None], n_items: int, work: int) -> None:
    """Run ``task(start, stop)`` over ``range(n_items)``, split between worker threads if ``work`` pays.

    The kernels release the GIL, so plain threads run them in parallel. Pool threads sleep between calls
    (unlike OpenMP or BLAS teams, which spin), so on a busy machine no core is wasted waiting.
    """
    n_workers = min(get_num_threads(), n_items) if work >= _PARALLEL_ELEMENTS else 1
    if n_workers <= 1:
        task(0, n_items)
        return
    cuts = np.linspace(0, n_items, n_workers + 1).astype(int)
    list(_thread_pool(n_workers).map(task, cuts[:-1], cuts[1:]))


def _stack_parameters(ubm: Any, speakers: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """UBM design weights (2D+1, K) and speaker-minus-UBM weights (K, R, S) for centred frames.

    ``R = D + 1`` (design ``[x, 1]``) when every speaker shares the UBM variances, else ``2 D + 1``
    (design ``[x^2, x, 1]``). Built in float64 so the differences lose nothing, stored as float32.
    """
    weights, means, variances = (
        np.asarray(a, np.float64) for a in (ubm.weights_, ubm.means_, ubm.variances_)
    )
    centre = weights @ means
    for index, speaker in enumerate(speakers):
        for name, reference in (("weights_", weights), ("means_", means), ("variances_", variances)):
            if np.shape(getattr(speaker, name)) != reference.shape:
                raise ModelError(
                    f"speaker model {index}: {name} has shape {np.shape(getattr(speaker, name))}, "
                    f"the UBM has {reference.shape}"
                )

    def quadratic_form(w: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Rows of ``log w_k N(x | k)`` as a linear function of ``[(x-c)^2, x-c, 1]``: (..., K, 2D+1)."""
        shifted = mu - centre
        norm_terms = mu.shape[-1] * np.log(2 * np.pi) + np.log(var).sum(-1) + (shifted**2 / var).sum(-1)
        constant = np.log(np.maximum(w, 1e-30)) - 0.5 * norm_terms
        return np.concatenate([-0.5 / var, shifted / var, constant[..., None]], axis=-1)

    ubm_form = quadratic_form(weights, means, variances)
    shared = all(np.array_equal(np.asarray(s.variances_, np.float64), variances) for s in speakers)
    n_rows = means.shape[1] + 1 if shared else 2 * means.shape[1] + 1
    bank = np.empty((means.shape[0], n_rows, len(speakers)), np.float32)  # (K, R, S)
    for start in range(0, len(speakers), _STACK_GROUP):  # groups bound the float64 temporaries
        group = speakers[start : start + _STACK_GROUP]
        group_weights, group_means, group_variances = (
            np.array([np.asarray(getattr(s, name), np.float64) for s in group])
            for name in ("weights_", "means_", "variances_")
        )
        if shared:
            # Equal variances: the x^2 terms cancel, leaving [x-c, 1] (half the work of the general case).
            log_ratio = np.log(np.maximum(group_weights, 1e-30)) - np.log(np.maximum(weights, 1e-30))
            square_change = (((group_means - centre) ** 2 - (means - centre) ** 2) / variances).sum(-1)
            linear = (group_means - means) / variances
            difference = np.concatenate([linear, (log_ratio - 0.5 * square_change)[..., None]], axis=-1)
        else:
            difference = quadratic_form(group_weights, group_means, group_variances) - ubm_form
        bank[:, :, start : start + len(group)] = difference.transpose(1, 2, 0)
    return np.ascontiguousarray(ubm_form.T, dtype=np.float32), bank, centre.astype(np.float32), shared


class Scorer:
    """Scores utterances against a set of enrolled speakers (all sharing one UBM).

    Parameters
    ----------
    ubm : DiagonalGMM
        The universal background model (``weights_`` (K,), ``means_`` / ``variances_`` (K, D)).
    speakers : mapping of name -> DiagonalGMM
        MAP-adapted models of the same shape; order of ``names`` is the mapping's order.
    top_c : int or None
        Components kept per frame; None (or >= K) gives the exact LLR.
    """

    def __init__(self, ubm: Any, speakers: Mapping[str, Any], *, top_c: int | None = 5) -> None:
        if top_c is not None and top_c < 1:
            raise ConfigError(f"top_c={top_c}: must be a positive integer or None (exact)")
        self.names: list[str] = [str(name) for name in speakers]
        if not self.names:
            raise ModelError("Scorer: no speaker models given (enroll at least one speaker)")
        self.n_components, self.n_features = np.shape(ubm.means_)
        self.top_c = self.n_components if top_c is None else min(int(top_c), self.n_components)
        self._ubm_form, self._bank, self._centre, self._shared_variances = _stack_parameters(
            ubm, list(speakers.values())
        )
        self._index = {name: i for i, name in enumerate(self.names)}
        self._local = threading.local()
        self._flat_bank: np.ndarray | None = None

    def llr(self, X: np.ndarray) -> np.ndarray:
        """Frame-averaged LLR of one utterance against every speaker: ndarray of shape (n_speakers,)."""
        return self.llr_many([X])[0]

    def llr_many(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """Frame-averaged LLRs, ndarray of shape (n_utterances, n_speakers), one row per utterance.

        Frames of consecutive utterances share chunks, so scoring many short utterances (a cohort, a
        trial list) reads the speaker parameters once per chunk rather than once per utterance.
        """
        return self._score(utterances, self._bank)

    def identify(self, X: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` best-scoring speakers for one utterance, best first, as ``(name, llr)`` pairs."""
        scores = self.llr(X)
        order = np.argsort(-scores, kind="stable")[: max(int(top_k), 1)]
        return [(self.names[i], float(scores[i])) for i in order]

    def verify(self, name: str, X: np.ndarray) -> float:
        """LLR of one utterance against one enrolled speaker (only that speaker's model is evaluated)."""
        if name not in self._index:
            raise ModelError(f"speaker {name!r} is not enrolled ({len(self.names)} speakers known)")
        column = self._index[name]
        bank = np.ascontiguousarray(self._bank[:, :, column : column + 1])
        return float(self._score([X], bank)[0, 0])

    # -- the scoring pipeline ------------------------------------------------------------------------
    def _chunks(self, utterances: Sequence[np.ndarray], frames_per_chunk: int) -> Iterator[tuple]:
        """Yield (frames, utterance id of each frame) in chunks of at most ``frames_per_chunk`` frames."""
        pieces: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        filled = 0
        for index, X in enumerate(utterances):
            X = np.asarray(X)
            if X.ndim != 2 or X.shape[1] != self.n_features:
                raise ModelError(
                    f"utterance {index}: features of shape {X.shape}, "
                    f"the models expect (n_frames, {self.n_features})"
                )
            if X.shape[0] == 0:
                raise ModelError(f"utterance {index}: no frames to score")
            if not np.all(np.isfinite(X)):
                raise ModelError(f"utterance {index}: features contain NaN or infinite values")
            start = 0
            while start < X.shape[0]:
                take = min(frames_per_chunk - filled, X.shape[0] - start)
                pieces.append(X[start : start + take])
                owners.append(np.full(take, index))
                filled += take
                start += take
                if filled == frames_per_chunk:
                    yield np.concatenate(pieces), np.concatenate(owners)
                    pieces, owners, filled = [], [], 0
        if pieces:
            yield np.concatenate(pieces), np.concatenate(owners)

    def _score(self, utterances: Sequence[np.ndarray], bank: np.ndarray) -> np.ndarray:
        n_speakers, n_best = bank.shape[2], self.top_c
        exact = n_best == self.n_components
        # Exact: all (frame, component, speaker) scores of a chunk at once. Top-C: long frame chunks, with
        # speakers taken in blocks so the (pairs, speakers) score matrix stays within _CHUNK_ELEMENTS.
        per_frame = n_best * (n_speakers if exact else min(n_speakers, _MIN_BLOCK_SPEAKERS))
        frames_per_chunk = max(1, min(4096, _CHUNK_ELEMENTS // per_frame))
        # Short segments keep the product of per-frame sums (each <= n_best) below 1e30 in float32.
        segment_frames = max(1, min(256, int(30 / max(np.log10(n_best), 1e-3))))
        totals = np.zeros((len(utterances), n_speakers), np.float64)
        for frames, owners in self._chunks(utterances, frames_per_chunk):
            n_frames = len(frames)
            centred = np.asarray(frames, np.float32) - self._centre
            ones = np.ones((n_frames, 1), np.float32)
            design = np.concatenate([centred * centred, centred, ones], axis=1)  # (n, 2D+1)
            # Single-threaded BLAS in top-C mode: its worker threads would otherwise keep spinning for a
            # while after the product, stealing cores from the per-component products that follow.
            with _BLAS.limit(limits=None if exact else 1, user_api="blas"):
                log_prob = design @ self._ubm_form  # (n, K): log w_k N(x | k) under the UBM
            if self._shared_variances:
                design = np.ascontiguousarray(design[:, self.n_features :])  # [x - c, 1]
            if exact:
                top_index, top_value = None, log_prob
            else:
                top_index = np.empty((n_frames, n_best), np.int64)
                top_value = np.empty((n_frames, n_best), np.float32)
                task = partial(_top_rows, log_prob, n_best, top_index, top_value)
                _in_parallel(task, n_frames, log_prob.size)
            peak = top_value.max(axis=1, keepdims=True)
            log_post = top_value - (peak + np.log(np.exp(top_value - peak).sum(axis=1, keepdims=True)))
            log_post = np.ascontiguousarray(log_post, np.float32)
            starts = np.union1d(
                np.flatnonzero(np.diff(owners, prepend=-1)), np.arange(0, n_frames, segment_frames)
            )
            segment_bounds = np.append(starts, n_frames)
            for block, pair_scores, pair_rows in self._pair_score_blocks(design, top_index, bank):
                sums = np.zeros((len(starts), pair_scores.shape[1]), np.float32)
                task = partial(_segment_rows, pair_scores, pair_rows, log_post, segment_bounds, sums)
                _in_parallel(task, len(starts), pair_scores.size)
                np.add.at(totals[:, block], owners[starts], sums)
        lengths = np.array([len(X) for X in utterances], np.float64)
        return totals / lengths[:, None]

    def _pair_score_blocks(
        self, design: np.ndarray, top_index: np.ndarray | None, bank: np.ndarray
    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Yield ``(speaker slice, pair_scores, pair_rows)`` for blocks of speakers.

        ``pair_scores`` (n_pairs, n_block_speakers) float32 holds ``g`` of every kept (frame, component)
        pair, grouped by component; ``pair_rows`` (n_frames, C) gives the row of each frame's pairs.
        """
        n_frames, n_speakers = design.shape[0], bank.shape[2]
        if top_index is None:  # exact: one product gives every pair; row t*K + k
            pair_scores = self._buffer("pair_scores", (n_frames, self.n_components * n_speakers))
            np.matmul(design, self._flat(bank), out=pair_scores)
            pair_rows = np.arange(n_frames * self.n_components).reshape(n_frames, self.n_components)
            yield slice(0, n_speakers), pair_scores.reshape(-1, n_speakers), pair_rows
            return
        n_best = top_index.shape[1]
        components = top_index.ravel()
        order = np.argsort(components, kind="stable")
        pair_design = design[order // n_best]
        pair_rows = np.empty(len(order), np.int64)
        pair_rows[order] = np.arange(len(order))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(components, minlength=self.n_components))])
        used = np.flatnonzero(np.diff(bounds))
        block_size = max(1, _CHUNK_ELEMENTS // len(order))
        for first in range(0, n_speakers, block_size):
            block = slice(first, min(first + block_size, n_speakers))
            pair_scores = self._buffer("pair_scores", (len(order), block.stop - block.start))

            def products(first_used: int, stop_used: int, out: np.ndarray = pair_scores, block=block) -> None:
                for k in used[first_used:stop_used]:  # one product per component, for the block's speakers
                    rows = slice(bounds[k], bounds[k + 1])
                    np.matmul(pair_design[rows], bank[k, :, block], out=out[rows])

            # The products are small: threading each inside BLAS costs a synchronisation per product, so
            # BLAS runs single-threaded and worker threads share out the components instead.
            with _BLAS.limit(limits=1, user_api="blas"):
                _in_parallel(products, len(used), pair_scores.size)
            yield block, pair_scores, pair_rows.reshape(n_frames, n_best)

    def _flat(self, bank: np.ndarray) -> np.ndarray:
        """``bank`` as one (R, K*S) matrix for exact scoring (kept for the full bank, a copy of it)."""
        if bank is not self._bank:
            return bank.transpose(1, 0, 2).reshape(bank.shape[1], -1)
        if self._flat_bank is None:
            self._flat_bank = np.ascontiguousarray(bank.transpose(1, 0, 2).reshape(bank.shape[1], -1))
        return self._flat_bank

    def _buffer(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """A float32 work array of ``shape``, reused across calls of this thread (no page faults)."""
        size = shape[0] * shape[1]
        cached = getattr(self._local, name, None)
        if cached is None or cached.size < size:
            cached = np.empty(size, np.float32)
            setattr(self._local, name, cached)
        return cached[:size].reshape(shape)


def _thread_pool(n_workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n_workers`` threads, created on first use."""
    if n_workers not in _POOLS:
        _POOLS[n_workers] = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="spkid-score")
    return _POOLS[n_workers]
