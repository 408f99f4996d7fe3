"""Universal background model training: one diagonal GMM fitted to frames pooled from many speakers.

:func:`train_ubm` hands the frames to :func:`train_sharded`: the one EM loop of
:func:`spkid.gmm.run_em` (the loop of ``DiagonalGMM.fit`` too), with E-steps in this process, in joblib worker
processes or on a Dask cluster.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from spkid.features.files import FeatureFile
from spkid.gmm import DEFAULT_MIN_WEIGHT, MixtureParameters, run_em
from spkid.gmm.em import asked_for_convergence
from spkid.ubm.backends import Backend, ShardStatistics, initial_model, open_backend
from spkid.ubm.config import UBMConfig, checked_components
from spkid.ubm.shards import FRAMES_PER_SHARD, Shard, Source, frame_sources, make_shards

if TYPE_CHECKING:
    from spkid.gmm import DiagonalGMM

__all__ = ["sharded_em", "train_sharded", "train_ubm"]

logger = logging.getLogger(__name__)


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

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> utterances = [rng.normal(size=(200, 3)) for _ in range(4)]  # one array per utterance
    >>> ubm = train_ubm(utterances, UBMConfig(n_components=4, max_iter=3))
    >>> type(ubm).__name__, ubm.means_.shape, round(float(ubm.weights_.sum()), 6)
    ('DiagonalGMM', (4, 3), 1.0)
    """
    return train_sharded(features, config)


def sharded_em(
    start: MixtureParameters, shards: Sequence[Shard], backend: Backend, config: UBMConfig
) -> MixtureParameters:
    """EM of a UBM from ``start``: :func:`spkid.gmm.run_em` over :class:`ShardStatistics` on ``backend``.

    ``config``: ``max_iter``, ``tol``, ``variance_floor``, ``max_frames`` and ``random_state`` are used. A
    ``tol`` other than the default (and than 0) asks for convergence: a
    :class:`~spkid.errors.ConvergenceWarning` then says when ``max_iter`` came first. (The YAML defaults
    spell the default out, so a ``tol`` equal to it cannot be told from no ``tol`` at all.)
    """
    source = ShardStatistics(shards, backend, max_frames=config.max_frames, random_state=config.random_state)
    return run_em(
        start,
        source,
        max_iter=config.max_iter,
        tol=config.tol,
        variance_floor=config.variance_floor,
        min_weight=DEFAULT_MIN_WEIGHT,
        warn=asked_for_convergence(config.tol, default=UBMConfig.tol),
        name="UBM",
    )


def train_sharded(
    features: object, config: UBMConfig, *, frames_per_shard: int = FRAMES_PER_SHARD
) -> DiagonalGMM:
    """Train a UBM with ``config.backend``: what :func:`spkid.ubm.train_ubm` does.

    Parameters
    ----------
    features : StoredFeatures, or iterable of ndarray of shape (n_frames_i, n_features) / FeatureFile
        Memory-mapped arrays and store entries are read from their files, a batch at a time. In-memory
        arrays given to a process backend are first written to a temporary store.
    config : UBMConfig
    frames_per_shard : int
        Frames per task (subsampled runs are reproducible for a given value).
    """
    from spkid.gmm import DiagonalGMM  # here: the estimator imports scikit-learn

    sources, _ = frame_sources(features)
    n_frames = sum(source.n_frames if isinstance(source, FeatureFile) else len(source) for source in sources)
    n_components = checked_components(config, n_frames)
    with open_backend(config.backend, scheduler=config.scheduler, n_jobs=config.n_jobs) as backend:
        with _on_disk(sources, backend.needs_files) as sources:
            start = initial_model(sources, n_components, config)
            fitted = sharded_em(start, make_shards(sources, frames_per_shard), backend, config)
    return DiagonalGMM.from_params(
        fitted,
        max_iter=config.max_iter,
        tol=config.tol,
        init=config.init,
        random_state=config.random_state,
        n_jobs=config.n_jobs,
    )


@contextlib.contextmanager
def _on_disk(sources: list[Source], needed: bool) -> Iterator[list[Source]]:
    """``sources`` with in-memory arrays written to a temporary store (removed afterwards) when ``needed``."""
    if not needed or all(isinstance(source, FeatureFile) for source in sources):
        yield sources
        return
    from spkid.features.store import FeatureStore

    folder = tempfile.mkdtemp(prefix="spkid-frames-")
    logger.info("writing in-memory features to %s for the worker processes", folder)
    try:
        stored = FeatureStore(folder).write(
            "frames",
            (
                (str(index), source)
                for index, source in enumerate(sources)
                if not isinstance(source, FeatureFile)
            ),
        )
        written = iter(stored.files)
        yield [source if isinstance(source, FeatureFile) else next(written) for source in sources]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
