"""The audit log: one JSON line per tool call. Never a token, key, password or result value."""

from __future__ import annotations

import datetime
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dbmcp.config import AuditConfig
from dbmcp.results import dumps


@dataclass
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

    def line(self) -> str:
        return dumps(
            {
                "ts": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "subject": self.subject,
                "client_id": self.client_id,
                "tool": self.tool,
                "database": self.database,
                "object": self.object,
                "statement_sha256": hashlib.sha256(self.statement.encode()).hexdigest() if self.statement else None,
                "outcome": self.outcome,
                "reason": self.reason,
                "row_count": self.row_count,
                "truncated": self.truncated,
                "elapsed_ms": round(self.elapsed_ms, 2),
            }
        )


class AuditLog:
    """Writes records to stdout ("-"), a size-rotated file, or nowhere ("off").

    One write and flush per line, no logging machinery: the audit line is on every call's path. Rotation
    follows logging's RotatingFileHandler naming (audit.jsonl.1 is the newest backup).
    """

    def __init__(self, config: AuditConfig):
        self.enabled = config.path != "off"
        self._stdout = config.path == "-"
        self._path = Path(config.path)
        self._max_bytes = config.max_bytes
        self._backups = config.backups
        self._file: BinaryIO | None = None
        self._size = 0
        if self.enabled and not self._stdout:
            self._open()

    def _open(self) -> None:
        self._file = open(self._path, "ab")  # noqa: SIM115 - held open for the life of the server
        self._size = self._file.tell()

    def write(self, record: AuditRecord) -> None:
        if not self.enabled:
            return
        if self._stdout:
            sys.stdout.write(record.line() + "\n")
            sys.stdout.flush()
            return
        data = record.line().encode() + b"\n"
        if self._size and self._size + len(data) > self._max_bytes:
            self._rotate()
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
        if self._file is not None:
            self._file.close()
            self._file = None
