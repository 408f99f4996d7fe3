"""``spkid serve``: an HTTP JSON service with the model resident (FastAPI on uvicorn, extra ``spkid[serve]``).

The public face of the service; its modules, one job each (imports point down the list):

- :mod:`~spkid.serve.settings` :class:`ServeSettings` (address, limits, token) and :func:`read_token`;
- :mod:`~spkid.serve.model` the model as loaded at one state of the directory (the memory-mapped speaker
  bank, searched as ``spkid identify`` searches it), and when that state changed;
- :mod:`~spkid.serve.service` :class:`SpeakerService`, the resident model behind the endpoints: identify,
  verify, enroll, remove, list, reloaded when the model directory changes, the CPUs shared by requests;
- :mod:`~spkid.serve.app` :func:`create_app` (the FastAPI application) and :func:`run` (uvicorn).

Importing this package does not import FastAPI or uvicorn; building or running the application does.
See ``docs/serve.md``.
"""

from spkid.serve.app import INSTALL_HINT, create_app, run
from spkid.serve.service import NotFoundError, SpeakerService, TooLargeError, Upload
from spkid.serve.settings import DEFAULT_HOST, TOKEN_VARIABLE, ServeSettings, read_token

__all__ = [
    "DEFAULT_HOST",
    "INSTALL_HINT",
    "TOKEN_VARIABLE",
    "NotFoundError",
    "ServeSettings",
    "SpeakerService",
    "TooLargeError",
    "Upload",
    "create_app",
    "read_token",
    "run",
]
