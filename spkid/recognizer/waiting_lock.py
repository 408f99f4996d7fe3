"""Enrollments of a model whose ``features.cmvn: auto`` choice waits run one at a time.

While the choice waits, every enrollment writes both models and the levels file of the second one
(:mod:`spkid.recognizer.level_choice`); a lock in that model's folder serialises them. The enrollment that
settles the choice deletes the folder, so later enrollments run free.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from spkid.recognizer.level_choice import ENROLLING_LOCK, LEVEL_KEPT_DIR
from spkid.store.locking import writer_lock

__all__ = ["one_at_a_time_while_waiting"]

Result = TypeVar("Result")


def one_at_a_time_while_waiting(enroll: Callable[..., Result]) -> Callable[..., Result]:
    """Wrap ``enroll(model_dir, speakers, **options)`` to hold the waiting model's lock while it runs.

    Examples
    --------
    >>> @one_at_a_time_while_waiting
    ... def enroll(model_dir, speakers):
    ...     return sorted(speakers)
    >>> enroll("no-model-here", {"bob": [], "alice": []})  # no choice waits there: no lock taken
    ['alice', 'bob']
    """

    @functools.wraps(enroll)
    def serialised(model_dir: str | os.PathLike[str], speakers: object, **options: object) -> Result:
        with contextlib.ExitStack() as stack:
            if (Path(model_dir) / LEVEL_KEPT_DIR).is_dir():
                with contextlib.suppress(OSError):  # settled meanwhile (or unwritable: the enrollment says)
                    stack.enter_context(writer_lock(Path(model_dir) / LEVEL_KEPT_DIR / ENROLLING_LOCK))
            return enroll(model_dir, speakers, **options)

    return serialised
