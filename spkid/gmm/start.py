"""Where EM starts: user-given initial parameters, or an initialisation strategy on a frame subsample.

:func:`initial_parameters` is the start of both :meth:`spkid.gmm.DiagonalGMM.fit` and UBM training; it
checks there are enough frames, draws the subsample and runs k-means++ or binary splitting
(:mod:`spkid.gmm.init`), whose per-level EM steps use the same M-step as the EM loop (:mod:`spkid.gmm.em`).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from spkid.errors import ModelError
from spkid.gmm import init as gmm_init
from spkid.gmm._estep import Frames
from spkid.gmm.em import DEFAULT_MIN_WEIGHT, m_step
from spkid.gmm.parameters import MixtureParameters
from spkid.gmm.stats import floor_variances

__all__ = ["MIN_FRAMES_PER_COMPONENT", "check_enough_frames", "initial_parameters", "random_state_of"]

logger = logging.getLogger(__name__)

#: Fewer frames than this per component is refused: a Gaussian would fit noise.
MIN_FRAMES_PER_COMPONENT = 10


def random_state_of(seed: int | np.random.RandomState | None) -> np.random.RandomState:
    """A RandomState from None (numpy's global one), an int seed or a RandomState (scikit-learn's rule)."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    raise ModelError(f"random_state: expected None, an int or a numpy RandomState, got {seed!r}")


def check_enough_frames(n_frames: int, n_components: int) -> None:
    """ModelError unless there are :data:`MIN_FRAMES_PER_COMPONENT` frames per component."""
    needed = MIN_FRAMES_PER_COMPONENT * n_components
    if n_frames < needed:
        # "n_samples=" is the phrase scikit-learn's estimator checks look for in this error.
        raise ModelError(
            f"{n_frames} frames is too few for {n_components} components "
            f"(n_samples={n_frames}): need at least {needed} "
            f"({MIN_FRAMES_PER_COMPONENT} per component)"
        )


def initial_parameters(
    frames: Frames,
    n_components: int,
    *,
    init: str = "kmeans++",
    variance_floor: float = 1e-3,
    min_weight: float = DEFAULT_MIN_WEIGHT,
    random_state: int | np.random.RandomState | None = None,
    dtype: type = np.float32,
    chunk_size: int | None = None,
    n_jobs: int = 1,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    variances_init: np.ndarray | None = None,
) -> MixtureParameters:
    """The starting parameters of EM: from ``*_init`` where given, else from ``init`` on a frame subsample.

    Parameters
    ----------
    frames : Frames
        The training frames (:class:`spkid.gmm._estep.Frames`); at least
        :data:`MIN_FRAMES_PER_COMPONENT` per component.
    n_components : int
    init : {"kmeans++", "split"}
        Strategy when ``means_init`` is not given, on :func:`spkid.gmm.init.n_init_frames` frames drawn
        with ``random_state``.
    variance_floor, min_weight : float
        As for EM; binary splitting's EM steps use them.
    random_state : int, numpy.random.RandomState or None
    dtype, chunk_size, n_jobs
        E-step settings (binary splitting runs E-steps).
    weights_init, means_init, variances_init : ndarray or None
        Shapes (K,), (K, D), (K, D). With ``means_init`` alone, weights are uniform and variances those of
        the subsample (floored).

    Returns
    -------
    MixtureParameters

    Examples
    --------
    >>> import numpy as np
    >>> from spkid.gmm._estep import Frames
    >>> X = np.random.default_rng(0).normal(size=(400, 2))
    >>> initial_parameters(Frames(X, n_features=2), 4, init="split", random_state=0)
    MixtureParameters(n_components=4, n_features=2, dtype=float32, n_iter=0)
    >>> initial_parameters(Frames(X, n_features=2), 2, means_init=[[-1.0, 0.0], [1.0, 0.0]]).means.tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    check_enough_frames(frames.n_frames, n_components)
    started = time.perf_counter()
    random_state = random_state_of(random_state)
    n_features = frames.n_features
    shapes = {
        "weights_init": (n_components,),
        "means_init": (n_components, n_features),
        "variances_init": (n_components, n_features),
    }
    given = {}
    for name, value in (
        ("weights_init", weights_init),
        ("means_init", means_init),
        ("variances_init", variances_init),
    ):
        if value is not None:
            given[name] = np.asarray(value, dtype=np.float64)
            if given[name].shape != shapes[name]:
                raise ModelError(f"{name}: expected shape {shapes[name]}, got {given[name].shape}")
    weights = np.full(n_components, 1.0 / n_components)
    means, variances = given.get("means_init"), given.get("variances_init")
    if means is None or variances is None:
        sample = frames.sample(
            gmm_init.n_init_frames(frames.n_frames, n_components), random_state, np.dtype(dtype)
        )
        if not np.all(np.isfinite(sample)):
            raise ModelError("frames: contain NaN or infinite values")
        if means is not None:
            global_variance = np.var(sample, axis=0, dtype=np.float64)
            floor = floor_variances(global_variance, variance_floor)
            variances = np.tile(np.maximum(global_variance, floor), (n_components, 1))
        elif init == "kmeans++":
            weights, means, variances = gmm_init.kmeans_init(
                sample, n_components, random_state=random_state, variance_floor=variance_floor
            )
        else:

            def em_step(level_frames: np.ndarray, *level: np.ndarray) -> gmm_init.Params:
                """One EM iteration of a smaller mixture (binary splitting's levels)."""
                start = MixtureParameters(*level, dtype=dtype, variance_floor=variance_floor)
                stats = start.accumulate(level_frames, chunk_size=chunk_size, n_jobs=n_jobs)
                new = m_step(
                    stats,
                    dtype=dtype,
                    variance_floor=variance_floor,
                    min_weight=min(min_weight, 0.5 / level[0].shape[0]),
                )
                return new.weights.copy(), new.means.copy(), new.variances.copy()

            weights, means, variances = gmm_init.binary_split_init(
                sample, n_components, em_step, variance_floor=variance_floor
            )
        variances = given.get("variances_init", variances)
        logger.info(
            "initialised %d components (%s) on %d frames in %.2f s",
            n_components,
            "means_init" if "means_init" in given else init,
            sample.shape[0],
            time.perf_counter() - started,
        )
    return MixtureParameters(
        given.get("weights_init", weights), means, variances, dtype=dtype, variance_floor=variance_floor
    )
