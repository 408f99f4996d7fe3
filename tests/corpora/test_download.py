"""Tests of spkid.corpora.download against a local HTTP server (127.0.0.1, ephemeral port, Range support)."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spkid.corpora.download import LIBRISPEECH_MD5, LIBRISPEECH_SHA256, download_librispeech
from spkid.corpora.librispeech import SUBSETS, list_subset
from spkid.errors import DataError

SUBSET = "dev-clean"


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[name]`` with byte ranges; can ignore Range or cut the body short."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        server = self.server
        name = self.path.rsplit("/", 1)[-1]
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if server.cut_after is not None:  # simulate a dropped connection mid-body
            body = body[: server.cut_after]
            server.cut_after = None
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        server.bytes_sent += len(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    httpd.files, httpd.requests, httpd.bytes_sent = {}, [], 0
    httpd.ignore_range, httpd.cut_after = False, None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/resources/12"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_archive(members: dict[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def librispeech_members(n_bytes: int = 60_000) -> dict[str, bytes]:
    # incompressible payload so the archive is large enough to cut in the middle
    payload = hashlib.shake_256(b"spkid").digest(n_bytes)
    return {
        "LibriSpeech/README.TXT": b"readme\n",
        f"LibriSpeech/{SUBSET}/84/121123/84-121123-0000.flac": payload,
        f"LibriSpeech/{SUBSET}/84/121123/84-121123-0001.flac": payload[::-1],
        f"LibriSpeech/{SUBSET}/84/121123/84-121123.trans.txt": b"84-121123-0000 HELLO\n",
    }


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_published_checksums_cover_every_subset():
    assert set(LIBRISPEECH_MD5) == set(SUBSETS) == set(LIBRISPEECH_SHA256)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in LIBRISPEECH_MD5.values())
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in LIBRISPEECH_SHA256.values())


def test_download_verify_extract(server, tmp_path):
    members = librispeech_members()
    archive = make_archive(members)
    server.files[f"{SUBSET}.tar.gz"] = archive
    target = download_librispeech(
        SUBSET,
        tmp_path,
        base_url=server.base_url,
        md5=md5(archive),
        sha256=hashlib.sha256(archive).hexdigest(),
        progress=False,
    )
    assert target == tmp_path / "LibriSpeech" / SUBSET
    for name, payload in members.items():
        assert (tmp_path / name).read_bytes() == payload
    assert [u.id for u in list_subset(target)] == ["84-121123-0000", "84-121123-0001"]
    assert not (tmp_path / f"{SUBSET}.tar.gz").exists()  # archive removed after extraction
    assert [p.name for p in tmp_path.iterdir()] == ["LibriSpeech"]  # no staging or .part left
    # a second call finds the subset and does not download again
    again = download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5="0" * 32, progress=False)
    assert again == target
    assert len(server.requests) == 1


def test_resume_after_partial_download(server, tmp_path):
    archive = make_archive(librispeech_members())
    server.files[f"{SUBSET}.tar.gz"] = archive
    part = tmp_path / f"{SUBSET}.tar.gz.part"
    part.write_bytes(archive[:20_000])
    download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=False)
    assert server.requests == [(f"/resources/12/{SUBSET}.tar.gz", "bytes=20000-")]
    assert server.bytes_sent == len(archive) - 20_000  # only the missing tail was transferred
    assert (tmp_path / "LibriSpeech" / SUBSET / "84" / "121123" / "84-121123-0000.flac").is_file()


def test_interrupted_download_keeps_part_and_resumes(server, tmp_path):
    archive = make_archive(librispeech_members())
    server.files[f"{SUBSET}.tar.gz"] = archive
    server.cut_after = 25_000
    with pytest.raises(DataError, match=r"download interrupted.*re-run to resume"):
        download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=False)
    part = tmp_path / f"{SUBSET}.tar.gz.part"
    assert part.stat().st_size == 25_000 and not (tmp_path / "LibriSpeech").exists()
    download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=True)
    assert server.requests[-1][1] == "bytes=25000-"
    assert (tmp_path / "LibriSpeech" / SUBSET).is_dir() and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    archive = make_archive(librispeech_members())
    server.files[f"{SUBSET}.tar.gz"] = archive
    server.ignore_range = True
    (tmp_path / f"{SUBSET}.tar.gz.part").write_bytes(b"garbage that must not stay at the front")
    download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=False)
    assert (tmp_path / "LibriSpeech" / "README.TXT").read_bytes() == b"readme\n"


def test_complete_part_file_with_416(server, tmp_path):
    archive = make_archive(librispeech_members())
    server.files[f"{SUBSET}.tar.gz"] = archive
    (tmp_path / f"{SUBSET}.tar.gz.part").write_bytes(archive)
    download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=False)
    assert server.bytes_sent == 0 and (tmp_path / "LibriSpeech" / SUBSET).is_dir()


def test_bad_checksum_extracts_nothing(server, tmp_path):
    archive = make_archive(librispeech_members())
    server.files[f"{SUBSET}.tar.gz"] = archive
    with pytest.raises(DataError, match=r"md5 checksum mismatch \(expected 0{32}, got [0-9a-f]{32}\)"):
        download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []  # no archive, no part, nothing extracted
    with pytest.raises(DataError, match=r"sha256 checksum mismatch"):
        download_librispeech(
            SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), sha256="1" * 64, progress=False
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad_member",
    ["../evil.txt", f"LibriSpeech/{SUBSET}/../../../evil.txt", "/tmp/spkid-evil-absolute.txt", "symlink"],
)
def test_unsafe_members_are_rejected(server, tmp_path, bad_member):
    members = librispeech_members(100)
    extra = []
    if bad_member == "symlink":
        link = tarfile.TarInfo(f"LibriSpeech/{SUBSET}/84/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        extra.append(link)
    else:
        members[bad_member] = b"evil"
    archive = make_archive(members, extra=extra)
    server.files[f"{SUBSET}.tar.gz"] = archive
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"unsafe member"):
        download_librispeech(SUBSET, dest, base_url=server.base_url, md5=md5(archive), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/spkid-evil-absolute.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == [f"{SUBSET}.tar.gz"]  # nothing extracted, no staging


def test_archive_without_the_subset(server, tmp_path):
    archive = make_archive({"LibriSpeech/test-clean/1/2/1-2-0000.flac": b"x"})
    server.files[f"{SUBSET}.tar.gz"] = archive
    with pytest.raises(DataError, match=rf"does not contain LibriSpeech/{SUBSET}/"):
        download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5=md5(archive), progress=False)
    assert not (tmp_path / "LibriSpeech").exists()


def test_http_errors_and_unknown_subset(server, tmp_path):
    with pytest.raises(DataError, match=r"dev-clean.tar.gz: download failed \(HTTP 404"):
        download_librispeech(SUBSET, tmp_path, base_url=server.base_url, md5="0" * 32, progress=False)
    with pytest.raises(DataError, match=r"unknown LibriSpeech subset 'dev-cleen'"):
        download_librispeech("dev-cleen", tmp_path)
    with pytest.raises(DataError, match=r"download failed"):
        download_librispeech(SUBSET, tmp_path, base_url="http://127.0.0.1:9/x", md5="0" * 32, progress=False)
