"""The ``spkid`` command line: thin typer commands that parse arguments, make one call into the API, print.

Errors spkid raises for bad input (:class:`spkid.errors.SpkidError`) become one ``error: ...`` line on stderr
and exit code 1 (usage errors exit 2, as typer does); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spkid import __version__
from spkid.cli import experiments as cli_experiments
from spkid.cli import speakers as cli_speakers
from spkid.cli.support import (
    ModelDir,
    NJobs,
    Overrides,
    SkipBad,
    SpkidGroup,
    configure_logging,
    process_age_s,
    progress_enabled,
    report_skipped,
)

__all__ = ["app"]


app = typer.Typer(
    name="spkid",
    cls=SpkidGroup,
    help="GMM-UBM speaker identification and verification.\n\n"
    "Train a UBM, enroll speakers, identify or verify recordings, score trial lists, evaluate, "
    "run whole recipes.\n\nExample: spkid train-ubm model/ data/ubm_pool/ && spkid enroll model/ speakers/ "
    "&& spkid identify model/ unknown.wav",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spkid {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or status messages.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """GMM-UBM speaker identification and verification."""
    ctx.obj = {"quiet": quiet, "debug": debug}
    configure_logging(quiet=quiet, debug=debug)


# ------------------------------------------------------------------------------------------------ model
@app.command("train-ubm")
def train_ubm(
    ctx: typer.Context,
    model_dir: ModelDir,
    audio_paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="AUDIO_PATH...", help="Audio files or folders (searched recursively).", show_default=False
        ),
    ],
    components: Annotated[
        int | None, typer.Option("--components", "-k", min=1, help="Gaussian components (ubm.n_components).")
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="A YAML config file.")] = None,
    overrides: Overrides = None,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing model (and drop its enrolled speakers).")
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Where UBM E-steps run: local, joblib or dask (ubm.backend).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="Dask scheduler, e.g. tcp://HOST:8786 (ubm.scheduler; implies --backend dask). "
            "Without it, dask starts a local cluster.",
        ),
    ] = None,
    feature_store: Annotated[
        Path | None,
        typer.Option(
            "--feature-store",
            metavar="DIR",
            help="Write features here once (re-used by re-runs) and train from them on disk; "
            "with a Dask cluster, on a filesystem its workers share.",
        ),
    ] = None,
) -> None:
    """Train a universal background model from audio and create MODEL_DIR.

    The feature settings used here are stored in the model and reused by every later command
    (--set features.sample_rate=8000 makes an 8 kHz system).

    Example: spkid train-ubm model/ data/ubm_pool/ --components 256 --set features.sample_rate=8000

    On a Dask cluster: spkid train-ubm model/ pool/ --feature-store /shared/feats --backend dask
    --scheduler tcp://HOST:8786
    """
    from spkid.recognizer import SKIPPED_LIST_FILE, load_config, train_ubm_from_audio

    sets = [*(overrides or []), *([f"ubm.n_components={components}"] if components else [])]
    # JSON strings are YAML strings: the values reach the config checks exactly as typed.
    if scheduler is not None and backend is None:
        backend = "dask"  # a scheduler address only means something to the dask backend
    for key, value in (("backend", backend), ("scheduler", scheduler)):
        if value is not None:
            sets.append(f"ubm.{key}={json.dumps(value)}")
    config = load_config(config_file, sets)
    result = train_ubm_from_audio(
        model_dir,
        audio_paths,
        config,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress_enabled(ctx),
        overwrite=overwrite,
        cache_dir=feature_store,
    )
    unusable = [item for item in result.skipped if item.unusable]
    report_skipped(ctx, [item for item in result.skipped if not item.unusable])
    if unusable:
        shown = ", ".join(str(item.path) for item in unusable[:3]) + (", ..." if len(unusable) > 3 else "")
        typer.echo(
            f"skipped: {len(unusable)} pool file{'s' if len(unusable) > 1 else ''} with too little "
            f"speech ({shown}); listed in {model_dir / SKIPPED_LIST_FILE}",
            err=True,
        )
    typer.echo(
        f"trained UBM ({result.n_components} components x {result.n_features} features, "
        f"{result.sample_rate} Hz front-end) on "
        f"{result.n_files} files, {result.n_frames} frames; cohort of {result.cohort_size}"
        + (
            f" ({result.cohort_frames_held_out} frames held out of UBM training)"
            if result.cohort_frames_held_out
            else ""
        )
        + f"; model in {model_dir}"
    )


@app.command()
def enroll(
    ctx: typer.Context,
    model_dir: ModelDir,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="SPEAKERS_DIR | PATH...",
            help="SPEAKERS_DIR (one sub-folder per speaker), or with --speaker the speaker's "
            "audio files/folders.",
            show_default=False,
        ),
    ],
    speaker: Annotated[
        str | None, typer.Option("--speaker", "-s", help="Enroll PATHS as this one speaker.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-enroll speakers that already exist.")
    ] = False,
    add: Annotated[
        bool,
        typer.Option(
            "--add", help="Add the recordings to enrolled speakers (equal to enrolling all at once)."
        ),
    ] = False,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
) -> None:
    """Enroll speakers: every sub-folder of SPEAKERS_DIR, or one --speaker NAME from files/folders.

    Features are extracted with the feature settings stored in the model.

    Example: spkid enroll model/ speakers/    or    spkid enroll model/ --speaker bob bob_1.flac bob_2.flac

    Grow a speaker: spkid enroll model/ --speaker bob --add bob_3.flac
    """
    from spkid.recognizer import enroll_from_audio, speakers_in_folder

    if speaker is None:
        if len(paths) != 1:
            raise typer.BadParameter(
                "give one SPEAKERS_DIR, or --speaker NAME with the speaker's files", param_hint="PATHS"
            )
        speakers = speakers_in_folder(paths[0])
    else:
        speakers = {speaker: list(paths)}
    result = enroll_from_audio(
        model_dir,
        speakers,
        replace=replace,
        add=add,
        skip_bad=skip_bad,
        n_jobs=n_jobs,
        progress=progress_enabled(ctx),
    )
    report_skipped(ctx, result.skipped)
    for name, n_files in result.enrolled.items():
        typer.echo(f"enrolled {name} ({n_files} file{'' if n_files == 1 else 's'})")


@app.command()
def identify(
    ctx: typer.Context,
    model_dir: ModelDir,
    recordings: Annotated[
        list[Path],
        typer.Argument(
            metavar="RECORDING...", help="Audio files or folders to identify.", show_default=False
        ),
    ],
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=0, help="Speakers listed per recording (0 = all).")
    ] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (a list of results).")
    ] = False,
    open_set: Annotated[
        bool,
        typer.Option(
            "--open-set", help="Answer 'unknown' when even the best speaker scores below threshold."
        ),
    ] = False,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Open-set threshold on the (normalised) score.")
    ] = None,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
    timings: Annotated[
        bool,
        typer.Option(
            "--timings",
            help="Print to stderr where the time went: start-up (imports), model, bank, features, scoring.",
        ),
    ] = False,
) -> None:
    """Rank the enrolled speakers for each recording, best first, with their scores.

    Example: spkid identify model/ unknown.wav --top-k 3 --json
    """
    from spkid.recognizer import identify as identify_recordings

    spent: dict[str, float] | None = {"startup_s": process_age_s()} if timings else None
    outcome = identify_recordings(
        model_dir,
        recordings,
        top_k=top_k,
        open_set=open_set,
        threshold=threshold,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress_enabled(ctx),
        timings=spent,
    )
    report_skipped(ctx, outcome.skipped)
    if spent is not None:
        typer.echo("timings: " + json.dumps({key: round(value, 4) for key, value in spent.items()}), err=True)
    if as_json:
        typer.echo(json.dumps([result.to_dict() for result in outcome.results], indent=2))
        return
    for result in outcome.results:
        typer.echo(f"{result.recording}: {result.speaker}")
        for rank, (name, score) in enumerate(result.scores, start=1):
            typer.echo(f"  {rank:>3}. {name}  {score:+.4f}")


@app.command()
def verify(
    ctx: typer.Context,
    model_dir: ModelDir,
    recordings: Annotated[
        list[Path],
        typer.Argument(metavar="RECORDING...", help="Audio files or folders to check.", show_default=False),
    ],
    speaker: Annotated[str, typer.Option("--speaker", "-s", help="The claimed speaker.", show_default=False)],
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Accept when the score is at or above this.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
) -> None:
    """Score recordings against one claimed speaker and accept or reject each.

    Example: spkid verify model/ --speaker alice claim.wav --threshold 0.5
    """
    from spkid.recognizer import verify as verify_recordings

    outcome = verify_recordings(
        model_dir,
        speaker,
        recordings,
        threshold=threshold,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress_enabled(ctx),
    )
    report_skipped(ctx, outcome.skipped)
    if as_json:
        typer.echo(json.dumps([result.to_dict() for result in outcome.results], indent=2))
        return
    for result in outcome.results:
        decision = "accept" if result.accepted else "reject"
        typer.echo(
            f"{result.recording}: {decision} {speaker} (score {result.score:+.4f}, threshold "
            f"{result.threshold:+.4f})"
        )


app.command("list")(cli_speakers.list_speakers)
app.command()(cli_speakers.remove)
app.command("rebuild-bank")(cli_speakers.rebuild_bank)


# ------------------------------------------------------------------------------------------------ experiments
app.command()(cli_experiments.score)
app.command()(cli_experiments.evaluate)
app.command()(cli_experiments.calibrate)
app.command()(cli_experiments.run)
app.command()(cli_experiments.demo)
app.command()(cli_experiments.download)
