"""The ``spkid`` commands that look after a model's speakers: enroll, list, remove, rebuild-bank.

Plain functions with typer annotations; :mod:`spkid.cli.main` registers them on the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spkid.cli.data_dirs import AllowPipes, speakers_to_enroll
from spkid.cli.support import (
    ModelDir,
    NJobs,
    SkipBad,
    info,
    progress_enabled,
    report_skipped,
)

__all__ = ["BatchBackend", "Scheduler", "backend_of", "enroll", "list_speakers", "rebuild_bank", "remove"]

BatchBackend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Where a batch runs: local (this machine; --n-jobs worker processes), joblib, or dask.",
        show_default=False,
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://HOST:8786 (implies --backend dask; the model directory and audio "
        "on a filesystem the workers share). Without it, dask starts a local cluster of --n-jobs workers.",
    ),
]


def backend_of(backend: str | None, scheduler: str | None) -> str:
    """The backend ``--backend`` and ``--scheduler`` mean together (a scheduler implies dask)."""
    return backend if backend is not None else ("dask" if scheduler is not None else "local")


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
    allow_pipes: AllowPipes = False,
    backend: BatchBackend = None,
    scheduler: Scheduler = None,
    final: Annotated[
        bool,
        typer.Option(
            "--final",
            help="No speakers will follow: make the features.cmvn auto choice now (under 10 speakers it "
            "waits while their levels leave it unclear).",
        ),
    ] = False,
) -> None:
    """Enroll speakers: every sub-folder of SPEAKERS_DIR, or one --speaker NAME from files/folders.

    A Kaldi data dir (wav.scp with utt2spk or spk2utt, optional segments) enrolls its speakers.

    Features are extracted with the feature settings stored in the model.

    Example: spkid enroll model/ speakers/    or    spkid enroll model/ --speaker bob bob_1.flac bob_2.flac

    Grow a speaker: spkid enroll model/ --speaker bob --add bob_3.flac

    Many speakers on a Dask cluster: spkid enroll model/ speakers/ --backend dask --scheduler tcp://HOST:8786
    """
    from spkid.recognizer import enroll_from_audio

    with speakers_to_enroll(paths, speaker, allow_pipes=allow_pipes) as speakers:
        result = enroll_from_audio(
            model_dir,
            speakers,
            replace=replace,
            add=add,
            skip_bad=skip_bad,
            n_jobs=n_jobs,
            progress=progress_enabled(ctx),
            backend=backend_of(backend, scheduler),
            scheduler=scheduler,
            final=final,
        )
    report_skipped(ctx, result.skipped)
    if result.level_choice is not None:  # a cmvn: auto model, not yet settled
        info(ctx, f"features.cmvn auto: {result.level_choice.describe()}")
    for name, n_files in result.enrolled.items():
        typer.echo(f"enrolled {name} ({n_files} file{'' if n_files == 1 else 's'})")


def list_speakers(
    ctx: typer.Context,
    model_dir: ModelDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print the model summary as JSON.")] = False,
) -> None:
    """List the enrolled speakers, one per line (a model summary goes to stderr).

    Example: spkid list model/
    """
    from spkid.recognizer import describe_model

    summary = describe_model(model_dir)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    band, in_companion = (
        ("wideband", summary.wideband_speakers)
        if summary.wideband_speakers is not None
        else ("narrowband", summary.narrowband_speakers)
    )
    info(
        ctx,
        f"{model_dir}: UBM {summary.n_components} x {summary.n_features}, "
        f"{summary.sample_rate} Hz, CMVN {summary.cmvn}, normalization {summary.normalization}, "
        f"{len(summary.speakers)} speakers"
        + ("" if in_companion is None else f" ({len(in_companion)} also in the {band} companion)"),
    )
    for name in summary.speakers:
        typer.echo(name)


def remove(
    ctx: typer.Context,
    model_dir: ModelDir,
    speaker: Annotated[
        str, typer.Option("--speaker", "-s", help="The speaker to remove.", show_default=False)
    ],
) -> None:
    """Remove an enrolled speaker from the model.

    Example: spkid remove model/ --speaker alice
    """
    from spkid.recognizer import remove_speaker

    remove_speaker(model_dir, speaker)
    typer.echo(f"removed {speaker} from {model_dir}")


def rebuild_bank(model_dir: ModelDir) -> None:
    """Rebuild the speaker bank that identify and verify read, from the speaker files.

    identify and verify rebuild it themselves (with a warning) when it is missing, stale or corrupt; this
    does it ahead of time, e.g. after copying speaker files by hand.

    Example: spkid rebuild-bank model/
    """
    from spkid.recognizer import rebuild_speaker_bank

    n_speakers = rebuild_speaker_bank(model_dir)
    typer.echo(f"rebuilt the speaker bank of {model_dir} ({n_speakers} speakers)")
