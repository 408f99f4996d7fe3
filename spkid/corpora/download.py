"""Download a LibriSpeech subset from OpenSLR (resource 12): resumable, checksummed, safely extracted.

The archive is fetched into ``<dest>/<subset>.tar.gz.part``, resuming with an HTTP ``Range`` request after
an interruption, then renamed and checked against the published MD5 (and the SHA-256 torchaudio pins).
Only then is it extracted, into a staging folder that is moved into place as a whole: a bad checksum or an
unsafe archive member (absolute path, ``..``, link, device) leaves nothing extracted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import spkid
from spkid.corpora.librispeech import SUBSETS
from spkid.errors import DataError

__all__ = ["LIBRISPEECH_BASE_URL", "LIBRISPEECH_MD5", "LIBRISPEECH_SHA256", "download_librispeech"]

LIBRISPEECH_BASE_URL = "https://www.openslr.org/resources/12"
#: MD5 sums published with the archives on https://www.openslr.org/12 (md5sum.txt).
LIBRISPEECH_MD5: dict[str, str] = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
#: SHA-256 sums of the same archives, as pinned by torchaudio.datasets.LIBRISPEECH.
LIBRISPEECH_SHA256: dict[str, str] = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
_BLOCK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def download_librispeech(
    subset: str,
    dest: str | Path,
    *,
    base_url: str = LIBRISPEECH_BASE_URL,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    keep_archive: bool = False,
    timeout_s: float = 60.0,
) -> Path:
    """Download and extract one LibriSpeech subset; returns ``<dest>/LibriSpeech/<subset>``.

    Parameters
    ----------
    subset : str
        One of :data:`spkid.corpora.librispeech.SUBSETS`, e.g. ``"test-other"``.
    dest : str or Path
        Where the archive goes and ``LibriSpeech/<subset>`` is extracted.
    base_url : str
        Folder URL holding ``<subset>.tar.gz`` (a mirror, or a local server in tests).
    md5, sha256 : str, optional
        Expected checksums. When neither is given the published ones for ``subset`` are used.
    progress : bool
        Show a progress bar on stderr.
    keep_archive : bool
        Keep the ``.tar.gz`` after extraction.
    timeout_s : float
        Socket timeout of each network operation.

    Raises
    ------
    DataError
        Unknown subset, network or HTTP failure (the partial file is kept so a re-run resumes), checksum
        mismatch (the archive is deleted), or an archive that is unsafe or lacks ``LibriSpeech/<subset>``.
    """
    if subset not in SUBSETS:
        raise DataError(f"unknown LibriSpeech subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    if md5 is None and sha256 is None:
        md5, sha256 = LIBRISPEECH_MD5[subset], LIBRISPEECH_SHA256[subset]
    dest = Path(dest)
    target = dest / "LibriSpeech" / subset
    if target.is_dir():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{subset}.tar.gz"
    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        _fetch(f"{base_url.rstrip('/')}/{subset}.tar.gz", part, progress=progress, timeout_s=timeout_s)
        os.replace(part, archive)
    _verify(archive, md5=md5, sha256=sha256)
    _extract(archive, dest, subset)
    if not keep_archive:
        archive.unlink()
    return target


def _fetch(url: str, part: Path, *, progress: bool, timeout_s: float) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already there."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"spkid/{spkid.__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the partial file is already whole
            return
        raise DataError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: download failed ({getattr(exc, 'reason', exc)}); re-run to retry") from None
    with response:
        total = response.headers.get("Content-Length")
        total = int(total) if total is not None and total.isdigit() else None
        mode = "ab"
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                raise DataError(f"{url}: server answered the resume request with an unexpected range")
        else:  # the server ignored the Range header: start again from the first byte
            offset, mode = 0, "wb"
        expected_end = offset + total if total is not None else None
        with open(part, mode) as handle, _progress_bar(progress, part.name, expected_end, offset) as advance:
            try:
                _copy(response, handle, advance)
            except (OSError, http.client.HTTPException) as exc:
                raise DataError(f"{url}: download interrupted ({exc!r}); re-run to resume") from None
    if expected_end is not None and part.stat().st_size != expected_end:
        raise DataError(
            f"{url}: download interrupted at {part.stat().st_size} of {expected_end} bytes; re-run to resume"
        )


def _copy(source: BinaryIO, handle: BinaryIO, advance: Callable[[int], object]) -> None:
    while block := source.read(_BLOCK_BYTES):
        handle.write(block)
        advance(len(block))
    handle.flush()
    os.fsync(handle.fileno())


@contextlib.contextmanager
def _progress_bar(
    enabled: bool, label: str, total: int | None, done: int
) -> Iterator[Callable[[int], object]]:
    if not enabled:
        yield lambda n_bytes: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress("{task.description}", *columns, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda n_bytes: bar.advance(task, n_bytes)


def _verify(archive: Path, *, md5: str | None, sha256: str | None) -> None:
    """Check the archive's checksums; on a mismatch delete it (a re-run then downloads afresh)."""
    digests = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    with open(archive, "rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            for digest in digests.values():
                digest.update(block)
    for name, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None and digests[name].hexdigest() != expected.lower():
            archive.unlink()
            raise DataError(
                f"{archive}: {name} checksum mismatch (expected {expected}, got {digests[name].hexdigest()});"
                " the file was deleted, re-run to download it again"
            )


def _extract(archive: Path, dest: Path, subset: str) -> None:
    """Extract into a staging folder, refusing unsafe members, then move ``LibriSpeech/<subset>`` in."""
    staging = dest / f".extract-{subset}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _extract_member(tar, member, staging, archive)
        extracted = staging / "LibriSpeech" / subset
        if not extracted.is_dir():
            raise DataError(f"{archive}: archive does not contain LibriSpeech/{subset}/")
        (dest / "LibriSpeech").mkdir(exist_ok=True)
        for entry in (staging / "LibriSpeech").iterdir():  # README, SPEAKERS.TXT, ... next to the subsets
            if not (dest / "LibriSpeech" / entry.name).exists():
                os.replace(entry, dest / "LibriSpeech" / entry.name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in member.name:
        raise DataError(f"{archive}: unsafe member {member.name!r} (absolute or escapes the destination)")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: unsafe member {member.name!r} (links and devices are refused)")
    target = staging.joinpath(*name.parts)
    if staging.resolve() not in target.resolve().parents and target.resolve() != staging.resolve():
        raise DataError(f"{archive}: unsafe member {member.name!r} (escapes the destination)")
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with source, open(target, "wb") as handle:
        shutil.copyfileobj(source, handle, _BLOCK_BYTES)
