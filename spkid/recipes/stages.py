"""The six stages of a recipe, each one call into the API writing its own directory under the output dir.

``prepare`` writes the protocol (``prepare/protocol.json``, ``prepare/trials.txt``); ``features`` extracts
every recording into ``features/cache`` (later stages read the cache); ``ubm`` trains the model in
``ubm/model``; ``enroll`` copies it to ``enroll/model`` and enrolls the speakers; ``score`` writes the
identification score matrix (``score/identification.npz``) and the trial scores (``score/scores.txt``);
``report`` writes ``report/results.json``, ``report/results.md`` and the plots.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spkid.atomic import atomic_write_bytes
from spkid.corpora.protocol import Protocol
from spkid.features import extract_many, resolve_sample_rate
from spkid.metrics import (
    ScoredTrial,
    evaluate_arrays,
    identification_accuracy,
    markdown_metrics,
    read_scores,
    read_trials,
    split_scores,
    write_scores,
    write_trials,
)
from spkid.metrics.plots import plot_confusion
from spkid.recipes.config import CORPUS_KEYS, RecipeSettings, check_data_root, prepare_protocol
from spkid.recipes.reports import keep_report
from spkid.recognizer import Recognizer, enroll_from_audio, score_recordings, train_ubm_from_audio
from spkid.recognizer.level_choice import LEVEL_KEPT_DIR, remove_level_kept
from spkid.recognizer.routing import recordings_of, route_trials, routed_score_rows
from spkid.store import ModelStore

__all__ = ["STAGE_DEPENDENCIES", "STAGE_FUNCTIONS", "STAGE_PREFLIGHT", "read_report_metrics"]

Log = Callable[[str], None]
#: Confusion matrices are drawn only up to this many speakers (beyond, the plot is unreadable).
MAX_CONFUSION_SPEAKERS = 60


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode("utf-8"))


def _protocol(output_dir: Path) -> Protocol:
    return Protocol.load(output_dir / "prepare" / "protocol.json")


def _cache(output_dir: Path) -> Path:
    return output_dir / "features" / "cache"


def _speaker_models(protocol: Protocol) -> bool:
    """Whether the protocol's models are speakers (identification) rather than single utterances."""
    return {utterance.speaker for utterance in protocol.test} <= set(protocol.enroll)


# ------------------------------------------------------------------------------------------------ stages
def prepare_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Build the protocol from the corpus and save it with its trial list."""
    protocol = prepare_protocol(settings)
    stage_dir = output_dir / "prepare"
    protocol.save(stage_dir / "protocol.json")
    write_trials(stage_dir / "trials.txt", protocol.trials)
    log(
        f"  {protocol.name}: {len(protocol.train)} UBM utterances, {len(protocol.enroll)} models, "
        f"{len(protocol.test)} tests, {len(protocol.trials)} trials"
    )


def features_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Extract every recording of the protocol once, into the feature cache."""
    protocol = _protocol(output_dir)
    utterances = [*protocol.train, *(u for items in protocol.enroll.values() for u in items), *protocol.test]
    paths = list(dict.fromkeys(utterance.path for utterance in utterances))
    # The rate train-ubm will choose; normalisations toward pool statistics (and cmvn auto's model without
    # CMVN) cache the raw features here.
    config = resolve_sample_rate(
        settings.config.features, [u.path for u in protocol.train], skip_bad=settings.skip_bad
    )
    if config.needs_global_stats or config.cmvn == "auto":
        config = dataclasses.replace(config, cmvn="none")
    result = extract_many(
        paths,
        config,
        n_jobs=settings.n_jobs,
        cache_dir=_cache(output_dir),
        progress=progress,
        skip_bad=settings.skip_bad,
    )
    summary = {
        "n_files": len(result),
        "n_frames": int(sum(len(frames) for frames in result)),
        "skipped": [{"path": str(item.path), "reason": item.reason} for item in result.skipped],
    }
    _write_json(output_dir / "features" / "summary.json", summary)
    log(f"  {summary['n_files']} files, {summary['n_frames']} frames, {len(result.skipped)} skipped")


