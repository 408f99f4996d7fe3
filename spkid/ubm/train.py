"""Universal background model training: one diagonal GMM fitted to frames pooled from many speakers.

:func:`train_ubm` hands the frames to :func:`spkid.ubm.backends.train_sharded`: the one EM loop of
:func:`spkid.gmm.run_em` (the loop of ``DiagonalGMM.fit`` too), with E-steps in this process, in joblib worker
processes or on a Dask cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from spkid.ubm.backends import train_sharded
from spkid.ubm.config import UBMConfig

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = ["train_ubm"]


def train_ubm(features: Iterable[np.ndarray], config: UBMConfig = UBMConfig()) -> DiagonalGMM:
    """Train the universal background model on frames pooled from many speakers.

    Parameters
    ----------
    features : iterable of ndarray of shape (n_frames_i, n_features), or StoredFeatures
        One array per utterance, never concatenated. Memory-mapped arrays (``np.load(..., mmap_mode="r")``)
        and :class:`spkid.features.StoredFeatures` are read from disk a bounded batch at a time.
    config : UBMConfig
        ``backend`` ("local", "joblib", "dask"), ``scheduler`` and ``n_jobs`` say where E-steps run
        (:mod:`spkid.ubm.backends`); every backend gives the same model to float rounding.

    Returns
    -------
    DiagonalGMM
        Fitted with ``config.n_components`` components, or fewer (a warning is logged) on a small pool.
    """
    return train_sharded(features, config)
