"""spkid's one thread policy and its compiled-code runtime: how many threads, BLAS and numba limits, kernels.

Never more busy threads than the CPUs this process may use. :func:`cpu_budget` is that number: the CPUs of
the process's affinity mask (``os.sched_getaffinity``), lowered by a cgroup CPU quota (containers,
systemd's ``CPUQuota=``) and by ``OMP_NUM_THREADS``-style variables when set. Every ``n_jobs`` goes through
:func:`resolve_n_jobs` (-1 = the budget; more than the budget is lowered to it), and nested parallelism
divides the budget (:func:`worker_threads`: processes x threads per process <= budget). The defaults are
documented in one place, ``docs/serve.md`` ("Threads"). :func:`cached_njit` compiles numba kernels with an
on-disk cache, falling back to a writable temporary folder, or to no cache, on read-only installs.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from threadpoolctl import ThreadpoolController

from spkid.errors import ConfigError

__all__ = [
    "THREAD_VARIABLES",
    "blas_threads",
    "cached_njit",
    "controller",
    "cpu_budget",
    "numba_threads",
    "resolve_n_jobs",
    "thread_limits",
    "worker_threads",
]

#: Environment variables that cap a process's threads; the smallest one set lowers :func:`cpu_budget`.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "LOKY_MAX_CPU_COUNT",
)
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_log = logging.getLogger(__name__)


@functools.cache
def controller() -> ThreadpoolController:
    """The process's :class:`threadpoolctl.ThreadpoolController`, created on first use (~0.5 ms)."""
    return ThreadpoolController()


def blas_threads(n_threads: int) -> AbstractContextManager:
    """Context in which BLAS calls use at most ``n_threads`` threads.

    With one thread, a product's result no longer depends on how many cores the machine has (some
    OpenBLAS kernels split the summation across threads), so features are bit-identical in the main
    process and in worker processes.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_threads(1):
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    return controller().limit(limits=n_threads, user_api="blas")


# ------------------------------------------------------------------------------------------------ budget
def _cgroup_quota(root: Path = _CGROUP_ROOT, own_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """CPUs allowed by the cgroup CPU quota (rounded up), or None when there is no quota or no cgroup."""
    try:
        lines = own_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    candidates = []
    for line in lines:  # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = Path(path.lstrip("/"))
        if controllers == "":
            candidates += [(root / parent / "cpu.max", None) for parent in (relative, *relative.parents)]
        elif "cpu" in controllers.split(","):
            for folder in ("cpu,cpuacct", "cpu"):
                base = root / folder
                candidates += [
                    (base / parent / "cpu.cfs_quota_us", base / parent / "cpu.cfs_period_us")
                    for parent in (relative, *relative.parents)
                ]
    candidates += [
        (root / "cpu.max", None),
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),
    ]
    limits = []
    for quota_file, period_file in candidates:
        try:
            fields = quota_file.read_text().split()
            if period_file is not None:
                fields = [fields[0], period_file.read_text().split()[0]]
        except (OSError, IndexError):
            continue
        if len(fields) == 2 and fields[0] not in ("max", "-1"):
            try:
                quota, period = int(fields[0]), int(fields[1])
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(max(1, math.ceil(quota / period)))
    return min(limits) if limits else None


def _variable_limit(environ: Mapping[str, str]) -> int | None:
    """The smallest positive integer among the :data:`THREAD_VARIABLES` set, or None."""
    values = []
    for name in THREAD_VARIABLES:
        text = environ.get(name, "").strip().split(",")[0]  # OMP_NUM_THREADS may list nested levels
        if text.isdigit() and int(text) > 0:
            values.append(int(text))
    return min(values) if values else None


@functools.cache
def _process_quota() -> int | None:
    return _cgroup_quota()


def cpu_budget(environ: Mapping[str, str] | None = None) -> int:
    """How many threads this process may keep busy at once (at least 1).

    The CPUs of the affinity mask, lowered by the cgroup CPU quota (read once per process) and by the
    smallest of :data:`THREAD_VARIABLES` that is set (``environ``, default ``os.environ``).

    Examples
    --------
    >>> cpu_budget({"OMP_NUM_THREADS": "1"})
    1
    >>> 1 <= cpu_budget() <= (os.cpu_count() or 1)
    True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limits = [cpus, _process_quota(), _variable_limit(os.environ if environ is None else environ)]
    return max(1, min(limit for limit in limits if limit is not None))