def ubm_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Train the UBM (and pick the cohort) on the protocol's training pool."""
    protocol = _protocol(output_dir)
    result = train_ubm_from_audio(
        output_dir / "ubm" / "model",
        [utterance.path for utterance in protocol.train],
        settings.config,
        n_jobs=settings.n_jobs,
        skip_bad=settings.skip_bad,
        progress=progress,
        overwrite=True,
        cache_dir=_cache(output_dir),
    )
    log(f"  UBM {result.n_components} x {result.n_features} on {result.n_frames} frames")


def enroll_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Copy the UBM model and enroll the protocol's speakers (utterance models are adapted at scoring)."""
    protocol = _protocol(output_dir)
    model_dir = output_dir / "enroll" / "model"
    shutil.copytree(output_dir / "ubm" / "model", model_dir, ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
    if not _speaker_models(protocol):
        log(f"  {len(protocol.enroll)} single-utterance models: adapted on the fly in the score stage")
        if (model_dir / LEVEL_KEPT_DIR).is_dir():  # cmvn auto: no enrollment to measure the level on
            remove_level_kept(model_dir)
            log(
                "  features.cmvn auto: loudness removed (cmvn adaptive_level): no enrollment to measure it on"
            )
        return
    result = enroll_from_audio(
        model_dir,
        {name: [utterance.path for utterance in items] for name, items in protocol.enroll.items()},
        n_jobs=settings.n_jobs,
        skip_bad=settings.skip_bad,
        progress=progress,
        cache_dir=_cache(output_dir),
        final=True,  # a features.cmvn: auto choice: a recipe's speakers are all there are, choose on them
    )
    log(f"  enrolled {len(result.enrolled)} speakers")
    if result.level_choice is not None:
        log(f"  features.cmvn auto: {result.level_choice.describe()}")


def score_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Score every test against every speaker (identification) and every trial (verification).

    Each recording or trial is scored by the model the CLI would use: a model with a companion
    (``features.bands: auto``) sends those of its band there (:mod:`spkid.recognizer.routing`).
    """
    protocol = _protocol(output_dir)
    stage_dir = output_dir / "score"
    model_dir = output_dir / "enroll" / "model"

    extract_options = {
        "n_jobs": settings.n_jobs,
        "skip_bad": settings.skip_bad,
        "progress": progress,
        "cache_dir": _cache(output_dir),
    }
    trials = list(protocol.trials)
    scored: list[ScoredTrial] = []
    if _speaker_models(protocol):
        names = ModelStore.open(model_dir).speakers()
        rows = routed_score_rows(
            model_dir,
            [u.path for u in protocol.test],
            names,
            score_config=settings.config.score,
            **extract_options,
        )
        tests = [u for u in protocol.test if u.path in rows]
        matrix = np.array([rows[u.path] for u in tests]).reshape(len(tests), len(names))
        np.savez(
            stage_dir / "identification.npz",
            scores=matrix,
            model_names=np.array(names, dtype=str),
            test_ids=np.array([u.id for u in tests], dtype=str),
            true_speakers=np.array([u.speaker for u in tests], dtype=str),
        )
        column = {name: index for index, name in enumerate(names)}
        row = {u.id: index for index, u in enumerate(tests)}
        scored = [
            ScoredTrial(t.enroll, t.test, float(matrix[row[t.test], column[t.enroll]]))
            for t in trials
            if t.test in row and t.enroll in column
        ]
        log(f"  identification: {len(tests)} tests x {len(names)} speakers")
    elif trials:
        recordings = {
            "enroll_recordings": {name: [u.path for u in items] for name, items in protocol.enroll.items()},
            "test_recordings": {u.id: u.path for u in protocol.test},
        }
        by_pair: dict[tuple[str, str], ScoredTrial] = {}
        routes = route_trials(model_dir, trials, **recordings)
        for scoring_dir, part in routes:
            scored_here, _ = score_recordings(
                Recognizer(ModelStore.open(scoring_dir), score_config=settings.config.score),
                part,
                **recordings_of(part, recordings),
                **extract_options,
                allow_none=len(routes) > 1,
            )
            by_pair.update(((item.enroll, item.test), item) for item in scored_here)
        scored = [by_pair[(t.enroll, t.test)] for t in trials if (t.enroll, t.test) in by_pair]
    if trials:
        write_scores(stage_dir / "scores.txt", scored)
        write_trials(stage_dir / "trials.txt", trials)
        log(f"  verification: {len(scored)} of {len(trials)} trials scored")


def report_stage(settings: RecipeSettings, output_dir: Path, *, progress: bool, log: Log) -> None:
    """Compute the metrics, draw the DET curve and confusion matrix, write results.json and results.md."""
    stage_dir = output_dir / "report"
    score_dir = output_dir / "score"
    top_k = int(settings.options["top_k"])
    metrics: dict[str, Any] = {}
    plots: dict[str, str] = {}
    identification = score_dir / "identification.npz"
    if identification.is_file():
        with np.load(identification, allow_pickle=False) as stored:
            matrix, names = stored["scores"], list(stored["model_names"])
            truth = [str(name) for name in stored["true_speakers"]]
        ranked = [[names[i] for i in np.argsort(-row, kind="stable")] for row in matrix]
        if truth:
            metrics["identification_accuracy"] = identification_accuracy(truth, ranked, top_k=1)
            metrics["identification_accuracy_top_k"] = identification_accuracy(truth, ranked, top_k=top_k)
            metrics["top_k"] = top_k
            metrics["n_identification_tests"] = len(truth)
            if len(names) <= MAX_CONFUSION_SPEAKERS:
                predicted = [candidates[0] for candidates in ranked]
                path = plot_confusion(truth, predicted, stage_dir / "confusion.png", labels=names)
                plots["confusion"] = str(path)
    if (score_dir / "scores.txt").is_file():
        target, nontarget = split_scores(
            read_scores(score_dir / "scores.txt"),
            read_trials(score_dir / "trials.txt"),
            scores_path=score_dir / "scores.txt",
        )
        if target.size and nontarget.size:
            evaluation = evaluate_arrays(
                target, nontarget, plot=stage_dir / "det.png", title=f"DET curve: {settings.path.parent.name}"
            )
            metrics.update(evaluation.metrics)
            plots["det"] = str(evaluation.plot)
    results = {"corpus": settings.corpus, "recipe": str(settings.path), "metrics": metrics, "plots": plots}
    _write_json(stage_dir / "results.json", results)
    markdown = markdown_metrics(metrics, top_k=top_k)
    atomic_write_bytes(stage_dir / "results.md", (markdown + "\n").encode("utf-8"))
    for name, path in plots.items():
        log(f"  {name} plot: {path}")
    kept = keep_report(settings, output_dir, results)  # this run's own copy, and the table of all runs
    log(f"  this run's report also in {kept}; every run side by side: {kept.parent / 'summary.md'}")


def read_report_metrics(output_dir: Path) -> dict[str, Any]:
    """The metrics the report stage wrote (empty when it has not run)."""
    try:
        return dict(
            json.loads((output_dir / "report" / "results.json").read_text(encoding="utf-8"))["metrics"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ------------------------------------------------------------------------------------------------ registry
STAGE_FUNCTIONS: dict[str, Callable[..., None]] = {
    "prepare": prepare_stage,
    "features": features_stage,
    "ubm": ubm_stage,
    "enroll": enroll_stage,
    "score": score_stage,
    "report": report_stage,
}


#: Cheap checks run before any stage directory is touched (a failure leaves earlier results intact).
STAGE_PREFLIGHT: dict[str, Callable[[RecipeSettings], None]] = {"prepare": check_data_root}


def _prepare_dependencies(settings: RecipeSettings) -> dict[str, Any]:
    split = {key: settings.options[key] for key in CORPUS_KEYS[settings.corpus]}
    return {"corpus": settings.corpus, "data": {k: str(v) for k, v in settings.data.items()}, "split": split}


#: What each stage's result depends on besides the stages before it (hashed into its marker).
STAGE_DEPENDENCIES: dict[str, Callable[[RecipeSettings], Any]] = {
    "prepare": _prepare_dependencies,
    "features": lambda s: {"features": s.config.features.to_dict(), "skip_bad": s.skip_bad},
    "ubm": lambda s: {
        "ubm": s.config.ubm.to_dict(),
        "enroll": s.config.enroll.to_dict(),
        "cohort_size": s.config.score.cohort_size,
    },
    "enroll": lambda s: {},
    "score": lambda s: {"score": s.config.score.to_dict()},
    "report": lambda s: {"top_k": s.options["top_k"]},
}
