"""The ``spkid`` commands that run experiments: score, evaluate, run, demo, download.

Plain functions with typer annotations; :mod:`spkid.cli` registers them on the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spkid.cli.speakers import BatchBackend, Scheduler, backend_of
from spkid.cli.support import ModelDir, NJobs, Overrides, SkipBad, info, progress_enabled, report_skipped

__all__ = ["calibrate", "demo", "download", "evaluate", "run", "score"]


def score(
    ctx: typer.Context,
    model_dir: ModelDir,
    trials: Annotated[
        Path,
        typer.Argument(metavar="TRIALS", help="Trial list (Kaldi or VoxCeleb format).", show_default=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Score file to write.", show_default=False)],
    audio_root: Annotated[
        Path | None, typer.Option("--audio-root", help="Folder the trial list's recordings are relative to.")
    ] = None,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Write raw (normalised) scores even when the model holds a calibration."),
    ] = False,
    backend: BatchBackend = None,
    scheduler: Scheduler = None,
) -> None:
    """Score a trial list and write a score file of 'enroll test score' lines.

    Trials are Kaldi 'enroll test target|nontarget' lines (enroll = an enrolled speaker or a recording,
    test = a recording path or file stem under --audio-root) or VoxCeleb '1 a.wav b.wav' lines.

    The scores are what verify decides on: calibrated LLRs once spkid calibrate stored a calibration
    (--raw for the raw scores), else frame-averaged LLRs (normalised as the model says). The file's first
    line, a '#' comment, says which; spkid evaluate and calibrate skip it.

    Example: spkid score model/ trials.txt --audio-root data/test --output scores.txt
    """
    from spkid.recognizer import score_trials

    result = score_trials(
        model_dir,
        trials,
        output=output,
        audio_root=audio_root,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress_enabled(ctx),
        calibrated=not raw,
        backend=backend_of(backend, scheduler),
        scheduler=scheduler,
    )
    report_skipped(ctx, result.skipped)
    if not ctx.obj["quiet"]:  # -q: the score file is all that was asked for
        typer.echo(
            f"wrote {result.n_scored} scores ({result.kind}) to {output}"
            + (f" ({result.n_unscored} trials unscored: skipped recordings)" if result.n_unscored else "")
        )


def evaluate(
    ctx: typer.Context,
    scores: Annotated[
        Path,
        typer.Argument(metavar="SCORES", help="Score file ('enroll test score' lines).", show_default=False),
    ],
    trials: Annotated[
        Path | None,
        typer.Option("--trials", help="Labelled trial list; not needed if SCORES carries labels."),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the DET curve to this PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    confusion: Annotated[
        Path | None,
        typer.Option(
            "--confusion",
            metavar="PNG",
            help="SCORES is spkid identify --json output: write its confusion matrix here (true speaker = "
            "each recording's folder).",
        ),
    ] = None,
) -> None:
    """Verification metrics of a score file: EER, minDCF (0.01, 0.001), Cllr and minCllr.

    With --confusion, SCORES is the JSON of spkid identify --json and the identification confusion
    matrix is drawn instead.

    Example: spkid evaluate scores.txt --trials trials.txt --plot det.png
    or: spkid identify model/ test/ --json > ids.json && spkid evaluate ids.json --confusion confusion.png
    """
    from spkid.metrics import evaluate as evaluate_scores
    from spkid.metrics import format_metrics

    if confusion is not None:
        from spkid.metrics import plot_confusion, read_identifications

        labels = read_identifications(scores)
        plot_confusion(labels.true, labels.predicted, confusion, title=f"Confusion matrix: {scores.name}")
        if as_json:
            typer.echo(
                json.dumps({"n_tests": len(labels.true), "accuracy": labels.accuracy, "plot": str(confusion)})
            )
        else:
            typer.echo(
                f"identification accuracy {labels.accuracy:.2%} ({len(labels.true)} tests); "
                f"confusion matrix: {confusion}"
            )
        return

    result = evaluate_scores(scores, trials, plot=plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(format_metrics(result.metrics))
    if result.plot is not None:
        typer.echo(f"DET curve: {result.plot}")


def calibrate(
    ctx: typer.Context,
    model_dir: ModelDir,
    scores: Annotated[
        Path, typer.Argument(metavar="SCORES", help="Scores of development trials.", show_default=False)
    ],
    trials: Annotated[
        Path | None,
        typer.Option("--trials", help="Labelled trial list; not needed if SCORES carries labels."),
    ] = None,
) -> None:
    """Fit a score calibration on development trials and store it in the model.

    Afterwards identify and verify report calibrated log-likelihood ratios and decide at the Bayes
    threshold for p_target 0.01 (4.6) unless --threshold is given.

    Example: spkid calibrate model/ dev_scores.txt --trials dev_trials.txt
    """
    from spkid.recognizer import calibrate_model

    calibrator = calibrate_model(model_dir, scores, trials)
    typer.echo(
        f"stored calibration llr = {calibrator.scale_:.4g} * score + {calibrator.offset_:.4g} in {model_dir}"
    )


def fuse(
    scores: Annotated[
        list[Path],
        typer.Argument(
            metavar="SCORES...", help="Score files of the same trials, one per system.", show_default=False
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Fused score file to write.", show_default=False)
    ],
    trials: Annotated[
        Path | None,
        typer.Option(
            "--trials",
            help="Labelled trial list to fit the weights on (development trials); without it, the labels "
            "the score files' lines carry.",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Comma-separated weights, one per score file, instead of fitting."),
    ] = None,
    offset: Annotated[
        float, typer.Option("--offset", help="Added to the weighted sum with --weights.")
    ] = 0.0,
) -> None:
    """Fuse the score files of several systems into one: llr = w1 * score1 + w2 * score2 + ... + offset.

    The weights are fitted by logistic regression on labelled trials (Brummer's linear fusion, as
    BOSARIS/FoCal): those of --trials, or, without it, those whose lines in the score files end in
    target|nontarget (the form spkid evaluate reads). The fused scores are calibrated LLRs, labelled as the
    input files label them, and the formula printed can be given back with --weights/--offset to fuse
    evaluation trials the same way. Each file must score the same trials (spkid score of one trial list
    with different models or settings).

    Example: spkid fuse dev_a.txt dev_b.txt --trials dev_trials.txt -o dev_fused.txt
    """
    from spkid.metrics import fuse_score_files

    if offset and weights is None:
        raise typer.BadParameter("goes with --weights (a fitted fusion finds its own)", param_hint="--offset")
    values = None
    if weights is not None:
        try:
            values = [float(item) for item in weights.split(",")]
        except ValueError:
            raise typer.BadParameter(
                f"{weights!r} is not comma-separated numbers", param_hint="--weights"
            ) from None
    result = fuse_score_files(scores, output, trials=trials, weights=values, offset=offset)
    how = "given weights" if values is not None else f"fitted on {result.n_labelled} labelled trials"
    typer.echo(f"fused {result.n_trials} trials ({how}): {result.formula()} -> {output}")


def run(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(metavar="RECIPE", help="The recipe YAML.", show_default=False)],
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Run only this stage (repeatable; forced).")
    ] = None,
    from_stage: Annotated[
        str | None, typer.Option("--from-stage", help="Run this stage and all later ones.")
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Run a recipe: prepare -> features -> ubm -> enroll -> score -> report, skipping finished stages.

    Each stage writes its own directory under recipe.output_dir; a stage re-runs when its config changed.

    Example: spkid run recipes/librispeech/recipe.yaml --set ubm.n_components=128 --from-stage ubm
    """
    from spkid.metrics import format_metrics
    from spkid.recipes import run_recipe

    result = run_recipe(
        recipe,
        overrides=overrides or [],
        stages=stage or [],
        from_stage=from_stage,
        progress=progress_enabled(ctx),
        log=lambda line: info(ctx, line),
    )
    if result.metrics:
        typer.echo(format_metrics(result.metrics))
    typer.echo(f"results in {result.output_dir}")


