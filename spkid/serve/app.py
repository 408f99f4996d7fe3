"""The HTTP face of ``spkid serve``: a FastAPI application over :class:`~spkid.serve.service.SpeakerService`.

FastAPI, uvicorn and python-multipart come with the optional extra ``spkid[serve]`` and are imported only
when an application is built, so ``import spkid.serve`` works without them. Errors are JSON
``{"error": "<the CLI's one-line message>"}``: 400 for bad input, 401 without the token, 404 for an unknown
speaker, 409 for an existing one, 413 over the size or duration limits.
"""

import hmac
import json
import signal
import threading
from collections.abc import Callable
from typing import Any

from spkid.errors import ConfigError, SpkidError, StoreError
from spkid.serve.service import NotFoundError, SpeakerService, TooLargeError, Upload
from spkid.serve.settings import ServeSettings

__all__ = ["INSTALL_HINT", "create_app", "run"]

INSTALL_HINT = "spkid serve needs FastAPI and uvicorn: pip install 'spkid[serve]'"
#: Seconds a shutdown (SIGTERM, Ctrl-C) waits for requests in flight.
GRACEFUL_SHUTDOWN_S = 30


def status_of(error: SpkidError) -> int:
    """The HTTP status of an error raised by a request."""
    if isinstance(error, TooLargeError):
        return 413
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, StoreError) and "already enrolled" in str(error):
        return 409
    return 400


def _require_web_stack() -> None:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401 - FastAPI needs it for uploads
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


class _BodyLimit:
    """ASGI middleware answering 413 to request bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise TooLargeError(f"request body over the limit of {self.limit} bytes")
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except TooLargeError:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        message = f"request body over the limit of {self.limit} bytes (spkid serve --max-upload-mb)"
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: ServeSettings, service: SpeakerService | None = None) -> Any:
    """The FastAPI application of ``spkid serve`` (needs the ``serve`` extra).

    Examples
    --------
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(f"{tmp.name}/audio", n_speakers=2, n_utterances=2, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=8", "ubm.max_iter=2", "score.cohort_size=2"])
    >>> _ = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> from pathlib import Path
    >>> client = TestClient(create_app(ServeSettings(Path(tmp.name, "model"))))
    >>> client.get("/health").json()
    {'status': 'ok'}
    >>> tmp.cleanup()
    """
    _require_web_stack()
    from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    service = service or SpeakerService(
        settings.model_dir, allow_paths=settings.allow_paths, max_duration_s=settings.max_duration_s
    )
    app = FastAPI(
        title="spkid",
        summary="GMM-UBM speaker identification and verification with the model resident.",
        description=f"Model: {settings.model_dir}. Send audio as multipart uploads (field `audio`).",
    )
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise _Unauthorised()

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, error: _Unauthorised) -> JSONResponse:
        return JSONResponse(
            {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(SpkidError)
    async def spkid_error(request: Request, error: SpkidError) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=status_of(error))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": ("request",), "msg": "invalid"}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)

    async def uploads_of(files: list[UploadFile] | None) -> list[Upload]:
        return [Upload(file.filename or "upload", await file.read()) for file in files or []]

    guarded = [Depends(authorised)]

    @app.get("/health", summary="Whether the model is loaded (no token needed)")
    def health() -> dict[str, Any]:
        return {"status": service.health()["status"]}

    @app.get("/speakers", dependencies=guarded, summary="The enrolled speakers and the model's settings")
    def speakers() -> dict[str, Any]:
        return service.speakers()

    @app.post("/identify", dependencies=guarded, summary="Rank the enrolled speakers for each recording")
    async def identify(
        audio: list[UploadFile] | None = File(None),
        path: list[str] | None = Form(None),
        top_k: int = Form(settings.default_top_k),
        open_set: bool = Form(False),
        threshold: float | None = Form(None),
    ) -> list[dict[str, Any]]:
        uploads = await uploads_of(audio)
        results = await _in_thread(
            service.identify, uploads, path or [], top_k=top_k, open_set=open_set, threshold=threshold
        )
        return [result.to_dict() for result in results]

    @app.post("/verify", dependencies=guarded, summary="Accept or reject each recording as one speaker")
    async def verify(
        speaker: str = Form(...),
        audio: list[UploadFile] | None = File(None),
        path: list[str] | None = Form(None),
        threshold: float | None = Form(None),
    ) -> list[dict[str, Any]]:
        uploads = await uploads_of(audio)
        results = await _in_thread(service.verify, speaker, uploads, path or [], threshold=threshold)
        return [result.to_dict() for result in results]

    @app.post("/speakers/{speaker}", dependencies=guarded, summary="Enroll a speaker from recordings")
    async def enroll(
        speaker: str,
        audio: list[UploadFile] | None = File(None),
        path: list[str] | None = Form(None),
        replace: bool = Form(False),
        final: bool = Form(False),
    ) -> dict[str, Any]:
        uploads = await uploads_of(audio)
        return await _in_thread(service.enroll, speaker, uploads, path or [], replace=replace, final=final)

    @app.delete("/speakers/{speaker}", dependencies=guarded, summary="Remove an enrolled speaker")
    def remove(speaker: str) -> dict[str, Any]:
        return service.remove(speaker)

    return _BodyLimit(app, settings.max_upload_bytes) if settings.max_upload_bytes else app


class _Unauthorised(Exception):
    """A request without the right bearer token."""


async def _in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run blocking work in the server's worker threads, keeping the event loop free."""
    import functools

    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(functools.partial(function, *args, **kwargs))


def run(settings: ServeSettings, *, announce: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C; requests in flight are finished first (up to 30 s), and a SIGTERM
    then ends the process with exit status 0.

    ``announce`` receives one line saying where the service listens, once the model is loaded.

    Examples
    --------
    Settings that would expose the model are refused before anything is loaded:

    >>> from pathlib import Path
    >>> run(ServeSettings(Path("model"), host="0.0.0.0"))
    Traceback (most recent call last):
    ...
    spkid.errors.ConfigError: --host 0.0.0.0 is not a loopback address: a token is required ...
    """
    _require_web_stack()
    import uvicorn

    from spkid.blas import controller

    settings.check()
    # Parallelism comes from concurrent requests and the scorer's own threads: BLAS stays single-threaded,
    # process-wide (a per-request limit would be undone by whichever request finishes first).
    controller().limit(limits=1, user_api="blas")
    app = create_app(settings)
    if announce is not None:
        announce(
            f"serving {settings.model_dir} on http://{settings.host}:{settings.port} (API docs at /docs)"
        )
    # uvicorn shuts down gracefully on SIGTERM, restores the handler it found and raises the signal again:
    # this handler turns it into exit status 0 (a stop asked for, and done), not death by signal (143).
    in_main_thread = threading.current_thread() is threading.main_thread()  # where handlers may be set
    previous = signal.signal(signal.SIGTERM, _stopped) if in_main_thread else None
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            access_log=False,
        )
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)
