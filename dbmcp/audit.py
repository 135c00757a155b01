"""The audit log: one JSON line per tool call. Never a token, key, password or result value."""

from __future__ import annotations

import datetime
import hashlib
import logging
import logging.handlers
import sys
from dataclasses import dataclass

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
    """Writes records to stdout ("-"), a size-rotated file, or nowhere ("off")."""

    def __init__(self, config: AuditConfig):
        self._logger = logging.getLogger(f"dbmcp.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self.enabled = config.path != "off"
        if not self.enabled:
            return
        if config.path == "-":
            handler: logging.Handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.handlers.RotatingFileHandler(
                config.path, maxBytes=config.max_bytes, backupCount=config.backups, encoding="utf-8"
            )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(handler)

    def write(self, record: AuditRecord) -> None:
        if self.enabled:
            self._logger.info(record.line())

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
