"""The chunked E-step behind :class:`spkid.gmm.DiagonalGMM`: frames in, statistics or per-frame scores out.

The E-step runs chunk by chunk: one matrix product of the design rows ``[(x-c)^2, x-c, 1]`` with the
per-model matrix ``[-1/(2 var); (mu-c)/var; const]`` gives log w_k + log N(x | k); one fused numba pass
(:mod:`spkid.gmm._kernels`) turns it into responsibilities; a second product gives N_k, F_k and S_k at once.
Products run in the model dtype (float32 by default), statistics accumulate in float64.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from spkid.blas import blas_threads, resolve_n_jobs
from spkid.errors import ModelError
from spkid.gmm.stats import SufficientStats

# numba (spkid.gmm._kernels) and joblib are imported where first needed: importing spkid.gmm (e.g. to load a
# stored model) stays cheap.

# Chunks hold about 2^20 log-probabilities (4 MiB in float32): they stay in cache between the passes.
_CHUNK_ELEMENTS = 2**20
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 256, 4096
# log p - max p is clamped here before exp: exp(-80) ~ 1.8e-35 is still a normal float32, and subnormals
# reaching the statistics product make it an order of magnitude slower.
CLAMP = {np.dtype(np.float32): -80.0, np.dtype(np.float64): -700.0}


class Frames:
    """Training frames: one array, a sequence of arrays, or a re-iterable of arrays, never concatenated.

    A one-shot iterator is materialised as a list of references to its arrays (memory-mapped arrays stay
    on disk). Any other iterable is re-iterated on every EM pass and must yield the same frames each time.
    """

    def __init__(self, data: np.ndarray | Iterable[np.ndarray], n_features: int | None) -> None:
        self._iterable: Iterable | None = None
        if isinstance(data, np.ndarray):
            self._items: list | None = [data]
        elif isinstance(data, (list, tuple, Iterator)):
            self._items = list(data)
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
            self._items, self._iterable = None, data
        else:
            raise ModelError(f"frames: expected an array or an iterable of arrays, got {type(data).__name__}")
        self.n_features = n_features
        self.n_frames = 0
        for _, array in self.arrays():
            self.n_frames += array.shape[0]
        if self.n_features is None:
            raise ModelError("frames: no arrays given")

    def arrays(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, array)`` for every non-empty 2-D array, checking its shape and dtype."""
        for index, item in enumerate(self._items if self._items is not None else self._iterable):
            array = item if isinstance(item, np.ndarray) else np.asarray(item)
            if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
                raise ModelError(f"frames array {index}: expected real numbers, got dtype {array.dtype}")
            expected = f"(n_frames, {self.n_features if self.n_features is not None else 'n_features'})"
            if array.ndim != 2 or (self.n_features is not None and array.shape[1] != self.n_features):
                raise ModelError(f"frames array {index}: expected shape {expected}, got {array.shape}")
            self.n_features = array.shape[1]
            if array.shape[0]:
                yield index, array

    def sample(self, n_rows: int, random_state: np.random.RandomState, dtype: np.dtype) -> np.ndarray:
        """``n_rows`` distinct frames drawn uniformly (in corpus order), as one ``(n_rows, D)`` array."""
        generator = np.random.default_rng(random_state.randint(2**31 - 1))
        rows = np.sort(generator.choice(self.n_frames, size=n_rows, replace=False, shuffle=False))
        parts, offset = [], 0
        for _, array in self.arrays():
            lo, hi = np.searchsorted(rows, [offset, offset + array.shape[0]])
            if hi > lo:
                parts.append(np.asarray(array[rows[lo:hi] - offset], dtype=dtype))
            offset += array.shape[0]
        return np.concatenate(parts)