def demo(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where the corpus, model and plots go.")
    ] = Path("demo_output"),
) -> None:
    """Run a small end-to-end demo on a synthetic corpus (under a minute): train, enroll, identify, evaluate.

    Example: spkid demo --output /tmp/spkid-demo
    """
    from spkid.recipes import run_demo

    summary = run_demo(output, progress=progress_enabled(ctx), log=lambda line: info(ctx, line))
    typer.echo(summary.table())


def download(
    ctx: typer.Context,
    corpus: Annotated[
        str, typer.Argument(metavar="CORPUS", help="The corpus: librispeech.", show_default=False)
    ],
    subset: Annotated[
        list[str],
        typer.Option("--subset", help="Subset to fetch, e.g. test-other (repeatable).", show_default=False),
    ],
    dest: Annotated[Path, typer.Option("--dest", help="Folder that receives LibriSpeech/<subset>.")] = Path(
        "data"
    ),
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="A mirror holding <subset>.tar.gz (default: OpenSLR).")
    ] = None,
    md5: Annotated[
        str | None,
        typer.Option("--md5", help="Expected MD5 of a repacked archive (default: the published one)."),
    ] = None,
) -> None:
    """Download and unpack a public corpus: resumable, checksummed, extracted only when intact.

    Example: spkid download librispeech --subset test-other --subset train-clean-100 --dest data/
    """
    from spkid.corpora.download import LIBRISPEECH_BASE_URL, download_librispeech
    from spkid.errors import DataError

    if corpus != "librispeech":
        raise DataError(
            f"download {corpus!r}: only 'librispeech' can be downloaded (VoxCeleb needs registration)"
        )
    for name in subset:
        target = download_librispeech(
            name, dest, base_url=base_url or LIBRISPEECH_BASE_URL, md5=md5, progress=progress_enabled(ctx)
        )
        typer.echo(f"{name}: {target}")
