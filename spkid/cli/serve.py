"""The ``spkid serve`` command: the model resident behind an HTTP JSON API (see ``docs/serve.md``).

A plain function with typer annotations; :mod:`spkid.cli.main` registers it on the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spkid.cli.support import ModelDir, info

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    model_dir: ModelDir,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; other than loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port (0: any free port).")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File whose first line is the bearer token (else $SPKID_SERVE_TOKEN; never given as an "
            "option).",
        ),
    ] = None,
    allow_paths: Annotated[
        bool,
        typer.Option("--allow-paths", help="Accept paths of audio files on this machine as well as uploads."),
    ] = False,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Larger request bodies get HTTP 413.")
    ] = 20.0,
    max_duration: Annotated[
        float, typer.Option("--max-duration", help="Longer recordings (seconds) get HTTP 413.")
    ] = 120.0,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=0, help="Default speakers listed by /identify.")
    ] = 5,
) -> None:
    """Serve MODEL_DIR over HTTP: identify, verify, enroll, remove, list; API docs at /docs.

    Enrollments and removals made with the CLI are seen without a restart. Stop with Ctrl-C or SIGTERM
    (requests in flight are finished first).

    Example: SPKID_SERVE_TOKEN=s3cret spkid serve model/ --host 0.0.0.0 --port 8000
    """
    from spkid.serve import ServeSettings, read_token, run

    settings = ServeSettings(
        model_dir,
        host=host,
        port=port,
        token=read_token(token_file),
        allow_paths=allow_paths,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_duration_s=max_duration,
        default_top_k=top_k,
    ).check()
    run(settings, announce=lambda line: info(ctx, line))
