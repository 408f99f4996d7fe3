"""Where UBM E-steps run: in this process, in joblib worker processes, or on a Dask cluster.

UBM training (:mod:`spkid.ubm.train`) is the one EM loop of :func:`spkid.gmm.run_em` over a
:class:`ShardStatistics` source: each
iteration sends the (small) model parameters and shard descriptors to the backend, which returns one
:class:`~spkid.gmm.SufficientStats` per shard; the source sums them in shard order for the loop's M-step.
The start is :func:`spkid.gmm.initial_parameters` on a bounded random subsample of the frames. Frames never
travel: workers memory-map the feature files themselves. dask is optional (``pip install spkid[dask]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from spkid.blas import resolve_n_jobs, worker_threads
from spkid.errors import ConfigError
from spkid.features.files import FeatureFile
from spkid.gmm import (
    MixtureParameters,
    SufficientStats,
    initial_parameters,
)
from spkid.gmm._estep import Frames
from spkid.gmm.init import n_init_frames
from spkid.ubm.config import UBMConfig
from spkid.ubm.shards import (
    ModelParams,
    Shard,
    ShardTask,
    Source,
    gather_rows,
    shard_statistics,
    shards_statistics,
    task_statistics,
)

__all__ = [
    "Backend",
    "DaskBackend",
    "JoblibBackend",
    "LocalBackend",
    "ShardStatistics",
    "initial_model",
    "open_backend",
]

logger = logging.getLogger(__name__)
DASK_INSTALL_HINT = "install it with: pip install 'spkid[dask]'"
_UBM_OPTIONS = ("ubm.backend", "ubm.scheduler")
_TASKS_PER_WORKER = 4  # Dask tasks per worker and iteration (each holds several shards)
# The local cluster spkid starts runs a handful of long tasks per iteration: dask's per-worker sampling
# profiler (every 10 ms), event-loop tick checks (every 20 ms) and memory polling (every 100 ms) took ~15% of
# the workers' CPU here (measured: 2 workers' EM pass 0.59-0.69 s with them, 0.52 s without).
_LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


class Backend:
    """Runs :func:`~spkid.ubm.shards.shard_statistics` over tasks; results come back in task order."""

    #: Whether workers are other processes (they then need file-backed shards, not in-memory arrays).
    needs_files = True
    #: Thread cap given to each task (None: the task may use every core).
    task_threads: int | None = 1

    def map(self, tasks: Sequence[ShardTask], params: ModelParams) -> list[SufficientStats]:
        raise NotImplementedError

    def map_calls(
        self, function: Callable[..., Any], items: Sequence[Any], **shared: Any
    ) -> Iterator[tuple[int, Any]]:
        """``(i, function(items[i], **shared))`` for every item, as each finishes (not in item order).

        ``function`` must be importable by its module path (workers unpickle it so); ``shared`` holds small
        arguments (paths, settings) every call gets.
        """
        for index, item in enumerate(items):
            yield index, function(item, **shared)

    def close(self) -> None:
        """Release workers (nothing to do by default)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalBackend(Backend):
    """Every shard in this process, one after the other, each E-step using ``n_jobs`` threads."""

    needs_files = False
    task_threads = None

    def __init__(self, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def map(self, tasks: Sequence[ShardTask], params: ModelParams) -> list[SufficientStats]:
        return [task_statistics(params, task, self.n_jobs) for task in tasks]


class JoblibBackend(Backend):
    """Shards spread over ``n_jobs`` joblib ``loky`` worker processes on this machine, one thread each."""

    def __init__(self, n_jobs: int = 2) -> None:
        from joblib import Parallel

        # One shard per dispatch: shards are coarse (~0.1 s and up), and joblib's automatic batching would
        # otherwise grow batches across iterations until one worker holds most of the shards.
        self._parallel = Parallel(n_jobs=n_jobs, backend="loky", batch_size=1)
        self.task_threads = worker_threads(n_jobs)  # workers x threads stay within the CPU budget
        self._parallel.__enter__()  # keeps the same worker processes for every iteration

    def map(self, tasks: Sequence[ShardTask], params: ModelParams) -> list[SufficientStats]:
        from joblib import delayed

        return list(self._parallel(delayed(shard_statistics)(task, params) for task in tasks))

    def map_calls(
        self, function: Callable[..., Any], items: Sequence[Any], **shared: Any
    ) -> Iterator[tuple[int, Any]]:
        from joblib import Parallel, delayed

        calls = Parallel(n_jobs=self._parallel.n_jobs, backend="loky", return_as="generator_unordered")
        yield from calls(delayed(_indexed)(function, index, item, shared) for index, item in enumerate(items))

    def close(self) -> None:
        self._parallel.__exit__(None, None, None)


def _indexed(function: Callable[..., Any], index: int, item: Any, shared: dict[str, Any]) -> tuple[int, Any]:
    return index, function(item, **shared)


class DaskBackend(Backend):
    """Shards spread over the Dask cluster at ``scheduler``, or a local one with ``n_workers`` processes.

    Raises
    ------
    ConfigError
        dask.distributed is not installed, or the scheduler cannot be reached.
    """

    def __init__(
        self, scheduler: str | None = None, n_workers: int = 2, *, options: tuple[str, str] = _UBM_OPTIONS
    ) -> None:
        try:
            import dask
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                f"{options[0]}='dask': dask.distributed is not installed; {DASK_INSTALL_HINT}"
            ) from None
        self._cluster = None
        self._n_workers = 0  # learnt from the scheduler at the first map
        try:
            if scheduler is None:
                with dask.config.set(_LOCAL_CLUSTER_CONFIG):  # read by the processes as they start
                    self._cluster = LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                    )
                self._client = Client(self._cluster)
            else:
                self._client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as error:  # ValueError: a malformed address
            self.close()
            where = f"{options[1]}={scheduler!r}" if scheduler else "local Dask cluster"
            raise ConfigError(f"{where}: cannot connect ({error})") from None

    def map(self, tasks: Sequence[ShardTask], params: ModelParams) -> list[SufficientStats]:
        # A few shards per Dask task: each task costs a scheduler round trip and worker bookkeeping, so
        # about _TASKS_PER_WORKER tasks per worker keep that small while still balancing the load.
        if not self._n_workers:
            self._n_workers = len(self._client.scheduler_info(n_workers=-1).get("workers", {}))
        group = max(1, len(tasks) // (_TASKS_PER_WORKER * max(1, self._n_workers)))
        groups = [list(tasks[start : start + group]) for start in range(0, len(tasks), group)]
        # The model goes to the workers once per iteration (not once per task); the futures are released
        # when they go out of scope, without a round trip to cancel them.
        shared = self._client.scatter(params, broadcast=True, hash=False)
        futures = self._client.map(shards_statistics, groups, params=shared, pure=False)
        return [stats for results in self._client.gather(futures) for stats in results]

    def map_calls(
        self, function: Callable[..., Any], items: Sequence[Any], **shared: Any
    ) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        if not items:
            return
        futures = self._client.map(function, list(items), pure=False, **shared)
        position = {future.key: index for index, future in enumerate(futures)}
        for future, result in as_completed(futures, with_results=True):
            yield position[future.key], result

    def close(self) -> None:
        for resource in (getattr(self, "_client", None), self._cluster):
            if resource is not None:
                resource.close()


def open_backend(
    backend: str = "local",
    *,
    scheduler: str | None = None,
    n_jobs: int = 1,
    options: tuple[str, str] = _UBM_OPTIONS,
) -> Backend:
    """The backend named by ``ubm.backend`` (``"local"``, ``"joblib"`` or ``"dask"``), ready to use.

    ``n_jobs`` (-1: all cores) is the thread count of "local", the worker processes of "joblib" and of the
    local cluster "dask" starts when no ``scheduler`` address is given. ``options`` names the two settings
    in error messages (``ubm.backend``, ``ubm.scheduler``; ``--backend``, ``--scheduler`` for the CLI).
    """
    backend_option, scheduler_option = options
    if scheduler is not None and backend != "dask":
        raise ConfigError(
            f"{scheduler_option}={scheduler!r}: only used with {backend_option}=dask, not {backend!r}"
        )
    if backend == "local":
        return LocalBackend(n_jobs)
    if backend == "joblib":
        return JoblibBackend(resolve_n_jobs(n_jobs))
    if backend == "dask":
        return DaskBackend(scheduler, resolve_n_jobs(n_jobs), options=options)
    raise ConfigError(f"{backend_option}={backend!r}: must be one of local, joblib, dask")


def initial_model(sources: Sequence[Source], n_components: int, config: UBMConfig) -> MixtureParameters:
    """Initialise a model from a random subsample of at most :func:`spkid.gmm.init.n_init_frames` frames.

    Parameters
    ----------
    sources : sequence of FeatureFile or ndarray of shape (n_frames_i, n_features)
    n_components : int
    config : UBMConfig
        ``init``, ``variance_floor``, ``random_state`` and ``n_jobs`` are used.
    """
    n_frames = sum(source.n_frames if isinstance(source, FeatureFile) else len(source) for source in sources)
    n_rows = n_init_frames(n_frames, n_components)
    rows = np.sort(np.random.default_rng(config.random_state).choice(n_frames, size=n_rows, replace=False))
    sample = Frames(gather_rows(sources, rows), n_features=None)
    return initial_parameters(
        sample,
        n_components,
        init=config.init,
        variance_floor=config.variance_floor,
        random_state=config.random_state,
        n_jobs=config.n_jobs,
    )


class ShardStatistics:
    """The statistics source of UBM training: E-steps of the shards on ``backend``, summed in shard order.

    With ``max_frames`` below the pool size, each iteration uses a fresh subsample of exactly that many
    frames: a seeded multivariate hypergeometric draw says how many come from each shard and a per-shard
    seed which ones, so the result does not depend on the backend or the number of workers.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        backend: Backend,
        *,
        max_frames: int | None = None,
        random_state: int = 0,
        chunk_size: int | None = None,
    ) -> None:
        self.shards, self.backend = list(shards), backend
        self.random_state, self.chunk_size = random_state, chunk_size
        self._sizes = np.array([shard.n_frames for shard in self.shards])
        self._subsample = max_frames is not None and max_frames < self._sizes.sum()
        self.max_frames = max_frames

    def statistics(self, parameters: MixtureParameters, iteration: int) -> SufficientStats:
        if self._subsample:
            draw = np.random.default_rng([self.random_state, iteration])
            counts = draw.multivariate_hypergeometric(self._sizes, self.max_frames, method="marginals")
        else:
            counts = [None] * len(self.shards)
        tasks = [
            ShardTask(
                shard,
                None if count is None else int(count),
                (self.random_state, iteration, index),
                self.backend.task_threads,
            )
            for index, (shard, count) in enumerate(zip(self.shards, counts, strict=True))
            if count != 0
        ]
        results = self.backend.map(tasks, ModelParams(parameters, self.chunk_size))
        stats = SufficientStats.zeros(*parameters.means_.shape)
        for shard_stats in results:  # in shard order: the sum is the same whatever ran where
            stats = stats + shard_stats
        return stats
