"""Initial parameters of a diagonal-covariance GMM, computed on a random subsample of the frames.

Two strategies: k-means++ seeding (scikit-learn's ``kmeans_plusplus``) followed by a few cheap Lloyd steps,
and binary splitting (1 -> 2 -> 4 ... components, each split perturbing a mean along its largest-variance
axis, a few EM iterations per level) as in UBM toolkits. Both return ``(weights, means, variances)`` float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spkid.blas import blas_threads
from spkid.errors import ModelError
from spkid.gmm.stats import floor_variances, split_component

# Frames drawn for initialisation: enough for every component to see ~200 frames, never fewer than 50k.
INIT_FRAMES_PER_COMPONENT = 200
MIN_INIT_FRAMES = 50_000
# k-means++ seeding costs O(frames * components * log components) in K sequential steps: 8 frames per
# component spread the seeds well enough; the Lloyd steps then use 64 frames per component.
SEED_FRAMES_PER_COMPONENT, MIN_SEED_FRAMES = 8, 2_000
LLOYD_FRAMES_PER_COMPONENT, MIN_LLOYD_FRAMES = 64, 10_000
# Binary splitting trains the small mixtures of its first levels on fewer frames.
MIN_LEVEL_FRAMES = 20_000
_LLOYD_CHUNK_ROWS = 8192

Params = tuple[np.ndarray, np.ndarray, np.ndarray]
EMStep = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Params]


def n_init_frames(n_frames: int, n_components: int) -> int:
    """Number of frames to subsample for initialising ``n_components`` components from ``n_frames`` frames."""
    return int(min(n_frames, max(MIN_INIT_FRAMES, INIT_FRAMES_PER_COMPONENT * n_components)))


def kmeans_init(
    sample: np.ndarray,
    n_components: int,
    *,
    random_state: np.random.RandomState,
    variance_floor: float,
    n_lloyd_iter: int = 2,
) -> Params:
    """k-means++ seeds, ``n_lloyd_iter`` Lloyd steps, then the clusters' weights, means and variances.

    Seeding uses ``SEED_FRAMES_PER_COMPONENT`` frames per component and the Lloyd steps
    ``LLOYD_FRAMES_PER_COMPONENT`` (at least ``MIN_SEED_FRAMES`` / ``MIN_LLOYD_FRAMES``), drawn from
    ``sample``: EM refines the result, so the initialisation only needs to spread the components over
    the data, cheaply.

    Parameters
    ----------
    sample : ndarray of shape (n_frames, n_features)
        Finite frames (a random subsample of the training data).
    n_components : int
        Number of clusters; ``n_frames >= n_components``.
    random_state : numpy.random.RandomState
        Source of randomness (subsets and k-means++ draws).
    variance_floor : float
        Floor on the cluster variances, relative to the variance of each dimension in ``sample``.
    n_lloyd_iter : int
        Lloyd iterations after seeding.

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    variances : ndarray of shape (n_components, n_features)
    """
    n_frames = sample.shape[0]
    if n_frames < n_components:
        raise ModelError(f"k-means++ init: {n_frames} frames cannot seed {n_components} components")
    n_lloyd = max(LLOYD_FRAMES_PER_COMPONENT * n_components, MIN_LLOYD_FRAMES)
    n_seed = max(SEED_FRAMES_PER_COMPONENT * n_components, MIN_SEED_FRAMES)
    frames = np.asarray(sample[np.sort(random_state.permutation(n_frames)[:n_lloyd])], dtype=np.float32)
    seeds = frames[np.sort(random_state.permutation(frames.shape[0])[:n_seed])]
    # float64: sklearn's float32 path upcasts chunk by chunk and is slower. Greedy local trials (its default)
    # avoid two seeds in one cluster far more often than plain k-means++.
    from sklearn.cluster import kmeans_plusplus  # here: importing scikit-learn takes about a second

    # Its K sequential steps are small matrix-vector products: extra BLAS threads only add hand-offs.
    with blas_threads(1):
        centres, _ = kmeans_plusplus(seeds.astype(np.float64), n_components, random_state=random_state)
    # Nearest centre = argmax x.c - |c|^2/2: one product of [x, -1] with [c; |c|^2/2] per assignment.
    augmented = np.hstack([frames, -np.ones((frames.shape[0], 1), dtype=np.float32)])
    labels = _nearest_centre(augmented, centres)
    for _ in range(n_lloyd_iter):
        counts, sums, _ = _cluster_moments(frames, labels, n_components, second=False)
        occupied = counts > 0
        centres[occupied] = sums[occupied] / counts[occupied, None]  # empty clusters keep their seed
        labels = _nearest_centre(augmented, centres)
    counts, sums, squares = _cluster_moments(frames, labels, n_components, second=True)
    global_variance = np.var(sample, axis=0, dtype=np.float64)
    means = centres.copy()
    occupied = counts > 0
    means[occupied] = sums[occupied] / counts[occupied, None]
    variances = np.tile(global_variance, (n_components, 1))
    populated = counts > 1
    variances[populated] = squares[populated] / counts[populated, None] - means[populated] ** 2
    variances = np.maximum(variances, floor_variances(global_variance, variance_floor))
    # An empty cluster still gets one frame's worth of weight so it can attract frames in EM.
    weights = np.maximum(counts, 1.0)
    return weights / weights.sum(), means, variances


def binary_split_init(
    sample: np.ndarray,
    n_components: int,
    em_step: EMStep,
    *,
    variance_floor: float,
    n_iter_per_level: int = 2,
) -> Params:
    """Grow a mixture from one Gaussian by repeated splitting, ``n_iter_per_level`` EM steps per level.

    Every level splits all components (the heaviest ones at the last level when ``n_components`` is not a
    power of two). No EM is run after the final split: the caller's EM continues from there.

    Parameters
    ----------
    sample : ndarray of shape (n_frames, n_features)
        Frames whose mean and variance start the single Gaussian.
    n_components : int
        Number of components wanted.
    em_step : callable
        ``em_step(frames, weights, means, variances) -> (weights, means, variances)``, one EM iteration.
        Level ``k`` trains on an evenly strided part of ``sample`` of about ``INIT_FRAMES_PER_COMPONENT * k``
        frames (at least ``MIN_LEVEL_FRAMES``): small mixtures need few frames.
    variance_floor : float
        Floor on the variances, relative to the sample variance of each dimension.
    n_iter_per_level : int
        EM iterations run at each intermediate size.

    Returns
    -------
    weights, means, variances : ndarray of shapes (n_components,), (n_components, n_features) twice
    """
    global_variance = np.var(sample, axis=0, dtype=np.float64)
    floor = floor_variances(global_variance, variance_floor)
    weights = np.ones(1)
    means = np.mean(sample, axis=0, dtype=np.float64)[None, :]
    variances = np.maximum(global_variance, floor)[None, :]
    while weights.shape[0] < n_components:
        size = weights.shape[0]
        n_new = min(size, n_components - size)
        weights = np.concatenate([weights, np.zeros(n_new)])
        means = np.concatenate([means, np.zeros((n_new, means.shape[1]))])
        variances = np.concatenate([variances, np.ones((n_new, means.shape[1]))])
        heaviest_first = np.argsort(-weights[:size], kind="stable")[:n_new]
        for offset, source in enumerate(heaviest_first):
            split_component(weights, means, variances, int(source), size + offset)
        np.maximum(variances, floor, out=variances)
        if weights.shape[0] < n_components:
            wanted = max(MIN_LEVEL_FRAMES, INIT_FRAMES_PER_COMPONENT * weights.shape[0])
            frames = sample[:: max(1, sample.shape[0] // wanted)]
            for _ in range(n_iter_per_level):
                weights, means, variances = em_step(frames, weights, means, variances)
    return weights, means, variances


def _nearest_centre(augmented: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each row of ``augmented = [x, -1]`` (float32, chunked products)."""
    half_norms = 0.5 * np.einsum("kd,kd->k", centres, centres)
    targets = np.vstack([centres.T, half_norms[None, :]]).astype(np.float32)
    labels = np.empty(augmented.shape[0], dtype=np.intp)
    for start in range(0, augmented.shape[0], _LLOYD_CHUNK_ROWS):
        block = augmented[start : start + _LLOYD_CHUNK_ROWS]
        labels[start : start + block.shape[0]] = np.argmax(block @ targets, axis=1)
    return labels


def _cluster_moments(
    frames: np.ndarray, labels: np.ndarray, n_clusters: int, *, second: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-cluster frame counts, sums and (optionally) sums of squares, in float64."""
    counts = np.bincount(labels, minlength=n_clusters)
    order = np.argsort(labels, kind="stable")
    grouped = np.asarray(frames[order], dtype=np.float64)
    occupied = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[occupied]
    sums = np.zeros((n_clusters, frames.shape[1]))
    sums[occupied] = np.add.reduceat(grouped, starts, axis=0)
    squares = None
    if second:
        squares = np.zeros_like(sums)
        squares[occupied] = np.add.reduceat(grouped * grouped, starts, axis=0)
    return counts.astype(np.float64), sums, squares
