"""One segment file of the speaker bank: quantised speaker columns, their names, checksums; memory-mapped.

A segment holds a set of speakers' top-C scoring parameters in exactly the 16-bit block layout the scorer
reads (:class:`spkid.score._bank.QuantizedBank`: ``(n_blocks, K, R - 1, B)`` int16 plus float32 scales and
constants), so a reader maps the file and scores straight from the page cache. Layout::

    b"SPKIDBANK1\\n" + 5 spaces     16 bytes of magic
    header length                  8 bytes, little-endian
    header                         JSON: names, shapes, array offsets, the UBM fingerprint, CRC-32s
    arrays                         each at a 4096-byte aligned offset

Every block of speakers carries a CRC-32 of its bytes, checked as the block is scored; the header (with
the names and the cohort statistics) carries its own. A segment is written once, atomically, and never
changed.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spkid.atomic import TEMP_PREFIX, fsync_directory
from spkid.errors import StoreError

try:  # zlib-ng's CRC-32 gives zlib's values ~3x faster (SIMD): at 100,000 speakers the bank is 6 GB to check
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - a platform without zlib-ng wheels: the same values, slower
    from zlib import crc32

__all__ = ["BankCorruptError", "Segment", "SegmentWriter"]

MAGIC = b"SPKIDBANK1\n     "
_ALIGN = 4096
_ARRAYS = ("blocks", "scale", "constant", "cohort_mean", "cohort_std", "cohort_top_c", "cohort_top_k")
#: Arrays a segment written before they existed lacks, and what each of its speakers then holds.
_OPTIONAL = {"cohort_top_k": -1}  # -1: the statistics summarise all the cohort scores


class BankCorruptError(StoreError):
    """A bank file that fails its checksums or cannot be parsed (the bank is rebuilt from the speakers)."""


def _block_crc(blocks: np.ndarray, scale: np.ndarray, constant: np.ndarray, j: int) -> int:
    crc = crc32(np.ascontiguousarray(blocks[j]))
    crc = crc32(np.ascontiguousarray(scale[j]), crc)
    return crc32(np.ascontiguousarray(constant[j]), crc)


class SegmentWriter:
    """Writes a segment of some of the speakers ``candidates`` piece by piece into a temporary file (bounded
    memory: one piece at a time), then renames it into place.

    The header is written last, in room reserved for every candidate's name and the checksums (padded with
    spaces). Call under the writer lock (a killed writer's temporary file is removed by the next one).
    """

    def __init__(
        self,
        directory: Path,
        candidates: list[str],
        shape: tuple[int, int, int],
        *,
        shared: bool,
        ubm_sha256: str,
    ) -> None:
        capacity = len(candidates)
        n_components, n_rows, width = shape
        self.width, self.n_blocks = width, max(1, -(-capacity // width))
        self.directory, self.shared, self.ubm_sha256 = Path(directory), shared, ubm_sha256
        shapes = {
            "blocks": ((self.n_blocks, n_components, n_rows, width), "<i2"),
            "scale": ((self.n_blocks, n_components, width), "<f4"),
            "constant": ((self.n_blocks, n_components, width), "<f4"),
            "cohort_mean": ((capacity,), "<f8"),
            "cohort_std": ((capacity,), "<f8"),
            "cohort_top_c": ((capacity,), "<i8"),
            "cohort_top_k": ((capacity,), "<i8"),
        }
        self.layout: dict[str, list] = {}
        offset = 0
        for key in _ARRAYS:
            shape_of, dtype = shapes[key]
            self.layout[key] = [offset, dtype, list(shape_of)]
            offset += -(-np.dtype(dtype).itemsize * int(np.prod(shape_of)) // _ALIGN) * _ALIGN
        self.names: list[str] = []
        self.cohort: dict[str, list] = {key: [] for key in _ARRAYS[3:]}
        self.block_crc32 = [0] * self.n_blocks
        self._room = len(self._header_json(candidates, [0xFFFFFFFF] * self.n_blocks, 0xFFFFFFFF))
        self.start = -(-(len(MAGIC) + 8 + self._room + 4) // _ALIGN) * _ALIGN
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".spkb", dir=self.directory)
        self.temp = Path(name)
        self._file = os.fdopen(fd, "r+b")
        self._file.truncate(self.start + offset)
        self._written = 0  # blocks written so far

    def _header_json(self, names: list[str], crcs: list[int], cohort_crc: int) -> bytes:
        layout = {key: list(value) for key, value in self.layout.items()}
        for key in _ARRAYS[3:]:
            layout[key][2] = [len(names)]
        header = {
            "names": names,
            "shared": bool(self.shared),
            "ubm_sha256": self.ubm_sha256,
            "arrays": layout,
            "block_crc32": crcs,
            "cohort_crc32": cohort_crc,
        }
        return json.dumps(header, separators=(",", ":")).encode()

    def write(self, names: list[str], arrays: Mapping[str, np.ndarray]) -> None:
        """Append ``names`` (whole blocks, except in the last piece) with their arrays, as
        :func:`spkid.store.bank_store.quantised_speakers` makes them."""
        if len(self.names) % self.width or len(self.names) + len(names) > self.layout["cohort_mean"][2][0]:
            raise StoreError(f"{self.temp}: a bank piece after a partial block, or past the candidates")
        blocks, scale, constant = arrays["blocks"], arrays["scale"], arrays["constant"]
        first = self._written
        for key, values in (("blocks", blocks), ("scale", scale), ("constant", constant)):
            piece = np.ascontiguousarray(values, dtype=self.layout[key][1])
            self._file.seek(self.start + self.layout[key][0] + first * piece[0].nbytes)
            self._file.write(piece.tobytes())
        for j in range(blocks.shape[0]):
            self.block_crc32[first + j] = _block_crc(blocks, scale, constant, j)
        self._written += blocks.shape[0]
        self.names.extend(names)
        for key in _ARRAYS[3:]:
            self.cohort[key].append(np.asarray(arrays[key], self.layout[key][1]))

    def commit(self, target: Path) -> None:
        """Write the cohort statistics and the header, sync, and rename the file to ``target``."""
        padding = {"blocks": 0, "scale": 1.0, "constant": 0.0}
        shapes = {key: self.layout[key][2][1:] for key in padding}
        for j in range(self._written, self.n_blocks):  # blocks no speaker reached: padding, checksummed
            empty = {
                key: np.full((1, *shapes[key]), value, self.layout[key][1]) for key, value in padding.items()
            }
            for key, values in empty.items():
                self._file.seek(self.start + self.layout[key][0] + j * values[0].nbytes)
                self._file.write(values.tobytes())
            self.block_crc32[j] = _block_crc(empty["blocks"], empty["scale"], empty["constant"], 0)
        cohort_crc = 0
        for key in _ARRAYS[3:]:
            values = np.concatenate([np.zeros(0, self.layout[key][1]), *self.cohort[key]])
            self._file.seek(self.start + self.layout[key][0])
            self._file.write(values.tobytes())
            cohort_crc = crc32(values, cohort_crc)
        header = self._header_json(self.names, self.block_crc32, cohort_crc)
        header = header + b" " * (self._room - len(header))
        header += crc32(header).to_bytes(4, "little")
        self._file.seek(0)
        self._file.write(MAGIC + len(header).to_bytes(8, "little") + header)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, target)
        fsync_directory(self.directory)

    def discard(self) -> None:
        """Remove the temporary file (after a failure)."""
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


class Segment:
    """A segment file mapped read-only: its names, cohort statistics and quantised blocks.

    Parameters
    ----------
    file : Path
    """

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        try:
            with open(self.file, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise BankCorruptError(f"{self.file}: cannot map the bank segment ({exc})") from None
        try:
            header, start = self._header()
            self.names: list[str] = [str(name) for name in header["names"]]
            self.shared = bool(header["shared"])
            self.ubm_sha256 = str(header["ubm_sha256"])
            self.block_crc32: list[int] = [int(value) for value in header["block_crc32"]]
            views = {}
            for key in _ARRAYS:
                if key in _OPTIONAL and key not in header["arrays"]:
                    continue
                offset, dtype, shape = header["arrays"][key]
                count = int(np.prod(shape))
                views[key] = np.frombuffer(
                    self._map, dtype=np.dtype(dtype), count=count, offset=start + int(offset)
                ).reshape(shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise BankCorruptError(f"{self.file}: bank segment header is malformed ({exc})") from None
        self.blocks, self.scale, self.constant = views["blocks"], views["scale"], views["constant"]
        self.cohort_mean, self.cohort_std = views["cohort_mean"], views["cohort_std"]
        self.cohort_top_c = views["cohort_top_c"]
        cohort_crc = 0
        for key in _ARRAYS[3:]:
            if key in views:
                cohort_crc = crc32(views[key], cohort_crc)
        absent = np.full(len(self.cohort_mean), _OPTIONAL["cohort_top_k"])
        self.cohort_top_k = views.get("cohort_top_k", absent)
        problems = [
            (cohort_crc != int(header["cohort_crc32"]), "cohort statistics fail their CRC-32"),
            (len(self.block_crc32) != self.blocks.shape[0], "block checksums do not match the blocks"),
            (len(self.names) > self.blocks.shape[0] * self.blocks.shape[3], "more names than columns"),
            (len(self.cohort_mean) != len(self.names), "cohort statistics do not match the names"),
        ]
        for broken, reason in problems:
            if broken:
                raise BankCorruptError(f"{self.file}: {reason}")
        self._verified = np.zeros(self.blocks.shape[0], bool)

    def _header(self) -> tuple[dict[str, Any], int]:
        data = self._map
        if data[: len(MAGIC)] != MAGIC:
            raise BankCorruptError(f"{self.file}: not a spkid bank segment (bad magic)")
        length = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "little")
        if length < 4 or len(MAGIC) + 8 + length > len(data):
            raise BankCorruptError(f"{self.file}: truncated bank segment header")
        raw = data[len(MAGIC) + 8 : len(MAGIC) + 8 + length]
        if crc32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise BankCorruptError(f"{self.file}: bank segment header fails its CRC-32 (corrupt)")
        header = json.loads(raw[:-4].decode())
        start = -(-(len(MAGIC) + 8 + length) // _ALIGN) * _ALIGN
        end = start + max(
            int(o) + np.dtype(d).itemsize * int(np.prod(s)) for o, d, s in header["arrays"].values()
        )
        if end > len(data):
            raise BankCorruptError(f"{self.file}: truncated bank segment ({len(data)} of {end} bytes)")
        return header, start

    @property
    def width(self) -> int:
        """Speakers per block."""
        return int(self.blocks.shape[3])

    def check_block(self, j: int) -> None:
        """Raise :class:`BankCorruptError` naming the file and block when block ``j`` fails its CRC-32."""
        if not self._verified[j]:
            if _block_crc(self.blocks, self.scale, self.constant, j) != self.block_crc32[j]:
                raise BankCorruptError(
                    f"{self.file}: block {j} (speakers {j * self.width}-{(j + 1) * self.width - 1}) fails "
                    "its CRC-32 (corrupt)"
                )
            self._verified[j] = True

    def check_all(self) -> None:
        """Check every block's CRC-32."""
        for j in range(self.blocks.shape[0]):
            self.check_block(j)

    def release(self, first_block: int, stop_block: int) -> None:
        """Drop blocks ``[first_block, stop_block)`` from this process's resident pages (the page cache
        keeps them), so scoring a bank larger than memory holds only the blocks in use."""
        if not hasattr(mmap, "MADV_DONTNEED") or stop_block <= first_block:
            return
        base = self.blocks.__array_interface__["data"][0] - _address(self._map)
        block_bytes = self.blocks[0].nbytes
        begin = (base + first_block * block_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        end = base + stop_block * block_bytes
        try:
            self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)
        except (OSError, ValueError):  # advice only
            pass


def _address(buffer: mmap.mmap) -> int:
    return np.frombuffer(buffer, np.uint8, count=1).__array_interface__["data"][0]