def resolve_n_jobs(n_jobs: int, *, budget: int | None = None) -> int:
    """The number of workers an ``n_jobs`` setting means here: joblib's convention, capped at the budget.

    ``-1`` is the whole :func:`cpu_budget`, ``-2`` one less, ...; a positive value above the budget is
    lowered to it (more workers than CPUs only queue); 0 is refused.

    Examples
    --------
    >>> resolve_n_jobs(1)
    1
    >>> resolve_n_jobs(-1, budget=4), resolve_n_jobs(-2, budget=4), resolve_n_jobs(16, budget=4)
    (4, 3, 4)
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(f"n_jobs={n_jobs!r}: expected a positive integer or -1 (all CPUs)")
    budget = cpu_budget() if budget is None else budget
    return max(1, min(n_jobs, budget) if n_jobs > 0 else budget + 1 + n_jobs)


def worker_threads(n_workers: int, *, budget: int | None = None) -> int:
    """Threads each of ``n_workers`` parallel workers may use so that together they stay within budget.

    Examples
    --------
    >>> worker_threads(1, budget=8), worker_threads(3, budget=8), worker_threads(16, budget=8)
    (8, 2, 1)
    """
    budget = cpu_budget() if budget is None else budget
    return max(1, budget // max(1, n_workers))


@contextlib.contextmanager
def numba_threads(n_threads: int) -> Iterator[None]:
    """Cap the numba threads of the calling thread (and the parallel regions it starts) inside the block.

    numba's limit is per thread, so concurrent callers (the requests of ``spkid serve``) each set their own.

    Examples
    --------
    >>> from numba import get_num_threads
    >>> with numba_threads(1):
    ...     get_num_threads()
    1
    """
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def thread_limits(n_threads: int | None) -> Iterator[None]:
    """Cap BLAS, OpenMP and numba threads at ``n_threads`` inside the block (nothing when None).

    The BLAS and OpenMP limits are process-wide (use this where one thread of the process computes, as in
    a worker process); numba's holds for the calling thread (:func:`numba_threads`).

    Examples
    --------
    >>> from numba import get_num_threads
    >>> with thread_limits(1):
    ...     get_num_threads()
    1
    """
    if n_threads is None:
        yield
        return
    with numba_threads(n_threads), controller().limit(limits=max(1, n_threads)):
        yield


# ------------------------------------------------------------------------------------------------ kernels
_fallback_lock = threading.Lock()
_fallback_state: dict[str, Any] = {}


def _fallback_cache_dir() -> str | None:
    """A cache folder spkid can write when numba's own places are read-only (chosen once), or None."""
    with _fallback_lock:
        if "dir" not in _fallback_state:
            folder: str | None = os.path.join(tempfile.gettempdir(), f"spkid-numba-cache-{os.getuid()}")
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                tempfile.TemporaryFile(dir=folder).close()
            except OSError:
                folder = None
            _fallback_state["dir"] = folder
            where = (
                f"caching them in {folder}"
                if folder
                else "compiling them anew in every process (slower start)"
            )
            # One warning per process, whatever the number of kernels.
            _log.warning(
                "numba cannot cache spkid's compiled kernels beside the package or in its user cache "
                "(read-only); %s. Set NUMBA_CACHE_DIR to a writable folder to choose the place",
                where,
            )
        return _fallback_state["dir"]


def cached_njit(**options: Any) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, **options)`` that still works when no cache folder can be written.

    numba caches beside the module, then in ``NUMBA_CACHE_DIR`` or the user's cache; when all are
    read-only (a ``--read-only`` container, a system install run by a service account) this uses a
    private folder in the temporary directory, else compiles without a cache. One warning per process.

    Examples
    --------
    >>> @cached_njit(nogil=True)
    ... def twice(x):
    ...     return 2 * x
    >>> twice(21)
    42
    """
    from numba import config, njit

    def decorate(function: Callable) -> Callable:
        if not os.path.isfile(inspect.getfile(function)):  # defined interactively: nothing to cache by
            return njit(**options)(function)
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError as error:
            if "cannot cache" not in str(error):
                raise
        folder = _fallback_cache_dir()
        if folder is None:
            return njit(**options)(function)
        with _fallback_lock:  # numba reads CACHE_DIR when the kernel's cache is set up, here
            previous, config.CACHE_DIR = config.CACHE_DIR, folder
            try:
                return njit(cache=True, **options)(function)
            except RuntimeError:
                return njit(**options)(function)
            finally:
                config.CACHE_DIR = previous

    return decorate
