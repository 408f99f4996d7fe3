"""The stage runner behind ``spkid run``: a recipe is a list of stages that each write their own directory.

Stages run in order (prepare → features → ubm → enroll → score → report). Each one leaves a marker file
holding a hash of the configuration it depends on (its own config sections chained with the hash of the
stage before it), so a re-run skips the stages that are finished and up to date, and re-runs a stage, and
everything after it, whose configuration changed. The resolved configuration is saved beside the results.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spkid import __version__
from spkid.atomic import atomic_write_bytes
from spkid.errors import ConfigError
from spkid.recipes.config import RecipeSettings, load_recipe, resolved_recipe_yaml

__all__ = [
    "MARKER_NAME",
    "STAGES",
    "RecipeResult",
    "StageOutcome",
    "is_up_to_date",
    "run_recipe",
    "stage_hashes",
    "stage_plan",
]

STAGES: tuple[str, ...] = ("prepare", "features", "ubm", "enroll", "score", "report")
MARKER_NAME = ".stage-done.json"


@dataclass(frozen=True)
class StageOutcome:
    """What happened to one stage in a run: ``"ran"`` or ``"skipped"`` (up to date), and how long it took."""

    name: str
    status: str
    seconds: float
    directory: Path


@dataclass
class RecipeResult:
    """The outcome of :func:`run_recipe`: per-stage outcomes, the output directory and the final metrics."""

    output_dir: Path
    stages: list[StageOutcome] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> list[str]:
        """Names of the stages that actually ran (were not skipped)."""
        return [stage.name for stage in self.stages if stage.status == "ran"]


def _hash_json(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stage_hashes(settings: RecipeSettings) -> dict[str, str]:
    """The configuration hash of every stage, each chained with the hash of the stage before it."""
    from spkid.recipes.stages import STAGE_DEPENDENCIES

    hashes: dict[str, str] = {}
    previous = ""
    for name in STAGES:
        own = STAGE_DEPENDENCIES[name](settings)
        previous = _hash_json({"stage": name, "previous": previous, "config": own})
        hashes[name] = previous
    return hashes


def _read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_up_to_date(directory: Path, config_hash: str) -> bool:
    """True when ``directory`` holds a finished stage whose configuration hash is ``config_hash``."""
    marker = _read_marker(directory)
    return marker is not None and marker.get("config_hash") == config_hash


def stage_plan(stages: Sequence[str] = (), from_stage: str | None = None) -> tuple[list[str], set[str]]:
    """Which stages to consider and which to force, from ``--stage`` and ``--from-stage``.

    Returns
    -------
    considered : list of str
        Stages in pipeline order that this run looks at. The others are not run; those before the last
        considered stage must be finished and up to date (:func:`run_recipe` checks).
    forced : set of str
        Stages that run even when their marker says they are up to date.
    """
    for name in [*stages, *([from_stage] if from_stage else [])]:
        if name not in STAGES:
            raise ConfigError(f"stage {name!r}: unknown stage; expected one of {', '.join(STAGES)}")
    if stages and from_stage:
        raise ConfigError("--stage and --from-stage: give one or the other, not both")
    if stages:
        chosen = [name for name in STAGES if name in set(stages)]
        return chosen, set(chosen)
    if from_stage:
        chosen = list(STAGES[STAGES.index(from_stage) :])
        return chosen, set(chosen)
    return list(STAGES), set()


def run_recipe(
    recipe_path: str | Path,
    *,
    overrides: Sequence[str] = (),
    stages: Sequence[str] = (),
    from_stage: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RecipeResult:
    """Run (or resume) the recipe in ``recipe_path``.

    Parameters
    ----------
    recipe_path : str or Path
        A recipe YAML: the normal config sections plus ``recipe:`` and ``data:``.
    overrides : sequence of str
        ``section.key=value`` overrides applied on top of the file (``--set``).
    stages : sequence of str
        Run only these stages (forced, even when up to date); the stages before them must be finished.
    from_stage : str, optional
        Run this stage (forced) and every stage after it.
    progress : bool
        Show progress bars on long work.
    log : callable, optional
        Receives one line per stage event (e.g. ``typer.echo``); silent when None.

    Returns
    -------
    RecipeResult
        Per-stage outcomes and the metrics written by the report stage (when it ran or was up to date).

    Raises
    ------
    ConfigError
        Unknown stage names, an invalid recipe, or a selected stage whose earlier stages are not finished.
    """
    from spkid.recipes.stages import STAGE_FUNCTIONS, STAGE_PREFLIGHT, read_report_metrics

    settings = load_recipe(recipe_path, overrides)
    considered, forced = stage_plan(stages, from_stage)
    hashes = stage_hashes(settings)
    output_dir = settings.output_dir
    emit = log or (lambda line: None)
    result = RecipeResult(output_dir=output_dir)

    last = considered[-1]
    for earlier in STAGES[: STAGES.index(last)]:
        if earlier not in considered and not is_up_to_date(output_dir / earlier, hashes[earlier]):
            needed_by = next(name for name in considered if STAGES.index(name) > STAGES.index(earlier))
            raise ConfigError(
                f"stage {needed_by!r} needs stage {earlier!r}, which has not finished with this config "
                f"(in {output_dir / earlier}); run it first or use --from-stage {earlier}"
            )

    # Decide everything before touching any directory, so a bad setting fails with the old results intact.
    to_run: list[str] = []
    for name in considered:
        if to_run or name in forced or not is_up_to_date(output_dir / name, hashes[name]):
            # Later stages consumed this one's output, so they are redone even if their hash matches.
            to_run.append(name)
    for name in to_run:
        STAGE_PREFLIGHT.get(name, lambda _: None)(settings)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output_dir / "config.yaml", resolved_recipe_yaml(settings).encode("utf-8"))

    for name in considered:
        directory = output_dir / name
        if name not in to_run:
            emit(f"stage {name}: up to date, skipped ({directory})")
            result.stages.append(StageOutcome(name, "skipped", 0.0, directory))
            continue
        emit(f"stage {name}: running ...")
        started = time.perf_counter()
        _reset_stage_dir(directory, keep=("cache",) if name == "features" else ())
        STAGE_FUNCTIONS[name](settings, output_dir, progress=progress, log=emit)
        seconds = time.perf_counter() - started
        _write_marker(directory, name, hashes[name], seconds)
        emit(f"stage {name}: done in {seconds:.1f} s ({directory})")
        result.stages.append(StageOutcome(name, "ran", seconds, directory))

    if is_up_to_date(output_dir / "report", hashes["report"]):
        result.metrics = read_report_metrics(output_dir)
    return result


def _reset_stage_dir(directory: Path, *, keep: Sequence[str] = ()) -> None:
    """Empty a stage directory before the stage runs (keeping named entries, e.g. the feature cache)."""
    marker = directory / MARKER_NAME
    if marker.exists():
        marker.unlink()
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def _write_marker(directory: Path, name: str, config_hash: str, seconds: float) -> None:
    marker: Mapping[str, Any] = {
        "stage": name,
        "config_hash": config_hash,
        "spkid_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 3),
    }
    atomic_write_bytes(directory / MARKER_NAME, (json.dumps(marker, indent=2) + "\n").encode("utf-8"))
