"""Log-likelihood-ratio scoring of utterances against many MAP-adapted speaker models (exact and top-C).

The score of utterance X against speaker s is the frame-averaged LLR
``mean_t [log p(x_t | s) - log p(x_t | UBM)]``. With top-C scoring (Reynolds et al. 2000) the UBM is
evaluated once, each frame keeps its C best UBM components, and both mixtures are summed over those
components only. Per frame this is ``log sum_c post_tc exp(g_tcs)``, where ``post_tc`` is the UBM posterior
of component c among the C kept and ``g_tcs = log w_sc N_sc(x_t) - log w_uc N_uc(x_t)`` is linear in
``[x^2, x, 1]`` (or in ``[x, 1]`` when the speakers share the UBM's variances, as mean-only MAP gives).
The (frame, component) pairs are grouped by component, so every speaker's parameters for component c
are read once per chunk, and each group is one matrix product against a block of speakers at once.
Top-C scoring keeps the speakers' parameters in 16-bit fixed point (see :mod:`spkid.score._bank`);
exact scoring keeps them in float32.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import get_num_threads

from spkid.blas import blas_threads, cpu_budget
from spkid.config_checks import check_field
from spkid.errors import ModelError
from spkid.score._bank import QuantizedBank, design_row_norms, stack_parameters
from spkid.score._kernels import (
    block_llr_sums,
    group_pairs,
    quantized_products,
    segment_llr_sums,
    ubm_top_components,
)
from spkid.score.config import ScoreConfig

__all__ = ["ScoreConfig", "Scorer"]

# Exact scoring holds a chunk's (frame, component, speaker) scores as float32: at most this many (32 MB).
_CHUNK_ELEMENTS = 8_000_000
_TOP_C_FRAMES = 4096  # frames per top-C chunk: each chunk reads every speaker's parameters once
# Speakers per block of the quantised bank: a block's (pairs, speakers) scores stay in cache between the
# products that write them and the log-sum-exp pass that reads them.
_BLOCK_SPEAKERS = 128
# Below this many (pair, speaker) scores per call, threads cost more than they save.
_PARALLEL_ELEMENTS = 200_000
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _in_parallel(task: Callable[[int, int], None], n_items: int, work: int) -> None:
    """Run ``task(start, stop)`` over ``range(n_items)``, split between worker threads if ``work`` pays.

    The kernels release the GIL, so plain threads run them in parallel. Pool threads sleep between calls
    (unlike OpenMP or BLAS teams, which spin), so on a busy machine no core is wasted waiting.
    """
    n_workers = min(get_num_threads(), cpu_budget(), n_items) if work >= _PARALLEL_ELEMENTS else 1
    if n_workers <= 1:
        task(0, n_items)
        return
    cuts = np.linspace(0, n_items, n_workers + 1).astype(int)
    list(_thread_pool(n_workers).map(task, cuts[:-1], cuts[1:]))


class Scorer:
    """Scores utterances against a set of enrolled speakers (all sharing one UBM).

    Parameters
    ----------
    ubm : MixtureParameters or DiagonalGMM
        The universal background model (``weights_`` (K,), ``means_`` / ``variances_`` (K, D)).
    speakers : mapping of name -> MixtureParameters or DiagonalGMM
        MAP-adapted models of the same shape; order of ``names`` is the mapping's order.
    top_c : int or None
        Components kept per frame; None (or >= K) gives the exact LLR.

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm import MixtureParameters
    >>> from spkid.ubm import map_adapt
    >>> rng = np.random.default_rng(0)
    >>> ubm = MixtureParameters(np.full(4, 0.25), rng.normal(size=(4, 3)), np.ones((4, 3)))
    >>> alice, bob = (map_adapt(ubm, rng.normal(shift, 1.0, (200, 3))) for shift in (1.0, -1.0))
    >>> scorer = Scorer(ubm, {"alice": alice, "bob": bob}, top_c=2)
    >>> test = rng.normal(1.0, 1.0, (100, 3))  # sounds like alice
    >>> scorer.llr(test).round(1).tolist(), scorer.identify(test, top_k=1)[0][0]
    ([1.0, -2.2], 'alice')
    >>> scorer.llr_many([test, test[:50]]).shape, round(scorer.verify("bob", test), 1)
    ((2, 2), -2.2)
    """

    def __init__(self, ubm: Any, speakers: Mapping[str, Any], *, top_c: int | None = 10) -> None:
        top_c = check_field(ScoreConfig, "top_c", top_c)
        self.names: list[str] = [str(name) for name in speakers]
        if not self.names:
            raise ModelError("Scorer: no speaker models given (enroll at least one speaker)")
        self.n_components, self.n_features = np.shape(ubm.means_)
        self.top_c = self.n_components if top_c is None else min(int(top_c), self.n_components)
        self._ubm_form, bank, self._centre, self._shared_variances = stack_parameters(
            ubm, list(speakers.values())
        )
        # Exact scoring keeps float32 (K, R, S); top-C keeps 16-bit blocks (half the memory read).
        if self.top_c == self.n_components:
            self._bank: np.ndarray | QuantizedBank = bank
        else:
            norms = design_row_norms(ubm.variances_, self._shared_variances)
            self._bank = QuantizedBank.from_bank(bank, norms, _BLOCK_SPEAKERS)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._local = threading.local()
        self._flat_bank: np.ndarray | None = None

    @classmethod
    def without_speakers(cls, ubm: Any, *, top_c: int) -> Scorer:
        """A top-C scorer holding only the UBM, for speaker banks given to :meth:`score_bank`."""
        scorer = cls.__new__(cls)
        scorer.names, scorer._index = [], {}
        scorer.n_components, scorer.n_features = np.shape(ubm.means_)
        scorer.top_c = min(int(top_c), scorer.n_components)
        scorer._ubm_form, _, scorer._centre, _ = stack_parameters(ubm, [])
        scorer._shared_variances, scorer._bank, scorer._flat_bank = True, None, None
        scorer._local = threading.local()
        return scorer

    def score_bank(
        self, utterances: Sequence[np.ndarray], bank: QuantizedBank, *, shared: bool
    ) -> np.ndarray:
        """Frame-averaged top-C LLRs against a quantised bank: (n_utterances, bank.n_speakers)."""
        self._shared_variances = shared
        return self._score(utterances, bank)

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
        if isinstance(self._bank, QuantizedBank):
            return float(self._score([X], self._bank.column(column))[0, 0])
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

    def _score(self, utterances: Sequence[np.ndarray], bank: np.ndarray | QuantizedBank) -> np.ndarray:
        n_best = self.top_c
        quantized = isinstance(bank, QuantizedBank)
        n_speakers = bank.n_speakers if quantized else bank.shape[2]
        frames_per_chunk = (
            _TOP_C_FRAMES if quantized else max(1, min(4096, _CHUNK_ELEMENTS // (n_best * n_speakers)))
        )
        # Short segments keep the product of per-frame sums (each <= n_best) below 1e30 in float32.
        segment_frames = max(1, min(256, int(30 / max(np.log10(n_best), 1e-3))))
        totals = np.zeros((len(utterances), n_speakers), np.float64)
        for frames, owners in self._chunks(utterances, frames_per_chunk):
            n_frames = len(frames)
            centred = np.asarray(frames, np.float32) - self._centre
            ones = np.ones((n_frames, 1), np.float32)
            design = np.concatenate([centred * centred, centred, ones], axis=1)  # (n, 2D+1)
            starts = np.union1d(
                np.flatnonzero(np.diff(owners, prepend=-1)), np.arange(0, n_frames, segment_frames)
            )
            segment_bounds = np.append(starts, n_frames)
            if self._shared_variances:
                speaker_design = np.ascontiguousarray(design[:, self.n_features :])  # [x - c, 1]
            else:
                speaker_design = design
            if quantized:
                sums = self._top_c_sums(design, speaker_design, bank, segment_bounds)
            else:
                sums = self._exact_sums(design, speaker_design, bank, segment_bounds)
            # Segments are in frame order, so each utterance's segments are consecutive: one reduceat.
            segment_owners = owners[starts]
            firsts = np.flatnonzero(np.diff(segment_owners, prepend=-1))
            totals[segment_owners[firsts]] += np.add.reduceat(sums, firsts, axis=0, dtype=np.float64)
        lengths = np.array([len(X) for X in utterances], np.float64)
        return totals / lengths[:, None]

    def _exact_sums(
        self, design: np.ndarray, speaker_design: np.ndarray, bank: np.ndarray, segment_bounds: np.ndarray
    ) -> np.ndarray:
        """Per-segment LLR sums (n_segments, n_speakers), every component of every speaker (float32)."""
        n_frames, n_speakers = design.shape[0], bank.shape[2]
        log_prob = design @ self._ubm_form  # (n, K): log w_k N(x | k) under the UBM
        peak = log_prob.max(axis=1, keepdims=True)
        log_post = log_prob - (peak + np.log(np.exp(log_prob - peak).sum(axis=1, keepdims=True)))
        log_post = np.ascontiguousarray(log_post, np.float32)
        pair_scores = self._buffer("pair_scores", (n_frames, self.n_components * n_speakers))
        np.matmul(speaker_design, self._flat(bank), out=pair_scores)  # row t*K + k holds pair (t, k)
        pair_scores = pair_scores.reshape(-1, n_speakers)
        pair_rows = np.arange(n_frames * self.n_components).reshape(n_frames, self.n_components)
        return self._segment_sums(pair_scores, pair_rows, log_post, segment_bounds)

    def _top_c_sums(
        self, design: np.ndarray, speaker_design: np.ndarray, bank: QuantizedBank, segment_bounds: np.ndarray
    ) -> np.ndarray:
        """Per-segment top-C LLR sums (n_segments, n_speakers) through the quantised bank."""
        n_frames, n_best = design.shape[0], self.top_c
        top_index = np.empty((n_frames, n_best), np.int64)
        log_post = np.empty((n_frames, n_best), np.float32)

        def select(start: int, stop: int) -> None:
            ubm_top_components(
                design[start:stop], self._ubm_form, n_best, top_index[start:stop], log_post[start:stop]
            )

        # BLAS single-threaded throughout: the many small products are shared out between worker
        # threads instead, and BLAS threads would keep spinning after each product, stealing cores.
        with blas_threads(1):
            _in_parallel(select, n_frames, n_frames * self.n_components)
            pair_design, bounds, pair_rows = group_pairs(
                speaker_design, top_index, bank.inverse_norm, self.n_components
            )
            used = np.flatnonzero(np.diff(bounds))
            n_blocks, width, n_segments = bank.blocks.shape[0], bank.width, len(segment_bounds) - 1
            sums = np.zeros((n_blocks, n_segments, width), np.float32)
            if n_blocks >= min(get_num_threads(), 2):  # whole blocks per thread: no hand-over inside one

                def blocks_task(first: int, stop: int) -> None:
                    work = self._buffer("work", (bank.blocks.shape[2] + 1, width))  # per thread
                    pair_scores = self._buffer("pair_scores", (len(pair_design), width))
                    for j in range(first, stop):
                        block_llr_sums(
                            pair_design,
                            bounds,
                            used,
                            bank.blocks[j],
                            bank.scale[j],
                            bank.constant[j],
                            work,
                            pair_scores,
                            pair_rows,
                            log_post,
                            segment_bounds,
                            sums[j],
                        )

                _in_parallel(blocks_task, n_blocks, len(pair_design) * width * n_blocks)
            else:  # one block: its components, then its segments, shared between threads
                pair_scores = self._buffer("pair_scores", (len(pair_design), width))

                def products(first: int, stop: int) -> None:
                    work = self._buffer("work", (bank.blocks.shape[2] + 1, width))  # per thread
                    quantized_products(
                        pair_design,
                        bounds,
                        used[first:stop],
                        bank.blocks[0],
                        bank.scale[0],
                        bank.constant[0],
                        work,
                        pair_scores,
                    )

                _in_parallel(products, len(used), pair_scores.size)
                sums[0] = self._segment_sums(pair_scores, pair_rows, log_post, segment_bounds)
        # (n_blocks, n_segments, B) -> (n_segments, speakers), the padding of the last block dropped.
        return sums.transpose(1, 0, 2).reshape(n_segments, n_blocks * width)[:, : bank.n_speakers]

    def _segment_sums(
        self, pair_scores: np.ndarray, pair_rows: np.ndarray, log_post: np.ndarray, segment_bounds: np.ndarray
    ) -> np.ndarray:
        """Per-segment sums of per-frame top-C log-sum-exps: (n_segments, n_speakers) float32."""
        n_segments = len(segment_bounds) - 1
        sums = np.zeros((n_segments, pair_scores.shape[1]), np.float32)

        def task(start: int, stop: int) -> None:
            bounds = segment_bounds[start : stop + 1]
            segment_llr_sums(pair_scores, pair_rows, log_post, bounds, sums[start:stop])

        _in_parallel(task, n_segments, pair_scores.size)
        return sums

    def _flat(self, bank: np.ndarray) -> np.ndarray:
        """``bank`` as one (R, K*S) matrix for exact scoring (kept for the full bank, a copy of it)."""
        if bank is not self._bank:
            return bank.transpose(1, 0, 2).reshape(bank.shape[1], -1)
        if self._flat_bank is None:
            self._flat_bank = np.ascontiguousarray(bank.transpose(1, 0, 2).reshape(bank.shape[1], -1))
        return self._flat_bank

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 work array of ``shape``, reused across calls of this thread (no page faults)."""
        size = int(np.prod(shape))
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
