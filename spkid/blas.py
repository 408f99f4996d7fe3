"""One shared handle on the BLAS thread pools (inspecting the loaded libraries takes ~0.5 ms: done once)."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager

from threadpoolctl import ThreadpoolController


@functools.cache
def controller() -> ThreadpoolController:
    """The process's :class:`threadpoolctl.ThreadpoolController`, created on first use."""
    return ThreadpoolController()


def blas_threads(n_threads: int) -> AbstractContextManager:
    """Context in which BLAS calls use at most ``n_threads`` threads.

    With one thread, a product's result no longer depends on how many cores the machine has (some
    OpenBLAS kernels split the summation across threads), so features are bit-identical in the main
    process and in worker processes.
    """
    return controller().limit(limits=n_threads, user_api="blas")
