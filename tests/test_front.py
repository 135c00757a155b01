"""The fast front answers exactly as the SDK's transport would: same status, headers that matter, and body."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
import uvicorn
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

from dbmcp.auth.gate import AuthGate
from dbmcp.config import Config
from dbmcp.demo.pg import free_port
from dbmcp.server import App

H = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
V = {**H, "MCP-Protocol-Version": "2025-06-18"}


def call(i, name, args, **extra):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args, **extra}}


SQL = {"database": "store", "sql": "select id, label from lab.many order by id"}
CASES = [  # (headers, body) — served by the front when fast, else passed to the SDK: the answers must match
    (V, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    (V, {"jsonrpc": "2.0", "id": "s", "method": "tools/list", "params": {}}),
    (H, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ({**V, "MCP-Protocol-Version": "2025-03-26"}, {"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    ({**V, "MCP-Protocol-Version": "2025-11-25"}, call(4, "list_databases", {})),
    (V, call(5, "sql_query", SQL)),
    (V, call(6, "sql_query", {"database": "store", "sql": "select 1 as one, 'x' as s, 1.5::numeric as n"})),
    (V, call(7, "sql_query", {"database": "store", "sql": "delete from lab.many"})),
    (V, call(8, "sql_query", {"database": "nope", "sql": "select 1"})),
    (V, call(9, "sql_query", {"database": "store"})),
    (V, call(10, "no_such_tool", {})),
    (V, call(11, "describe_object", {"database": "store", "object": "lab.many"})),
    (V, {"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": {"arguments": {}}}),
    (V, {"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": {"name": 5}}),
    (V, {"jsonrpc": "2.0", "id": 14, "method": "tools/call"}),
    (V, {"jsonrpc": "2.0", "id": 15, "method": "tools/list", "params": {"cursor": 7}}),
    (V, {"jsonrpc": "2.0", "id": None, "method": "ping"}),
    (V, {"jsonrpc": "2.0", "id": True, "method": "ping"}),
    (V, {"jsonrpc": "1.0", "id": 16, "method": "ping"}),
    (V, {"jsonrpc": "2.0", "method": "notifications/initialized"}),
    (V, {"jsonrpc": "2.0", "id": 17, "method": "resources/list"}),
    (V, [{"jsonrpc": "2.0", "id": 18, "method": "ping"}]),
    (V, b"{not json"),
    (H, {"jsonrpc": "2.0", "id": 19, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    ({**V, "Accept": "text/html"}, {"jsonrpc": "2.0", "id": 20, "method": "tools/list"}),
    ({**V, "Accept": "*/*"}, {"jsonrpc": "2.0", "id": 21, "method": "tools/list"}),
    ({**V, "Content-Type": "text/plain"}, {"jsonrpc": "2.0", "id": 22, "method": "tools/list"}),
    ({**V, "Host": "evil.example"}, {"jsonrpc": "2.0", "id": 23, "method": "tools/list"}),
    ({**V, "Origin": "http://evil.example"}, {"jsonrpc": "2.0", "id": 24, "method": "tools/list"}),
    ({**V, "Origin": "http://localhost:3000"}, {"jsonrpc": "2.0", "id": 25, "method": "ping"}),
    ({**V, "MCP-Protocol-Version": "1999-01-01"}, {"jsonrpc": "2.0", "id": 26, "method": "tools/list"}),
]


def _normalize(text: str) -> str:
    return re.sub(r"untrusted-data-[0-9a-f]{16}", "untrusted-data-X", text)


def _decoded(response: httpx.Response):
    try:
        return json.loads(_normalize(response.text))
    except ValueError:
        return response.text


@pytest.fixture(scope="module")
def served(store_url):
    """One App on a real uvicorn: /mcp through the front, /sdk straight to the SDK's transport (same auth gate)."""
    config = Config.model_validate({
        "databases": {"store": {"engine": "postgres", "url": store_url, "include": ["lab.*"]}},
        "audit": {"path": "off"},
    })
    app = App(config)
    sdk_only = AuthGate(StreamableHTTPASGIApp(app.session_manager), config, None)

    async def both(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/sdk":
            await sdk_only({**scope, "path": "/mcp"}, receive, send)
        else:
            await app.asgi(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(both, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def _post(url, headers, body) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(url, content=content, headers=headers)


@pytest.mark.parametrize(("headers", "body"), CASES)
async def test_front_answers_like_the_sdk(served, headers, body):
    _, url = served
    fast, sdk = await _post(url + "/mcp", headers, body), await _post(url + "/sdk", headers, body)
    assert fast.status_code == sdk.status_code
    assert fast.headers.get("content-type") == sdk.headers.get("content-type")
    assert _decoded(fast) == _decoded(sdk)


async def test_the_front_takes_the_hot_path(served, monkeypatch):
    """The fast requests never reach the SDK's transport (else this front would save nothing)."""
    app, url = served
    reached = []

    async def record(scope, receive, send):
        reached.append(scope["path"])
        await sdk(scope, receive, send)

    sdk = app._front.sdk
    monkeypatch.setattr(app._front, "sdk", record)
    for headers, body in CASES[:8]:
        assert (await _post(url + "/mcp", headers, body)).status_code == 200
    assert reached == []
    await _post(url + "/mcp", *CASES[19])  # a notification: the SDK's
    assert reached == ["/mcp"]
