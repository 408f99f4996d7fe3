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
from spkid.cli import serve as cli_serve
from spkid.cli import speakers as cli_speakers
from spkid.cli.data_dirs import AllowPipes, audio_inputs, by_utterance_id
from spkid.cli.decisions import exit_if_rejected, print_identifications, print_verifications
from spkid.cli.support import (
    ModelDir,
    NJobs,
    Overrides,
    SkipBad,
    SpkidGroup,
    Timings,
    configure_logging,
    freeze_objects_at_exit,
    log_steps,
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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Timestamped detail on stderr: EM iterations (train-ubm), features and each speaker "
            "(enroll), the time of each step (identify, verify), trials scored (score).",
        ),
    ] = False,
) -> None:
    """GMM-UBM speaker identification and verification."""
    ctx.obj = {"quiet": quiet, "debug": debug}
    configure_logging(quiet=quiet, debug=debug, verbose=verbose)
    freeze_objects_at_exit()


# ------------------------------------------------------------------------------------------------ model
@app.command("train-ubm")
def train_ubm(
    ctx: typer.Context,
    model_dir: ModelDir,
    audio_paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="AUDIO_PATH...",
            help="Audio files or folders (searched recursively), or a Kaldi data dir / wav.scp.",
            show_default=False,
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
    allow_pipes: AllowPipes = False,
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
    with audio_inputs(audio_paths, allow_pipes=allow_pipes) as (files, _):
        result = train_ubm_from_audio(
            model_dir,
            files,
            config,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            progress=progress_enabled(ctx),
            overwrite=overwrite,
            cache_dir=feature_store,
            iteration_log=not ctx.obj["quiet"] and not progress_enabled(ctx),  # a log: a line per iteration
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
    held_out = result.cohort_frames_held_out
    typer.echo(
        f"trained UBM ({result.n_components} components x {result.n_features} features, "
        f"{result.sample_rate} Hz front-end) on {result.n_files} files: "
        f"{result.n_frames - held_out:,} frames"
        + (f" ({result.n_frames:,} speech frames, {held_out:,} held out for the cohort)" if held_out else "")
        + f"; cohort of {result.cohort_size}; model in {model_dir}"
    )
    if result.level_kept is not None:
        typer.echo(
            f"features.cmvn auto: a second model without CMVN in {result.level_kept}; once enough speakers "
            "with two recordings are enrolled (3 to 10), it is kept if their recordings keep their level, "
            "this one (loudness removed) otherwise"
        )
    if result.companion is not None:
        from spkid.recognizer.bands import is_wideband_companion
        from spkid.store import ModelStore

        # the bands as stored: the main model's bottom and the companion's edge follow the configured band
        main, companion = (ModelStore.open(path).feature_config for path in (model_dir, result.companion))
        wideband = is_wideband_companion(result.companion)
        band = "wideband" if wideband else "narrowband"
        reach = f"up to {companion['f_max_hz']:g} Hz" if wideband else f"from {companion['f_min_hz']:g} Hz"
        typer.echo(
            f"features.bands auto: this model's band starts at {main['f_min_hz']:g} Hz (recordings of any "
            f"bandwidth); a {band} companion {reach} in {result.companion} scores {band} recordings of "
            f"speakers enrolled on {band} audio"
        )


app.command()(cli_speakers.enroll)  # here, so --help lists the commands in pipeline order


@app.command()
def identify(
    ctx: typer.Context,
    model_dir: ModelDir,
    recordings: Annotated[
        list[Path],
        typer.Argument(
            metavar="RECORDING...",
            help="Audio files or folders to identify, or a Kaldi data dir / wav.scp.",
            show_default=False,
        ),
    ],
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=0, help="Speakers listed per recording (0 = all).")
    ] = 5,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document: a list of results, each with its score_kind."),
    ] = False,
    open_set: Annotated[
        bool,
        typer.Option(
            "--open-set",
            help="Reject (speaker null, exit code 3) when even the best speaker scores below threshold.",
        ),
    ] = False,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Open-set threshold on the (normalised) score.")
    ] = None,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
    allow_pipes: AllowPipes = False,
    timings: Timings = False,
    backend: cli_speakers.BatchBackend = None,
    scheduler: cli_speakers.Scheduler = None,
) -> None:
    """Rank the enrolled speakers for each recording, best first, with their scores.

    RECORDING may be a Kaldi data dir or wav.scp: one result per utterance id.

    With --open-set a recording whose best score is below the threshold is rejected: "speaker": null and
    "accepted": false in --json, where every result carries the "threshold" it was decided on and the
    "score_kind" of its scores ("calibrated LLR ..." or "raw score: frame-averaged LLR ...").
    Exit code with --open-set: 0 when every recording is accepted, 3 when any is rejected, 1 on an error,
    2 on a usage error.

    Example: spkid identify model/ unknown.wav --top-k 3 --json
    """
    from spkid.recognizer import identify as identify_recordings

    spent = {"startup_s": process_age_s()}  # shown with --timings (JSON) and --verbose (a line per step)
    with audio_inputs(recordings, allow_pipes=allow_pipes) as (files, utterance_ids):
        outcome = identify_recordings(
            model_dir,
            files,
            top_k=top_k,
            open_set=open_set,
            threshold=threshold,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            progress=progress_enabled(ctx),
            timings=spent,
            backend=cli_speakers.backend_of(backend, scheduler),
            scheduler=scheduler,
        )
    outcome = by_utterance_id(outcome, utterance_ids)  # a Kaldi data dir: one result per utterance id
    report_skipped(ctx, outcome.skipped)
    log_steps("identify", spent, n_recordings=len(outcome.results))
    if timings:
        typer.echo("timings: " + json.dumps({key: round(value, 4) for key, value in spent.items()}), err=True)
    print_identifications(ctx, outcome, as_json=as_json)
    if open_set:
        exit_if_rejected(outcome.results)


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
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document: a list of results, each with its score_kind."),
    ] = False,
    n_jobs: NJobs = 1,
    skip_bad: SkipBad = False,
    timings: Timings = False,
) -> None:
    """Score recordings against one claimed speaker and accept or reject each.

    Exit code: 0 when every recording is accepted, 3 when any is rejected, 1 on an error, 2 on a usage
    error.

    Example: spkid verify model/ --speaker alice claim.wav --threshold 0.5
    """
    from spkid.recognizer import verify as verify_recordings

    spent = {"startup_s": process_age_s()}  # shown with --timings (JSON) and --verbose (a line per step)
    outcome = verify_recordings(
        model_dir,
        speaker,
        recordings,
        threshold=threshold,
        n_jobs=n_jobs,
        skip_bad=skip_bad,
        progress=progress_enabled(ctx),
        timings=spent,
    )
    report_skipped(ctx, outcome.skipped)
    log_steps("verify", spent, n_recordings=len(outcome.results))
    if timings:
        typer.echo("timings: " + json.dumps({key: round(value, 4) for key, value in spent.items()}), err=True)
    print_verifications(ctx, outcome, speaker, as_json=as_json)
    exit_if_rejected(outcome.results)


app.command("list")(cli_speakers.list_speakers)
app.command()(cli_speakers.remove)
app.command()(cli_serve.serve)
app.command("rebuild-bank")(cli_speakers.rebuild_bank)


# ------------------------------------------------------------------------------------------------ experiments
app.command()(cli_experiments.score)
app.command()(cli_experiments.evaluate)
app.command()(cli_experiments.calibrate)
app.command()(cli_experiments.fuse)
app.command()(cli_experiments.run)
app.command()(cli_experiments.demo)
app.command()(cli_experiments.download)
