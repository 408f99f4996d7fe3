"""The ``spkid`` commands that look after a model's speakers: list, remove.

Plain functions with typer annotations; :mod:`spkid.cli.main` registers them on the app.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from spkid.cli.support import ModelDir, info

__all__ = ["list_speakers", "rebuild_bank", "remove"]


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
    info(
        ctx,
        f"{model_dir}: UBM {summary.n_components} x {summary.n_features}, "
        f"{summary.sample_rate} Hz, normalization {summary.normalization}, "
        f"{len(summary.speakers)} speakers",
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
