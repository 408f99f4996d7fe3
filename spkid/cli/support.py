"""Shared pieces of the ``spkid`` command line: the error-handling command group, helpers, option types.

:class:`SpkidGroup` turns spkid's own errors (:class:`spkid.errors.SpkidError`) into one ``error: ...``
line on stderr with exit code 1, shows the traceback instead with ``--debug``, and accepts the global flags
after the command name as well as before it.
"""

from __future__ import annotations

import atexit
import functools
import gc
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from spkid.errors import AudioError, FeatureError, SpkidError

if TYPE_CHECKING:  # only in annotations: typer >= 0.2x vendors click and no longer installs it
    import click

__all__ = [
    "GLOBAL_FLAGS",
    "ModelDir",
    "NJobs",
    "Overrides",
    "SkipBad",
    "SpkidGroup",
    "Timings",
    "configure_logging",
    "freeze_objects_at_exit",
    "info",
    "log_steps",
    "progress_enabled",
    "report_skipped",
]

#: Global flags also accepted after the command name (``spkid identify model/ x.wav --quiet``).
GLOBAL_FLAGS = ("--quiet", "-q", "--debug", "--verbose", "-v")


@functools.cache  # registered once per process
def freeze_objects_at_exit() -> None:
    """At interpreter exit, move every live object out of the garbage collector's view (``gc.freeze``).

    A command's process ends right after it; the collections Python runs while tearing down the ~900
    modules numpy, numba and scipy bring cost ~0.15 s of every ``spkid identify`` and collect nothing of
    use. Objects are still finalised by reference counting, and every ``atexit`` handler still runs.
    """
    atexit.register(gc.freeze)


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
        level = record.levelname.lower()
        if record.levelno < logging.WARNING:  # --verbose / --debug detail: when it happened
            level = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.created))} {level}"
        self._write(level, self.format(record))

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


def configure_logging(*, quiet: bool, debug: bool, verbose: bool = False) -> None:
    """Show spkid's log records on stderr: warnings (e.g. clipped audio), errors only with ``--quiet``,
    and timestamped progress information (EM iterations, timings, ...) too with ``--verbose`` or
    ``--debug``."""
    spkid_logger = logging.getLogger("spkid")
    if _HANDLER not in spkid_logger.handlers:
        spkid_logger.addHandler(_HANDLER)
    _HANDLER.held.clear()  # records held from API use before this command are not this command's
    detail = debug or verbose
    spkid_logger.setLevel(logging.ERROR if quiet else logging.INFO if detail else logging.WARNING)


class _Argument(TyperArgument):
    """An argument shown as ``NAME`` / ``NAME...`` in the usage line (typer writes ``{NAME...}...``)."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"


class _Option(TyperOption):
    """An option whose help shows no ``<bool>`` placeholder when it is a flag (a flag takes no value)."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


def _no_placeholder(ctx: click.Context) -> None:
    return None


def _one_line_paragraphs(text: str | None) -> str | None:
    r"""Each paragraph of a command's docstring on one line, for the terminal to wrap: the rich help of the
    installed typer keeps a docstring's line breaks, so an 80-column terminal wrapped every line twice.

    Examples
    --------
    >>> _one_line_paragraphs("Score a list.\n\nTrials are Kaldi lines\nor VoxCeleb lines.")
    'Score a list.\n\nTrials are Kaldi lines or VoxCeleb lines.'
    """
    if not text:
        return text
    paragraphs = text.split("\n\n")
    return "\n\n".join(
        paragraph if paragraph.startswith("\b") else " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in paragraphs
    )


def _tidy_help(command: click.Command | None) -> None:
    if command is None or getattr(command, "_spkid_tidy", False):
        return
    command.help = _one_line_paragraphs(command.help)
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    make_help_option = command.get_help_option

    def get_help_option(ctx: click.Context) -> click.Option | None:
        option = make_help_option(ctx)
        if option is not None:  # --help is a flag too
            option.display_type_rich = _no_placeholder  # type: ignore[attr-defined]
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]
    command._spkid_tidy = True  # type: ignore[attr-defined]


class SpkidGroup(TyperGroup):
    """The command group: turns spkid's own errors into one line on stderr and exit code 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy_help(self)

    def _skip_bad_hint(self, ctx: click.Context, exc: SpkidError) -> str:
        """Point a batch command's bad-file error at --skip-bad (not for a path that does not exist)."""
        if not isinstance(exc, (AudioError, FeatureError)) or "--skip-bad" in str(exc):
            return ""
        if isinstance(exc, AudioError) and not exc.path.is_file():
            return ""
        command = self.get_command(ctx, ctx.invoked_subcommand or "")
        if command is None or not any(param.name == "skip_bad" for param in command.params):
            return ""
        return " (--skip-bad skips such files and lists them)"

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        _tidy_help(command)
        return command

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
            _fail(ctx, " ".join(str(exc).split()) + self._skip_bad_hint(ctx, exc), exc)
        except BrokenPipeError:  # the reader went away (`spkid list model | head -1`): click stops quietly
            raise
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


#: What each step of :func:`log_steps` timed, as said on its ``--verbose`` line.
STEP_NAMES = {
    "startup_s": "start-up (imports)",
    "model_s": "opened the model (settings, UBM, cohort)",
    "bank_s": "opened the speaker bank",
    "features_s": "features of {recordings}",
    "kernels_s": "started the compiled scoring kernels",
    "scoring_s": "scored {recordings}",
}

_cli_logger = logging.getLogger("spkid.cli")


def log_steps(command: str, seconds: dict[str, float], *, n_recordings: int) -> None:
    """One timestamped ``info:`` line per timed step of ``command`` on stderr, shown with --verbose."""
    recordings = f"{n_recordings} recording{'' if n_recordings == 1 else 's'}"
    for key, spent in seconds.items():
        step = STEP_NAMES.get(key, key).format(recordings=recordings)
        _cli_logger.info("%s: %s in %.3f s", command, step, spent)


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
Timings = Annotated[
    bool,
    typer.Option(
        "--timings",
        help="Print to stderr where the time went: start-up (imports), model, bank, features, "
        "compiled kernels, scoring.",
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
