"""The audit log: one JSON line per tool call. Never a token, key, password or result value."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from dbmcp.config import AuditConfig

FLUSH_SECONDS = 0.01  # a line reaches the file or stdout at most this long after its call ended


@dataclass(slots=True)
class AuditRecord:
    subject: str | None
    client_id: str | None
    tool: str
    database: str | None
    object: str | None
    statement: str | None
    outcome: str
    reason: str | None
    row_count: int | None
    truncated: bool | None
    elapsed_ms: float
    at: float = field(default_factory=time.time)  # when the call ended (the line may be written a moment later)

    def line(self) -> bytes:
        """The JSON line, newline included."""
        fields = {
            "ts": _timestamp(self.at),
            "subject": self.subject,
            "client_id": self.client_id,
            "tool": self.tool,
            "database": self.database,
            "object": self.object,
            "statement_sha256": (
                hashlib.sha256(self.statement.encode("utf-8", "surrogatepass")).hexdigest() if self.statement else None
            ),
            "outcome": self.outcome,
            "reason": self.reason,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": int(self.elapsed_ms * 100 + 0.5) / 100,  # round(x, 2) costs a correctly rounded dtoa
        }
        try:
            return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:  # a lone surrogate (JSON allows "\ud800"; the SDK's parser keeps it)
            return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


_second: list = [None, ""]  # the last whole second formatted, and its text
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


def _timestamp(at: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T09:25:26.123Z (the date part formatted once a second)."""
    second = int(at)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return _second[1] + _MILLIS[int((at - second) * 1000)]


class AuditLog:
    """Writes records to stdout ("-"), a size-rotated file, or nowhere ("off").

    No logging machinery: the audit line is on every call's path. The lines of the calls that end within
    FLUSH_SECONDS of each other are written (and flushed) in one write, at most FLUSH_SECONDS after the first of
    them ended: under load that is one system call for dozens of calls instead of one each. Closing (graceful
    shutdown) writes what is pending; a process killed outright loses at most that window. Without a running
    loop each line is written at once. Rotation follows logging's RotatingFileHandler naming (audit.jsonl.1 is
    the newest backup).
    """

    def __init__(self, config: AuditConfig):
        self.enabled = config.path != "off"
        self._stdout = config.path == "-"
        self._path = Path(config.path)
        self._max_bytes = config.max_bytes
        self._backups = config.backups
        self._file: BinaryIO | None = None
        self._size = 0
        self._pending: list[AuditRecord] = []
        if self.enabled and not self._stdout:
            self._open()

    def _open(self) -> None:
        self._file = open(self._path, "ab")  # noqa: SIM115 - held open for the life of the server
        self._size = self._file.tell()

    def write(self, record: AuditRecord) -> None:
        if not self.enabled:
            return
        self._pending.append(record)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop running: write it now
                self.flush()

    def flush(self) -> None:
        records, self._pending = self._pending, []
        if not records:
            return
        lines = [record.line() for record in records]
        if self._stdout:
            sys.stdout.write(b"".join(lines).decode())
            sys.stdout.flush()
            return
        if self._file is None:
            return  # closed
        chunk = bytearray()
        for line in lines:
            if self._size + len(chunk) and self._size + len(chunk) + len(line) > self._max_bytes:
                self._write(chunk)
                chunk.clear()
                self._rotate()
            chunk += line
        self._write(chunk)

    def _write(self, data: bytes | bytearray) -> None:
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        if self._backups:
            for i in range(self._backups - 1, 0, -1):
                older = self._path.with_name(f"{self._path.name}.{i}")
                if older.exists():
                    older.replace(self._path.with_name(f"{self._path.name}.{i + 1}"))
            self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        else:
            self._path.unlink(missing_ok=True)
        self._open()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
