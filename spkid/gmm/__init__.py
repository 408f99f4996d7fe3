"""Diagonal-covariance Gaussian mixtures trained by EM through mergeable sufficient statistics.

The public face of the GMM stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.gmm.stats` :class:`SufficientStats`, the M-step (:func:`maximise`), the variance floor and
  the component split shared with initialisation;
- :mod:`~spkid.gmm._kernels` (private) the compiled per-element E-step passes;
  :mod:`~spkid.gmm._estep` (private) the chunked float32 E-step engine;
- :mod:`~spkid.gmm.init` k-means++ / binary-split initialisation strategies;
- :mod:`~spkid.gmm.parameters` :class:`MixtureParameters`, the frozen fitted parameters (what scoring and
  the model store use) with their E-step and dict form;
- :mod:`~spkid.gmm.em` the one EM loop (:func:`run_em`) over a :class:`StatisticsSource`, and the in-process
  source :class:`FrameStatistics`;
- :mod:`~spkid.gmm.start` where EM starts (:func:`initial_parameters`);
- :mod:`~spkid.gmm.model` the :class:`DiagonalGMM` scikit-learn estimator.

``DiagonalGMM`` is imported from its module on first use: :mod:`~spkid.gmm.model` is the one module here that
imports scikit-learn (~1 s), and loading models for scoring (``spkid identify`` / ``verify``) never needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spkid.gmm.em import DEFAULT_MIN_WEIGHT, DEFAULT_TOL, FrameStatistics, StatisticsSource, run_em
from spkid.gmm.parameters import MixtureParameters
from spkid.gmm.start import MIN_FRAMES_PER_COMPONENT, initial_parameters
from spkid.gmm.stats import SufficientStats, floor_variances, maximise

if TYPE_CHECKING:
    from spkid.gmm.model import DiagonalGMM

__all__ = [
    "DEFAULT_MIN_WEIGHT",
    "DEFAULT_TOL",
    "MIN_FRAMES_PER_COMPONENT",
    "DiagonalGMM",
    "FrameStatistics",
    "MixtureParameters",
    "StatisticsSource",
    "SufficientStats",
    "floor_variances",
    "initial_parameters",
    "maximise",
    "run_em",
]


def __getattr__(name: str) -> Any:
    if name != "DiagonalGMM":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module("spkid.gmm.model").DiagonalGMM
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
