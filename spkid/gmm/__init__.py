"""Diagonal-covariance Gaussian mixtures trained by EM through mergeable sufficient statistics.

The public face of the GMM stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.gmm.stats` :class:`SufficientStats`, the M-step (:func:`maximise`), the variance floor and
  the component split shared with initialisation;
- :mod:`~spkid.gmm._kernels` (private) the compiled per-element E-step passes;
  :mod:`~spkid.gmm._estep` (private) the chunked float32 E-step engine;
- :mod:`~spkid.gmm.init` k-means++ / binary-split initialisation;
- :mod:`~spkid.gmm.parameters` the validated, read-only fitted parameters and their dict form;
- :mod:`~spkid.gmm.model` the :class:`DiagonalGMM` estimator (scikit-learn conventions).
"""

from spkid.gmm.model import MIN_FRAMES_PER_COMPONENT, DiagonalGMM
from spkid.gmm.stats import SufficientStats, floor_variances, maximise

__all__ = ["MIN_FRAMES_PER_COMPONENT", "DiagonalGMM", "SufficientStats", "floor_variances", "maximise"]
