"""Progress on stderr: a files-done bar (rich), shared by feature extraction and recognition, and the
per-iteration display of EM (a live bar in a terminal, timestamped lines in a log).

rich is imported only when a bar is shown, so commands that never show one do not pay for it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["IterationDisplay", "Progress"]


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


class IterationDisplay(logging.Handler):
    """Per-iteration progress of an iterative fit (EM), shown from the records its loop logs.

    Use as a context manager around the fit. ``mode`` "live": a bar on stderr (an interactive terminal)
    showing iteration i/N, the per-frame log-likelihood, its gain and the time left; "lines": one
    timestamped line on stderr per record of the loop's logger (a log file or a pipe); "off": nothing.
    While shown, the logger's records are not passed on to other handlers, so nothing is printed twice.

    Parameters
    ----------
    mode : {"live", "lines", "off"}
    header : str
        Said first: what is being fitted, on how many frames.
    logger_name : str
        The logger of the loop (:func:`spkid.gmm.run_em` logs on ``spkid.gmm.em``); its records carry
        their figures as ``record.spkid_iteration``.
    """

    def __init__(self, *, mode: str, header: str, logger_name: str = "spkid.gmm.em") -> None:
        super().__init__(logging.INFO)
        if mode not in ("live", "lines", "off"):
            raise ValueError(f"mode={mode!r}: expected 'live', 'lines' or 'off'")
        self.mode, self.header, self.logger = mode, header, logging.getLogger(logger_name)
        self._bar: Any = None
        self._task: Any = None
        self._saved: tuple[int, bool] | None = None

    def __enter__(self) -> IterationDisplay:
        if self.mode == "off":
            return self
        self._saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)
        if self.mode == "lines":
            self._line(self.header)
        else:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                "{task.fields[detail]}",
                console=Console(file=sys.stderr),
            )
            self._bar.__enter__()
            self._bar.console.print(self.header, markup=False, highlight=False)
            self._task = self._bar.add_task("EM", total=None, detail="")
        return self

    def _line(self, message: str) -> None:
        try:
            sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - progress must never crash the fit
            pass

    def emit(self, record: logging.LogRecord) -> None:
        if self.mode == "lines":
            self._line(record.getMessage())
            return
        figures = getattr(record, "spkid_iteration", None)
        if self._bar is None or figures is None:
            return
        gain = "" if figures["gain"] is None else f" (gain {figures['gain']:+.2e})"
        frames = "" if figures.get("n_frames") is None else f", {int(figures['n_frames']):,} frames"
        left = f"~{figures['seconds_left']:.0f} s left"
        detail = f"log-likelihood/frame {figures['log_likelihood']:.4f}{gain}{frames}, {left}"
        self._bar.update(self._task, completed=figures["iteration"], total=figures["max_iter"], detail=detail)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
            self._bar = None
        if self._saved is not None:
            self.logger.removeHandler(self)
            self.logger.setLevel(self._saved[0])
            self.logger.propagate = self._saved[1]
            self._saved = None