class Workspace:
    """Per-thread chunk buffers, allocated once per pass (first touch of large buffers is not free)."""

    def __init__(self, n_rows: int, n_components: int, n_features: int, dtype: np.dtype) -> None:
        self.design = np.empty((n_rows, 2 * n_features + 1), dtype=dtype)
        self.log_prob = np.empty((n_rows, n_components), dtype=dtype)
        self.row_log_likelihood = np.empty(n_rows, dtype=dtype)
        self.stats = np.empty((n_components, 2 * n_features + 1), dtype=dtype)


Segments = list[tuple[int, np.ndarray]]  # a chunk: (index of the input array, rows of it) pieces


def estep_matrices(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """``(design_weights (2D+1, K), centre (D,))`` in ``dtype`` for float64 parameters of shapes (K,), (K, D).

    ``design_rows @ design_weights = log w_k + log N(x | k)`` with design rows ``[(x-c)^2, x-c, 1]``.
    Centring on the mixture mean ``c`` keeps float32 products accurate for un-normalised features.
    """
    centre = (weights @ means).astype(dtype)
    precisions = 1.0 / variances
    offsets = means - centre.astype(np.float64)
    constant = np.log(np.maximum(weights, 1e-300)) - 0.5 * (
        means.shape[1] * np.log(2 * np.pi)
        + np.log(variances).sum(axis=1)
        + (offsets**2 * precisions).sum(axis=1)
    )
    design_weights = np.vstack([-0.5 * precisions.T, (offsets * precisions).T, constant[None, :]])
    with np.errstate(over="ignore"):  # an overflow to inf is reported just below, as a ModelError
        design_weights = np.ascontiguousarray(design_weights, dtype=dtype)
    if not np.all(np.isfinite(design_weights)):
        raise ModelError(f"variances: too small for {dtype.name} (smallest {variances.min():.3g})")
    return design_weights, centre


def chunk_rows(n_frames: int, n_components: int, chunk_size: int | None) -> int:
    """Rows per chunk: ``chunk_size``, or about 2^20 / ``n_components`` when None; at most ``n_frames``."""
    automatic = min(max(_CHUNK_ELEMENTS // n_components, _MIN_CHUNK_ROWS), _MAX_CHUNK_ROWS)
    rows = chunk_size or automatic
    return max(1, min(rows, n_frames))


def chunks(frames: Frames, n_rows: int) -> Iterator[tuple[int, Segments]]:
    """``(first row, segments)`` of consecutive ``n_rows``-row chunks, spanning array boundaries."""
    segments, filled, first_row = [], 0, 0
    for index, array in frames.arrays():
        start = 0
        while start < array.shape[0]:
            take = min(n_rows - filled, array.shape[0] - start)
            segments.append((index, array[start : start + take]))
            filled, start = filled + take, start + take
            if filled == n_rows:
                yield first_row, segments
                segments, filled, first_row = [], 0, first_row + n_rows
    if segments:
        yield first_row, segments


@dataclass(frozen=True)
class EStep:
    """One model's E-step over chunks of frames, with the model's current chunking and threading settings.

    Attributes
    ----------
    design_weights : ndarray of shape (2 * n_features + 1, n_components)
    centre : ndarray of shape (n_features,)
        From :func:`estep_matrices`, in the model dtype.
    n_components : int
    chunk_size : int or None
        Frames per chunk (None: automatic, see :func:`chunk_rows`).
    n_jobs : int
        Chunk streams run at once (joblib threads, one BLAS thread each; -1 = all cores).
    """

    design_weights: np.ndarray
    centre: np.ndarray
    n_components: int
    chunk_size: int | None
    n_jobs: int

    def map_chunks(self, frames: Frames, work: Callable[[int, Segments, Workspace], object]) -> Iterator:
        """``work(first_row, segments, workspace)`` on every chunk; results in chunk order.

        With ``n_jobs`` > 1 the chunks go to that many joblib threads, each with its own workspace and one
        BLAS thread, so every core runs whole chunks (products and kernels) without waiting for the others.
        ``work`` must not return views of the workspace, which the thread reuses.
        """
        design_weights = self.design_weights
        n_rows = chunk_rows(frames.n_frames, self.n_components, self.chunk_size)
        frame_chunks = chunks(frames, n_rows)

        def workspace() -> Workspace:
            return Workspace(n_rows, self.n_components, frames.n_features, design_weights.dtype)

        # One chunk or one job: no thread pool (starting one costs more than the work).
        from joblib import Parallel, delayed

        n_jobs = resolve_n_jobs(self.n_jobs) if frames.n_frames > n_rows else 1
        if n_jobs == 1:
            # One job is one busy thread: multi-threaded BLAS on chunk-sized products loses to other load
            # (on a busy 2-core machine, 2.4x slower than one BLAS thread; benchmarks/bench_em.py --busy).
            buffers = workspace()
            with blas_threads(1):
                for first_row, segments in frame_chunks:
                    yield work(first_row, segments, buffers)
            return
        local = threading.local()

        def task(first_row: int, segments: Segments) -> object:
            if not hasattr(local, "buffers"):
                local.buffers = workspace()
            return work(first_row, segments, local.buffers)

        with blas_threads(1):
            # Results come back in chunk order; a wide dispatch window lets the other threads run ahead
            # while one is descheduled (a busy machine) instead of waiting for its chunk.
            parallel = Parallel(
                n_jobs=n_jobs, prefer="threads", return_as="generator", pre_dispatch=8 * n_jobs
            )
            yield from parallel(delayed(task)(first_row, segments) for first_row, segments in frame_chunks)

    def log_prob(self, segments: Segments, buffers: Workspace, out: np.ndarray | None = None) -> np.ndarray:
        """Fill the chunk's design rows and return ``log w_k + log N(x | k)`` (into ``out`` if given)."""
        from spkid.gmm import _kernels

        design_weights, centre = self.design_weights, self.centre
        row = 0
        for index, segment in segments:
            block = np.ascontiguousarray(segment, dtype=design_weights.dtype)
            n_bad = _kernels.fill_design(block, centre, buffers.design[row : row + block.shape[0]])
            if n_bad:
                raise ModelError(
                    f"frames array {index}: {n_bad} frame(s) hold NaN or infinite values "
                    f"(or values too large for {design_weights.dtype.name})"
                )
            row += block.shape[0]
        log_prob = buffers.log_prob[:row] if out is None else out
        return np.matmul(buffers.design[:row], design_weights, out=log_prob)

    def accumulate(self, frames: Frames) -> SufficientStats:
        """Sufficient statistics of ``frames`` (float64 sums, in chunk order whatever ``n_jobs``)."""
        from spkid.gmm import _kernels

        design_weights, centre = self.design_weights, self.centre
        n_features = centre.shape[0]
        clamp = design_weights.dtype.type(CLAMP[design_weights.dtype])

        def chunk_statistics(first_row: int, segments: Segments, buffers: Workspace):
            log_prob = self.log_prob(segments, buffers)
            n_rows = log_prob.shape[0]
            design, row_log_likelihood = buffers.design[:n_rows], buffers.row_log_likelihood[:n_rows]
            _kernels.estep(log_prob, design, row_log_likelihood, clamp)
            np.matmul(log_prob.T, design, out=buffers.stats)
            chunk_sum = float(np.sum(row_log_likelihood, dtype=np.float64))
            return buffers.stats.astype(np.float64), chunk_sum, n_rows

        # Chunk results are summed in chunk order, so the sums do not depend on n_jobs or thread timing.
        totals = np.zeros((self.n_components, 2 * n_features + 1))
        log_likelihood, n_frames = 0.0, 0
        for stats, chunk_sum, rows_in_chunk in self.map_chunks(frames, chunk_statistics):
            totals += stats
            log_likelihood, n_frames = log_likelihood + chunk_sum, n_frames + rows_in_chunk
        if n_frames != frames.n_frames:
            raise ModelError(
                f"frames: this pass yielded {n_frames} frames, the first {frames.n_frames}; "
                "an iterable of arrays must yield the same arrays on every pass"
            )
        if not np.isfinite(log_likelihood):
            raise ModelError(
                f"log-likelihood is not finite: features too large for "
                f"{design_weights.dtype.name}; normalise them or use dtype=numpy.float64"
            )
        # Back from centred coordinates: sum g x = sum g (x-c) + N c and
        # sum g x^2 = sum g (x-c)^2 + 2 c sum g (x-c) + N c^2.
        centre = centre.astype(np.float64)
        zeroth = totals[:, 2 * n_features]
        centred_first, centred_second = totals[:, n_features : 2 * n_features], totals[:, :n_features]
        first = centred_first + zeroth[:, None] * centre
        second = centred_second + 2 * centre * centred_first + zeroth[:, None] * centre**2
        return SufficientStats(zeroth.copy(), first, second, log_likelihood, n_frames)

    # The per-frame passes below take the model's ``dtype`` (that of ``design_weights`` unless the model's
    # ``dtype`` changed after these matrices were built) for their outputs and clamp.

    def weighted_log_prob(self, frames: Frames, dtype: np.dtype) -> np.ndarray:
        """``log w_k + log N(x_t | k)``, ndarray of shape (n_frames, n_components) in ``dtype``."""
        out = np.empty((frames.n_frames, self.n_components), dtype=dtype)

        def chunk(first_row: int, segments: Segments, buffers: Workspace) -> None:
            n_rows = sum(segment.shape[0] for _, segment in segments)
            self.log_prob(segments, buffers, out[first_row : first_row + n_rows])

        for _ in self.map_chunks(frames, chunk):
            pass
        return out

    def score_samples(self, frames: Frames, dtype: np.dtype) -> np.ndarray:
        """``log p(x_t)``, ndarray of shape (n_frames,), float64."""
        from spkid.gmm import _kernels

        scores = np.empty(frames.n_frames)
        clamp = dtype.type(CLAMP[dtype])

        def chunk(first_row: int, segments: Segments, buffers: Workspace) -> None:
            log_prob = self.log_prob(segments, buffers)
            row_scores = buffers.row_log_likelihood[: log_prob.shape[0]]
            _kernels.logsumexp(log_prob, row_scores, clamp)
            scores[first_row : first_row + log_prob.shape[0]] = row_scores

        for _ in self.map_chunks(frames, chunk):
            pass
        return scores

    def posteriors(self, frames: Frames, dtype: np.dtype) -> np.ndarray:
        """Responsibilities, ndarray of shape (n_frames, n_components) in ``dtype``; rows sum to 1."""
        from spkid.gmm import _kernels

        out = np.empty((frames.n_frames, self.n_components), dtype=dtype)
        clamp = out.dtype.type(CLAMP[out.dtype])

        def chunk(first_row: int, segments: Segments, buffers: Workspace) -> None:
            n_rows = sum(segment.shape[0] for _, segment in segments)
            log_prob = self.log_prob(segments, buffers, out[first_row : first_row + n_rows])
            _kernels.posterior(log_prob, buffers.row_log_likelihood[:n_rows], clamp)

        for _ in self.map_chunks(frames, chunk):
            pass
        return out

    def labels(self, frames: Frames) -> np.ndarray:
        """Most likely component of each frame, ndarray of shape (n_frames,), int64."""
        labels = np.empty(frames.n_frames, dtype=np.int64)

        def chunk(first_row: int, segments: Segments, buffers: Workspace) -> None:
            log_prob = self.log_prob(segments, buffers)
            labels[first_row : first_row + log_prob.shape[0]] = np.argmax(log_prob, axis=1)

        for _ in self.map_chunks(frames, chunk):
            pass
        return labels
