"""The ``spkid`` command line: thin typer commands that parse arguments, make one call into the API, print.

:mod:`~spkid.cli.support` holds the shared options, logging and error handling; :mod:`~spkid.cli.main` the
app and the commands train-ubm, identify and verify; it registers :mod:`~spkid.cli.speakers` (enroll, list,
remove, rebuild-bank), :mod:`~spkid.cli.serve` (serve) and :mod:`~spkid.cli.experiments` (score, evaluate,
calibrate, run, demo, download). ``app`` is the console script's entry point.
"""

from spkid.cli.main import app

__all__ = ["app"]
