"""Every run of a recipe keeps its own report, and a summary table lists them side by side.

``report/`` always holds the latest run's report. Each run is also kept under
``reports/<run name>/`` (its ``results.json`` and resolved ``settings.json``), the name derived from the
run's resolved settings, so ``--set score.normalization=znorm`` does not overwrite the default run's report;
``reports/summary.md`` (and ``summary.json``) list every run kept: the settings that differ between runs,
then the metrics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from spkid.atomic import atomic_write_bytes
from spkid.metrics import metric_rows
from spkid.recipes.config import RecipeSettings

__all__ = ["REPORTS_DIR", "flat_settings", "keep_report", "run_name", "summary_table"]

#: The folder (under the recipe's output_dir) of every run's report and the summary table.
REPORTS_DIR = "reports"
#: Metrics in the summary table, in this order (those a run has).
SUMMARY_METRICS = ("identification_accuracy", "eer", "min_dcf_0.01", "cllr", "min_cllr")


def flat_settings(settings: RecipeSettings) -> dict[str, Any]:
    """The resolved settings a run's results depend on, as ``{"section.key": value}``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> section = SimpleNamespace(to_dict=lambda: {"n_components": 8})
    >>> config = SimpleNamespace(features=section, ubm=section, enroll=section, score=section)
    >>> fake = SimpleNamespace(config=config, options={"n_enroll": 5}, data={}, corpus="folders")
    >>> flat_settings(fake)["ubm.n_components"], flat_settings(fake)["recipe.n_enroll"]
    (8, 5)
    """
    flat: dict[str, Any] = {"recipe.corpus": settings.corpus}
    for section in ("features", "ubm", "enroll", "score"):
        for key, value in getattr(settings.config, section).to_dict().items():
            flat[f"{section}.{key}"] = value
    for key, value in settings.options.items():
        if key not in ("n_jobs", "output_dir"):  # how fast and where, not what: the same run
            flat[f"recipe.{key}"] = value
    for key, value in settings.data.items():
        flat[f"data.{key}"] = str(value)
    return flat


def run_name(settings: RecipeSettings) -> str:
    """``run-<12 hex digits>``: a hash of :func:`flat_settings`, the same for the same resolved settings."""
    text = json.dumps(flat_settings(settings), sort_keys=True, default=str)
    return f"run-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode("utf-8"))


def keep_report(settings: RecipeSettings, output_dir: Path, results: dict[str, Any]) -> Path:
    """Keep this run's results under ``reports/<run name>/`` and rewrite the summary; the run's folder."""
    folder = output_dir / REPORTS_DIR / run_name(settings)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "settings.json", flat_settings(settings))
    _write_json(folder / "results.json", results)
    runs = _read_runs(output_dir / REPORTS_DIR)
    table = summary_table(runs)
    atomic_write_bytes(output_dir / REPORTS_DIR / "summary.md", (table + "\n").encode("utf-8"))
    _write_json(output_dir / REPORTS_DIR / "summary.json", runs)
    return folder


def _read_runs(reports_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for folder in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        try:
            settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
            results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run folder being written, or damaged: left out of the table
        runs.append({"run": folder.name, "settings": settings, "metrics": results.get("metrics", {})})
    return runs


def summary_table(runs: list[dict[str, Any]]) -> str:
    """A Markdown table of the runs: the settings that differ between them, then the metrics.

    Examples
    --------
    >>> runs = [
    ...     {"run": "run-a", "settings": {"score.normalization": "none", "ubm.n_components": 8},
    ...      "metrics": {"eer": 0.1}},
    ...     {"run": "run-b", "settings": {"score.normalization": "znorm", "ubm.n_components": 8},
    ...      "metrics": {"eer": 0.05}},
    ... ]
    >>> print(summary_table(runs))
    | run | score.normalization | EER |
    |---|---|---:|
    | run-a | none | 10.00% |
    | run-b | znorm | 5.00% |
    """
    keys = sorted({key for run in runs for key in run["settings"]})
    varying = [key for key in keys if len({json.dumps(run["settings"].get(key)) for run in runs}) > 1]
    metric_keys = [key for key in SUMMARY_METRICS if any(run["metrics"].get(key) is not None for run in runs)]
    labels = [metric_rows({key: 0.0}, top_k=1)[0][0] for key in metric_keys]
    header = ["run", *varying, *labels]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * (1 + len(varying)) + "---:|" * len(labels),
    ]
    for run in runs:
        values = [str(run["settings"].get(key, "")) for key in varying]
        metrics = [
            metric_rows({key: run["metrics"][key]}, top_k=1)[0][1]
            if run["metrics"].get(key) is not None
            else ""
            for key in metric_keys
        ]
        lines.append("| " + " | ".join([run["run"], *values, *metrics]) + " |")
    return "\n".join(lines)
