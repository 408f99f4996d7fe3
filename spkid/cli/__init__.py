"""The ``spkid`` command line: thin typer commands that parse arguments, make one call into the API, print.

:mod:`~spkid.cli.support` holds the shared options, logging and error handling; :mod:`~spkid.cli.main` the
app and the model-directory commands; :mod:`~spkid.cli.experiments` the experiment commands (score,
evaluate, calibrate, run, demo, download) it registers. ``app`` is the console script's entry point.
"""

from spkid.cli.main import app

__all__ = ["app"]
