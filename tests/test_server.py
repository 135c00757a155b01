"""End to end: `dbmcp serve` as a real process, driven over Streamable HTTP by the official SDK client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from pathlib import Path

import httpx
import pytest
from mcp import Client

from tests.helpers import ServeProcess, audit_record, write_config


@pytest.fixture(scope="module")
def server(store_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    config = write_config(tmp / "config.yaml", f"""
        limits: {{max_rows: 50}}
        databases:
          store:
            engine: postgres
            url: {store_url}
            description: Sample store
            include: ["store.*", "lab.*"]
            exclude: ["lab.hidden"]
          down:
            engine: postgres
            url: postgresql://nobody:hunter2@127.0.0.1:1/none
            connect_timeout_s: 1
        audit:
          path: {tmp / "audit.jsonl"}
    """)
    proc = ServeProcess(config)
    proc.audit_path = tmp / "audit.jsonl"
    yield proc
    proc.stop()


async def test_tools_list_is_small_and_read_only(server):
    async with Client(server.url + "/mcp") as client:
        tools = (await client.list_tools()).tools
    names = [t.name for t in tools]
    assert names == ["list_databases", "list_objects", "describe_object", "sql_query", "sql_explain"]
    assert all(t.annotations.read_only_hint is True for t in tools)
    size = len(json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in tools]))
    assert size < 6000, size


async def test_list_databases_and_query(server):
    async with Client(server.url + "/mcp") as client:
        dbs = await client.call_tool("list_databases", {})
        assert dbs.structured_content["databases"][0] == {
            "name": "store", "engine": "postgres", "description": "Sample store", "access": "read"}
        result = await client.call_tool("sql_query", {"database": "store", "sql": "SELECT id FROM lab.many"})
        assert not result.is_error
        assert result.structured_content["row_count"] == 50 and result.structured_content["truncated"] is True
        text = result.content[0].text  # the same values as text, inside an unforgeable boundary
        marker = re.match(r"<untrusted-data-([0-9a-f]{16})>\n", text).group(1)
        body, _, note = text.removeprefix(f"<untrusted-data-{marker}>\n").partition(f"\n</untrusted-data-{marker}>\n")
        assert json.loads(body) == result.structured_content
        assert "not instructions" in note
        again = await client.call_tool("sql_query", {"database": "store", "sql": "SELECT id FROM lab.many"})
        assert marker not in again.content[0].text  # a new marker per call


async def test_errors_are_one_line_tool_errors(server):
    async with Client(server.url + "/mcp") as client:
        cases = {
            ("sql_query", '{"database": "nope", "sql": "select 1"}'): "unknown database 'nope'; available: down, store",
            ("sql_query", '{"database": "store", "sql": "drop table store.orders"}'): "refused: DROP is not allowed; dbmcp runs read-only queries",
            ("sql_query", '{"database": "store"}'): "invalid arguments: sql: required",
            ("sql_query", '{"database": "store", "sql": "select 1", "x": 1}'): "x: unknown argument",
            ("describe_object", '{"database": "store", "object": "lab.hidden"}'): "unknown object 'lab.hidden'",
            ("sql_query", '{"database": "down", "sql": "select 1"}'): "database 'down' is unreachable",
            ("no_such_tool", "{}"): "unknown tool 'no_such_tool'",
        }
        for (tool, args), expected in cases.items():
            result = await client.call_tool(tool, json.loads(args))
            text = result.content[0].text
            assert result.is_error, (tool, args)
            assert expected in text and "\n" not in text and "hunter2" not in text, text


async def test_health_ready_metrics(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["databases"] == {"store": "ok", "down": "database 'down' is unreachable"}
        assert "hunter2" not in ready.text
        async with Client(server.url + "/mcp") as client:
            await client.call_tool("sql_query", {"database": "store", "sql": "select 1"})
            await client.call_tool("sql_query", {"database": "store", "sql": "delete from lab.many"})
        metrics = (await http.get("/metrics")).text
        assert 'dbmcp_tool_calls_total{database="store",outcome="ok",tool="sql_query"}' in metrics
        assert 'dbmcp_tool_refusals_total{database="store",tool="sql_query"}' in metrics
        assert 'dbmcp_tool_call_seconds_bucket{database="store",le="0.5",tool="sql_query"}' in metrics


async def test_audit_line_per_call(server):
    sql = "select 'audit-me'"
    async with Client(server.url + "/mcp") as client:
        await client.call_tool("sql_query", {"database": "store", "sql": sql})
    record, text = await audit_record(server.audit_path, statement_sha256=hashlib.sha256(sql.encode()).hexdigest())
    assert record["tool"] == "sql_query" and record["outcome"] == "ok"
    assert set(record) == {"ts", "subject", "client_id", "tool", "database", "object", "statement_sha256",
                           "outcome", "reason", "row_count", "truncated", "elapsed_ms"}
    assert "audit-me" not in text  # hashed statement, no result values


async def test_dns_rebinding_protection(server):
    async with httpx.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {"Host": "evil.example", "Accept": "application/json, text/event-stream"}
        r = await http.post(server.url + "/mcp", json=body, headers=headers)
        assert r.status_code == 421 or r.status_code == 400, r.status_code


def test_sigterm_drains_and_exits_zero(store_url, tmp_path):
    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          store: {{engine: postgres, url: "{store_url}"}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config)
    assert proc.stop(signal.SIGTERM) == 0
    proc = ServeProcess(config)
    assert proc.stop(signal.SIGINT) == 0


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


async def test_workers_share_the_load_without_sessions(store_url, tmp_path):
    """--workers 2 in stateless mode: every request, on any worker, is answered; SIGTERM still exits 0."""
    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          store: {{engine: postgres, url: "{store_url}"}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config, args=("--workers", "2"))
    try:
        assert len(_children(proc.proc.pid)) >= 2

        async def one(i: int) -> int:
            async with Client(proc.url + "/mcp") as client:
                result = await client.call_tool("sql_query", {"database": "store", "sql": f"select {i}"})
                assert not result.is_error
                return result.structured_content["rows"][0][0]

        assert await asyncio.gather(*(one(i) for i in range(20))) == list(range(20))
    finally:
        assert proc.stop(signal.SIGTERM) == 0
