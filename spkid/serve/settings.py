"""The settings of ``spkid serve``: where it listens, its limits, its bearer token (never a command option).

A token is read from the environment variable :data:`TOKEN_VARIABLE` or from a file. It is optional when the
service listens on a loopback address and required on any other (:meth:`ServeSettings.check`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import ConfigError

__all__ = ["DEFAULT_HOST", "TOKEN_VARIABLE", "ServeSettings", "read_token"]

#: The address served by default: this machine only.
DEFAULT_HOST = "127.0.0.1"
#: The environment variable a bearer token is read from.
TOKEN_VARIABLE = "SPKID_SERVE_TOKEN"


def read_token(
    token_file: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> str | None:
    """The bearer token: the first line of ``token_file`` if given, else ``$SPKID_SERVE_TOKEN``, else None.

    Raises
    ------
    ConfigError
        The file cannot be read, or the token found is empty.

    Examples
    --------
    >>> read_token(environ={"SPKID_SERVE_TOKEN": "s3cret"})
    's3cret'
    >>> read_token(environ={}) is None
    True
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {token_file}: cannot read it ({exc})") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"--token-file {token_file}: the file holds no token on its first line")
        return token
    if TOKEN_VARIABLE not in environ:
        return None
    token = environ[TOKEN_VARIABLE].strip()
    if not token:
        raise ConfigError(f"{TOKEN_VARIABLE} is set but empty: give a token or unset it")
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """How ``spkid serve`` runs.

    Parameters
    ----------
    model_dir : Path
    host : str
        Address to listen on (default loopback only).
    port : int
    token : str or None
        Bearer token every request but ``/health`` must present (required off loopback).
    allow_paths : bool
        Accept ``path`` fields naming audio files on the server as well as uploads.
    max_upload_bytes : int
        Larger request bodies get 413.
    max_duration_s : float
        Longer recordings get 413.
    default_top_k : int
        Speakers listed by ``/identify`` when the request does not say.

    Examples
    --------
    >>> settings = ServeSettings(Path("model"))
    >>> settings.host, settings.port, settings.token is None
    ('127.0.0.1', 8000, True)
    >>> ServeSettings(Path("model"), host="0.0.0.0").check()
    Traceback (most recent call last):
    ...
    spkid.errors.ConfigError: --host 0.0.0.0 is not a loopback address: a token is required ...
    """

    model_dir: Path
    host: str = DEFAULT_HOST
    port: int = 8000
    token: str | None = None
    allow_paths: bool = False
    max_upload_bytes: int = 20 * 1024 * 1024
    max_duration_s: float = 120.0
    default_top_k: int = 5

    def check(self) -> ServeSettings:
        """Refuse settings that cannot work or would expose the model (returns ``self`` when fine)."""
        if not is_loopback(self.host) and self.token is None:
            raise ConfigError(
                f"--host {self.host} is not a loopback address: a token is required there; set "
                f"{TOKEN_VARIABLE} or give --token-file"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0-65535")
        if self.max_upload_bytes <= 0 or self.max_duration_s <= 0:
            raise ConfigError("--max-upload-mb and --max-duration must be positive")
        if self.default_top_k < 0:
            raise ConfigError(f"--top-k {self.default_top_k}: must be 0 (all speakers) or more")
        return self
