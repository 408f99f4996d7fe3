"""Compiled per-element passes of the GMM E-step (numba), fused so a chunk is read once after its product.

The matrix products live in numpy (BLAS); everything between them -- building the design rows
``[(x - c)^2, x - c, 1]``, row maximum, clamped ``exp``, row sum, normalisation, ``log`` -- is one pass per
chunk here. The kernels are single-threaded and release the GIL: :mod:`spkid.gmm._estep` (behind
:mod:`spkid.gmm`) runs one chunk stream per core (``n_jobs``), which on this kind of machine beats ``prange``
kernels interleaved with multi-threaded BLAS calls (their thread pools fight over the cores at every
chunk; see ``benchmarks/bench_em.py``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from spkid.blas import cached_njit

# Cody-Waite split of ln 2: the high part has few mantissa bits so ``n * _LN2_HI`` is exact for |n| < 2^12.
_LOG2E_F32 = np.float32(1.4426950408889634)
_LN2_HI_F32 = np.float32(0.693359375)
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_HALF_F32 = np.float32(0.5)
# Taylor coefficients 1/j! of exp(r) for |r| <= ln(2)/2: degree 7 leaves a relative error below 6e-9.
_C2 = np.float32(1.0 / 2.0)
_C3 = np.float32(1.0 / 6.0)
_C4 = np.float32(1.0 / 24.0)
_C5 = np.float32(1.0 / 120.0)
_C6 = np.float32(1.0 / 720.0)
_C7 = np.float32(1.0 / 5040.0)
_ONE_F32 = np.float32(1.0)
_ZERO_F32 = np.float32(0.0)
_MANTISSA_SCALE_F32 = np.float32(2.0**23)
_EXPONENT_BIAS_BITS_F32 = np.float32(127 * 2.0**23)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the bits of an int32 as a float32 (free: a register bitcast, vectorisable)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _fmax(typingctx, left, right):
    """``llvm.maxnum`` with fast-math flags: unlike numba's ``max`` it vectorises as a row reduction."""
    if left != right or not isinstance(left, types.Float):
        return None

    def codegen(context, builder, signature, args):
        value_type = args[0].type
        function_type = ir.FunctionType(value_type, [value_type, value_type])
        function = builder.module.declare_intrinsic("llvm.maxnum", [value_type], function_type)
        return builder.call(function, args, fastmath=("fast",))

    return left(left, right), codegen


def clamped_exp(value):  # pragma: no cover - replaced by the numba overload below
    """``exp(value)``; in float32 a vectorisable polynomial (relative error < 3e-7) for value in [-87, 88].

    Callers clamp the argument (at -80 in the E-step) so the result is never subnormal.
    """
    return math.exp(value)


@overload(clamped_exp, jit_options={"fastmath": True})
def _clamped_exp_overload(value):
    if value == types.float32:
        # Without SVML, LLVM calls scalar expf per element; this polynomial vectorises (AVX2/AVX-512).
        def exp_float32(value):
            scaled = value * _LOG2E_F32 + _HALF_F32
            exponent = np.floor(scaled)
            reduced = value - exponent * _LN2_HI_F32 - exponent * _LN2_LO_F32
            poly = _C7
            poly = poly * reduced + _C6
            poly = poly * reduced + _C5
            poly = poly * reduced + _C4
            poly = poly * reduced + _C3
            poly = poly * reduced + _C2
            poly = poly * reduced + _ONE_F32
            poly = poly * reduced + _ONE_F32
            # 2**exponent built from its bits, (exponent + 127) << 23, computed exactly in float32 to stay
            # in 32-bit lanes; value >= -80 keeps exponent + 127 >= 12, a normal number.
            bits = np.int32(exponent * _MANTISSA_SCALE_F32 + _EXPONENT_BIAS_BITS_F32)
            return poly * _float32_from_bits(bits)

        return exp_float32
    if isinstance(value, types.Float):
        return lambda value: math.exp(value)
    return None


# ----------------------------------------------------------------------------------------------- rows


@njit(inline="always", fastmath=True)
def _row_max(row):
    best = row[0]
    for k in range(1, row.shape[0]):
        best = _fmax(best, row[k])
    return best


