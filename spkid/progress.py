"""A files-done progress bar on stderr (rich), shared by feature extraction and recognition.

rich is imported only when a bar is shown, so commands that never show one do not pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A files-done progress bar on stderr (rich), or nothing when disabled.

    Use as a context manager; call :meth:`advance` as files finish.
    """

    def __init__(self, total: int, *, enabled: bool, description: str = "features") -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.description = description
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, n_files: int = 1) -> None:
        """Count ``n_files`` more files as done."""
        if self._bar is not None:
            self._bar.advance(self._task, n_files)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
            self._bar = None
