"""Shared pieces of the ``spkid`` command line: the error-handling command group, helpers, option types.

:class:`SpkidGroup` turns spkid's own errors (:class:`spkid.errors.SpkidError`) into one ``error: ...``
line on stderr with exit code 1, shows the traceback instead with ``--debug``, and accepts the global flags
after the command name as well as before it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from spkid.errors import SpkidError

__all__ = [
    "GLOBAL_FLAGS",
    "ModelDir",
    "NJobs",
    "Overrides",
    "SkipBad",
    "SpkidGroup",
    "configure_logging",
    "info",
    "progress_enabled",
    "report_skipped",
]

#: Global flags also accepted after the command name (``spkid identify model/ x.wav --quiet``).
GLOBAL_FLAGS = ("--quiet", "-q", "--debug")


#: A summarised warning names at most this many files.
SUMMARY_FILES = 3


class _StderrHandler(logging.Handler):
    """``warning: <message>`` lines on whatever ``sys.stderr`` is when the record is emitted.

    Records of a repeated kind (``extra={"spkid_kind": ..., "spkid_path": ...}``, e.g. clipped audio) are
    held back and written as one line per kind by :meth:`flush_summaries`, when the command ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, list[logging.LogRecord]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "spkid_kind", None)
        if kind is not None:
            self.held.setdefault(str(kind), []).append(record)
            return
        self._write(record.levelname.lower(), self.format(record))

    def _write(self, level: str, message: str) -> None:
        try:
            sys.stderr.write(f"{level}: {message}\n")
        except Exception:  # noqa: BLE001 - logging must never crash the command
            pass

    def flush_summaries(self) -> None:
        """One line per held kind: the record itself when alone, else the count and the first files."""
        held, self.held = self.held, {}
        for kind, records in held.items():
            level = records[0].levelname.lower()
            if len(records) == 1:
                self._write(level, self.format(records[0]))
                continue
            paths = list(dict.fromkeys(str(getattr(record, "spkid_path", "?")) for record in records))
            shown = ", ".join(paths[:SUMMARY_FILES]) + (
                f" and {len(paths) - SUMMARY_FILES} more" if len(paths) > SUMMARY_FILES else ""
            )
            self._write(level, f"{len(paths)} files {kind}: {shown}")


_HANDLER = _StderrHandler()


def configure_logging(*, quiet: bool, debug: bool) -> None:
    """Show spkid's log records on stderr: warnings (e.g. clipped audio), errors only with ``--quiet``,
    and progress information (UBM iterations, ...) too with ``--debug``."""
    spkid_logger = logging.getLogger("spkid")
    if _HANDLER not in spkid_logger.handlers:
        spkid_logger.addHandler(_HANDLER)
    _HANDLER.held.clear()  # records held from API use before this command are not this command's
    spkid_logger.setLevel(logging.ERROR if quiet else logging.INFO if debug else logging.WARNING)


class SpkidGroup(TyperGroup):
    """The command group: turns spkid's own errors into one line on stderr and exit code 1."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        # Move global flags given after the command name in front of it, where click expects them.
        end = args.index("--") if "--" in args else len(args)
        flags = [arg for arg in args[:end] if arg in GLOBAL_FLAGS]
        rest = [arg for arg in args[:end] if arg not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, flags + rest)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpkidError as exc:
            _HANDLER.flush_summaries()
            _fail(ctx, " ".join(str(exc).split()), exc)
        except OSError as exc:  # a disk-level failure no spkid module anticipated: still one clear line
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(ctx, f"{where}{exc.strerror or exc}", exc)
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        finally:
            _HANDLER.flush_summaries()


def _fail(ctx: typer.Context, message: str, exc: BaseException) -> None:
    if (ctx.obj or {}).get("debug"):
        raise exc
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1) from None


def progress_enabled(ctx: typer.Context) -> bool:
    """Progress bars only on an interactive terminal (logs and pipes get no bar noise), never with --quiet."""
    return not ctx.obj["quiet"] and sys.stderr.isatty()


def info(ctx: typer.Context, message: str) -> None:
    """A status message on stderr (so stdout stays parseable), unless --quiet."""
    if not ctx.obj["quiet"]:
        typer.echo(message, err=True)


def report_skipped(ctx: typer.Context, skipped: Any) -> None:
    """One ``skipped: <file>: <reason>`` line on stderr per skipped file (shown even with --quiet)."""
    for item in skipped:
        reason = str(item.reason)
        typer.echo(
            f"skipped: {reason}" if str(item.path) in reason else f"skipped: {item.path}: {reason}", err=True
        )


ModelDir = Annotated[
    Path, typer.Argument(metavar="MODEL_DIR", help="The model directory.", show_default=False)
]
NJobs = Annotated[
    int, typer.Option("--n-jobs", "-j", help="Worker processes for feature extraction (-1 = all).")
]
SkipBad = Annotated[
    bool,
    typer.Option(
        "--skip-bad", help="Skip unreadable, silent or too-short files (listed) instead of stopping."
    ),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="SECTION.KEY=VALUE", help="Override a config value (repeatable)."),
]


def process_age_s() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 elsewhere): the CLI's start-up so far."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