@njit(inline="always", fastmath=True)
def _row_estep(log_prob, design, clamp):
    """One row: log-probabilities -> exp(l - max), design row scaled by 1 / sum; return logsumexp."""
    top = _row_max(log_prob)
    total = _ZERO_F32  # unifies to the row dtype; an int literal would promote float32 to float64
    for k in range(log_prob.shape[0]):
        shifted = _fmax(log_prob[k] - top, clamp)
        value = clamped_exp(shifted)
        log_prob[k] = value
        total += value
    inverse = _ONE_F32 / total
    for j in range(design.shape[0]):
        design[j] *= inverse
    return top + np.log(total)


@njit(inline="always", fastmath=True)
def _row_posterior(log_prob, clamp):
    """Replace one row of log-probabilities by the normalised posteriors; return logsumexp."""
    top = _row_max(log_prob)
    total = _ZERO_F32  # unifies to the row dtype; an int literal would promote float32 to float64
    for k in range(log_prob.shape[0]):
        value = clamped_exp(_fmax(log_prob[k] - top, clamp))
        log_prob[k] = value
        total += value
    inverse = _ONE_F32 / total
    for k in range(log_prob.shape[0]):
        log_prob[k] *= inverse
    return top + np.log(total)


@njit(inline="always", fastmath=True)
def _row_logsumexp(log_prob, clamp):
    top = _row_max(log_prob)
    total = _ZERO_F32  # unifies to the row dtype; an int literal would promote float32 to float64
    for k in range(log_prob.shape[0]):
        total += clamped_exp(_fmax(log_prob[k] - top, clamp))
    return top + np.log(total)


@njit(inline="always")
def _row_design(frame, centre, design):
    """Write ``[(x - c)^2, x - c, 1]`` into one design row (same dtype as ``frame``); False if not finite."""
    n_features = frame.shape[0]
    total = frame[0] - frame[0]
    for d in range(n_features):
        centred = frame[d] - centre[d]
        square = centred * centred
        design[n_features + d] = centred
        design[d] = square
        total += square
    design[2 * n_features] = 1
    # NaN or inf in the frame, or a square overflowing (|x| > ~1e19 in float32), make the sum non-finite.
    return np.isfinite(total)


# -------------------------------------------------------------------------------------- whole chunks


# No fast-math here: it would let LLVM assume away the NaN and inf this pass exists to catch.
@cached_njit(nogil=True)
def fill_design(frames, centre, design):
    """Design rows for ``frames (n, D)`` into ``design (n, 2D+1)``, all one dtype; return the number of
    non-finite rows."""
    n_bad = 0
    for i in range(frames.shape[0]):
        if not _row_design(frames[i], centre, design[i]):
            n_bad += 1
    return n_bad


@cached_njit(fastmath=True, nogil=True)
def estep(log_prob, design, log_likelihood, clamp):
    """E-step of one chunk in place.

    ``log_prob (n, K)`` becomes ``exp(l - max_k l)``, each ``design (n, 2D+1)`` row is divided by its row
    sum so that ``log_prob.T @ design`` gives the responsibility-weighted statistics, and
    ``log_likelihood (n,)`` receives ``log sum_k exp(l)`` per frame.
    """
    for i in range(log_prob.shape[0]):
        log_likelihood[i] = _row_estep(log_prob[i], design[i], clamp)


@cached_njit(fastmath=True, nogil=True)
def posterior(log_prob, log_likelihood, clamp):
    """Normalised responsibilities in place of ``log_prob (n, K)``; per-frame log-likelihood out."""
    for i in range(log_prob.shape[0]):
        log_likelihood[i] = _row_posterior(log_prob[i], clamp)


@cached_njit(fastmath=True, nogil=True)
def logsumexp(log_prob, log_likelihood, clamp):
    """Per-row ``log sum_k exp(log_prob)`` of ``log_prob (n, K)`` into ``log_likelihood (n,)``."""
    for i in range(log_prob.shape[0]):
        log_likelihood[i] = _row_logsumexp(log_prob[i], clamp)
