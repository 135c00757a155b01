"""The audit log: contract fields, nothing secret, size-based rotation."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

from dbmcp import audit
from dbmcp.audit import AuditLog, AuditRecord, _timestamp
from dbmcp.config import AuditConfig


def record(i: int) -> AuditRecord:
    return AuditRecord("alice", "cli", "sql_query", "sales", None, f"select {i}", "ok", None, 1, False, 1.5)


def test_a_line_holds_the_contract_fields_in_order():
    line = AuditRecord("alice", "cli", "sql_query", "sales", None, "select 1", "ok", None, 1, False, 1.23456).line()
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    fields = json.loads(line)
    assert list(fields) == ["ts", "subject", "client_id", "tool", "database", "object", "statement_sha256",
                            "outcome", "reason", "row_count", "truncated", "elapsed_ms"]
    assert fields["statement_sha256"] == hashlib.sha256(b"select 1").hexdigest() and fields["elapsed_ms"] == 1.23
    unknown = json.loads(AuditRecord(None, None, "nope", None, None, None, "error", "unknown tool", None, None, 0.004)
                         .line())
    assert unknown["statement_sha256"] is None and unknown["subject"] is None and unknown["elapsed_ms"] == 0.0
    assert _timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert _timestamp(1_764_064_622.9995) == "2025-11-25T09:57:02.999Z"
    assert _timestamp(1_764_064_623.25) == "2025-11-25T09:57:03.250Z"  # the next second, its date part anew


def test_lines_and_rotation(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(path=str(path), max_bytes=2048, backups=2))
    for i in range(100):
        log.write(record(i))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # older ones dropped past `backups`
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["statement_sha256"] and "select 99" not in path.read_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", last["ts"]), last["ts"]
    assert set(last) == {"ts", "subject", "client_id", "tool", "database", "object", "statement_sha256", "outcome",
                         "reason", "row_count", "truncated", "elapsed_ms"}


def test_appends_across_restarts_and_off(tmp_path):
    path = tmp_path / "audit.jsonl"
    for _ in range(2):
        log = AuditLog(AuditConfig(path=str(path)))
        log.write(record(1))
        log.close()
    assert len(path.read_text().splitlines()) == 2
    off = AuditLog(AuditConfig(path="off"))
    off.write(record(1))
    off.close()


def test_stdout(capsys):
    log = AuditLog(AuditConfig(path="-"))
    log.write(record(7))
    assert json.loads(capsys.readouterr().out)["tool"] == "sql_query"


async def test_calls_ending_within_the_flush_window_share_one_write_and_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "FLUSH_SECONDS", 0.2)  # wide enough that a slow machine still batches them all
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(path=str(path), max_bytes=4096, backups=20))

    def lines() -> list[str]:
        return [line for p in sorted(tmp_path.iterdir(), reverse=True) for line in p.read_text().splitlines()]

    writes = []
    real_write = log._write
    log._write = lambda data: (writes.append(len(data)), real_write(data))  # count the system calls
    order = []
    for i in range(20):  # calls ending across several event-loop iterations, within the window
        for n in (i, 20 + i):
            log.write(record(n))
            order.append(n)
        await asyncio.sleep(0)
    assert lines() == []
    await asyncio.sleep(0.6)
    files = list(tmp_path.iterdir())
    assert len(files) > 1 and all(p.stat().st_size <= 4096 for p in files)
    assert len(writes) == len(files)  # one write per file the batch filled: one system call for 40 calls
    sha = [json.loads(line)["statement_sha256"] for line in lines()]
    assert sha == [hashlib.sha256(f"select {n}".encode()).hexdigest() for n in order]  # all, in order
    log.write(record(40))
    log.close()  # what is pending is written on close (graceful shutdown)
    assert len(lines()) == 41


def test_a_lone_surrogate_is_escaped_not_a_lost_batch(tmp_path):
    """JSON may carry "\ud800" and the SDK's parser keeps it; orjson refuses to write it, and one such record
    must not cost the lines written with it."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(path=str(path)))
    log.write(record(1))
    log.write(AuditRecord("alice", "cli", "sql\ud800", "sales", None, "select '\ud800'", "error", "bad \udfff", None,
                          None, 1.5))
    log.write(record(2))
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["tool"] for r in lines] == ["sql_query", "sql\ud800", "sql_query"]
    assert lines[1]["reason"] == "bad \udfff" and len(lines[1]["statement_sha256"]) == 64
