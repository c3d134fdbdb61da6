"""Opening a market data file: plain, .gz or .zip, decompressed as it is read, with a size limit."""

from __future__ import annotations

import contextlib
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from stress_pipeline.market.errors import BarFileError

CSV_BLOCK_BYTES = 1024**2
"""Bytes of CSV text parsed per block. Small blocks keep the reader's own memory near 50 MB whatever
the file (16 MiB blocks cost over 200 MB in flight) at the same speed (`stress-pipeline bench ingest`)."""


@contextlib.contextmanager
def open_decompressed(path: Path, max_bytes: int | None = None) -> Iterator[BinaryIO]:
    """The bytes of a data file, decompressed as they are read (.gz; .zip: its CSV member).

    With ``max_bytes``, reading past that many decompressed bytes raises a :class:`BarFileError`,
    so a small archive cannot expand past the size limit. Unreadable or corrupt files raise one too.
    """
    name = path.name.lower()
    kind = "gzip" if name.endswith(".gz") else "zip" if name.endswith(".zip") else None
    try:
        with contextlib.ExitStack() as stack:
            raw: BinaryIO = stack.enter_context(open(path, "rb"))
            stream: BinaryIO = raw
            if kind == "gzip":
                stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[arg-type]
            elif kind == "zip":
                archive = stack.enter_context(zipfile.ZipFile(raw))
                stream = stack.enter_context(archive.open(_zip_member(path, archive)))  # type: ignore[assignment]
            if max_bytes is not None and kind is not None:
                stream = io.BufferedReader(_Limited(stream, path, max_bytes), CSV_BLOCK_BYTES)  # type: ignore[assignment]
            yield stream
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BarFileError(path, f"not a readable gzip file: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise BarFileError(path, f"not a readable zip file: {exc}") from None
    except OSError as exc:
        raise BarFileError(path, f"cannot be read: {exc.strerror or exc}") from None


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    members = [m for m in archive.namelist() if not m.endswith("/")]
    csvs = [m for m in members if m.lower().endswith(".csv")] or members
    if not csvs:
        raise BarFileError(path, "the zip archive holds no file")
    return csvs[0]


class _Limited(io.RawIOBase):
    """A stream that refuses to yield more than ``limit`` bytes (a decompressed size limit)."""

    def __init__(self, stream: BinaryIO, path: Path, limit: int):
        self._stream, self._path, self._limit, self._count = stream, path, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        self._count += count
        if self._count > self._limit:
            raise BarFileError(
                self._path, f"larger than the limit of {self._limit:,} bytes once decompressed (max_file_bytes)"
            )
        return count
