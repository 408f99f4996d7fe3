"""The speaker parameter bank of :class:`spkid.score.Scorer`: every speaker's LLR terms, stacked.

For each component k and speaker s, ``g_ks(x) = log w_sk N_sk(x) - log w_uk N_uk(x)`` is linear in the
design row ``[(x-c)^2, x-c, 1]`` (or ``[x-c, 1]`` when the speakers share the UBM's variances, as mean-only
MAP gives). The bank holds those coefficients, shape (K, R, S).

Top-C scoring reads the whole bank once per utterance, so at a thousand speakers its speed is bounded by
memory bandwidth. :class:`QuantizedBank` stores the bank in 16-bit fixed point with one float scale per
(speaker, component): each normalised term is off by at most 1/65534 of the largest of its component,
which moves an LLR by ~1e-5 to 1e-4 (top-C itself is within a few hundredths of exact), and the memory
read per utterance halves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from spkid.errors import ModelError

__all__ = ["QuantizedBank", "design_row_norms", "stack_parameters"]

_STACK_GROUP = 128  # speakers converted at a time when building the bank (bounds float64 temporaries)
_INT16_MAX = 32767.0


def stack_parameters(ubm: Any, speakers: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """UBM design weights and the speaker-minus-UBM bank for centred frames.

    Parameters
    ----------
    ubm : MixtureParameters or DiagonalGMM
        ``weights_`` (K,), ``means_`` and ``variances_`` (K, D).
    speakers : sequence of MixtureParameters or DiagonalGMM
        Models of the same shape.

    Returns
    -------
    ubm_form : ndarray (2D+1, K) float32
        ``[(x-c)^2, x-c, 1] @ ubm_form`` is ``log w_k N(x | k)`` under the UBM.
    bank : ndarray (K, R, S) float32
        ``R = D + 1`` (design ``[x-c, 1]``) when every speaker shares the UBM variances, else ``2D + 1``.
    centre : ndarray (D,) float32
        The UBM's mean ``c``; centring keeps the float32 products accurate.
    shared : bool
        Whether the speakers share the UBM's variances.
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
    for start in range(0, len(speakers), _STACK_GROUP):
        group = speakers[start : start + _STACK_GROUP]
        group_weights, group_means, group_variances = (
            np.array([np.asarray(getattr(s, name), np.float64) for s in group])
            for name in ("weights_", "means_", "variances_")
        )
        if shared:
            # Equal variances: the x^2 terms cancel, leaving [x-c, 1] (half the work of the general case).
            # ((m_s - c)^2 - (m_u - c)^2) / var factorised as (m_s - m_u) / var * (m_s + m_u - 2c): no
            # difference of two large squares, and fewer temporaries.
            log_ratio = np.log(np.maximum(group_weights, 1e-30)) - np.log(np.maximum(weights, 1e-30))
            difference = np.empty((len(group), *means.shape[:1], n_rows))
            linear = np.subtract(group_means, means, out=difference[..., :-1])
            linear /= variances
            group_means += means - 2 * centre
            square_change = np.einsum("gkd,gkd->gk", linear, group_means)
            difference[..., -1] = log_ratio - 0.5 * square_change
        else:
            difference = quadratic_form(group_weights, group_means, group_variances) - ubm_form
        bank[:, :, start : start + len(group)] = difference.transpose(1, 2, 0)
    return np.ascontiguousarray(ubm_form.T, dtype=np.float32), bank, centre.astype(np.float32), shared


def design_row_norms(variances: np.ndarray, shared: bool) -> np.ndarray:
    """Typical size of each non-constant design row per component, from the UBM alone: (K, R - 1) float64.

    ``x - c`` varies by about ``sigma`` and ``(x - c)^2`` by about ``sigma^2`` within a component, so the
    bank's rows times these norms are terms of comparable size, which share one fixed-point scale well.
    """
    deviation = np.sqrt(np.asarray(variances, np.float64))
    return deviation if shared else np.concatenate([deviation**2, deviation], axis=1)


@dataclasses.dataclass(frozen=True)
class QuantizedBank:
    """A (K, R, S) bank in 16-bit fixed point, one scale per (speaker, component), in blocks of speakers.

    Row ``R - 1`` (the constant term) stays float32. The others are normalised by the UBM's
    :func:`design_row_norms` and quantised with one scale per (speaker, component), so a speaker's stored
    values do not depend on which other speakers share the bank: scores are the same whatever the set.

    Attributes
    ----------
    blocks : ndarray (n_blocks, K, R - 1, B) int16
        ``bank[k, r, s] ~= blocks[j, k, r, i] * scale[j, k, i] / row_norm[k, r]`` with ``s = j * B + i``;
        the last block is zero-padded.
    scale : ndarray (n_blocks, K, B) float32
    constant : ndarray (n_blocks, K, B) float32
        ``bank[k, R - 1, s]``.
    row_norm : ndarray (K, R - 1) float32
    n_speakers : int
    inverse_norm : ndarray (K, R - 1) float32
        ``1 / row_norm``, what the design rows are multiplied by.
    """

    blocks: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    row_norm: np.ndarray
    n_speakers: int
    inverse_norm: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inverse_norm", (1.0 / self.row_norm).astype(np.float32))

    @classmethod
    def from_bank(cls, bank: np.ndarray, row_norm: np.ndarray, block_speakers: int) -> QuantizedBank:
        """Quantise ``bank`` (K, R, S) float32 into blocks of at most ``block_speakers`` speakers."""
        n_components, n_rows, n_speakers = bank.shape
        width = max(1, min(int(block_speakers), n_speakers))
        n_blocks = -(-n_speakers // width)
        padded = n_blocks * width
        blocks = np.zeros((n_blocks, n_components, n_rows - 1, width), np.int16)
        scale = np.ones((n_blocks, n_components, width), np.float32)
        constant = np.zeros((n_blocks, n_components, width), np.float32)
        for k in range(n_components):  # one component at a time bounds the temporaries
            terms = bank[k, :-1].astype(np.float64) * row_norm[k][:, None]  # (R - 1, S)
            largest = np.abs(terms).max(axis=0)
            step = np.where(largest > 0, largest / _INT16_MAX, 1.0)  # (S,)
            quantised = np.zeros((n_rows - 1, padded), np.int16)
            quantised[:, :n_speakers] = np.rint(terms / step)
            steps = np.ones(padded)
            steps[:n_speakers] = step
            constants = np.zeros(padded)
            constants[:n_speakers] = bank[k, -1]
            blocks[:, k] = quantised.reshape(n_rows - 1, n_blocks, width).transpose(1, 0, 2)
            scale[:, k] = steps.reshape(n_blocks, width)
            constant[:, k] = constants.reshape(n_blocks, width)
        return cls(blocks, scale, constant, np.asarray(row_norm, np.float32), n_speakers)

    @property
    def width(self) -> int:
        """Speakers per block, B."""
        return self.blocks.shape[3]

    def column(self, index: int) -> QuantizedBank:
        """A bank holding only speaker ``index`` (the same stored values, so the same scores)."""
        j, i = divmod(index, self.width)
        return QuantizedBank(
            np.ascontiguousarray(self.blocks[j : j + 1, :, :, i : i + 1]),
            np.ascontiguousarray(self.scale[j : j + 1, :, i : i + 1]),
            np.ascontiguousarray(self.constant[j : j + 1, :, i : i + 1]),
            self.row_norm,
            1,
        )
