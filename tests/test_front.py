"""The fast front answers exactly as the SDK's transport would: same status, headers that matter, and body."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
import uvicorn

from dbmcp.auth.gate import AuthGate
from dbmcp.config import Config
from dbmcp.demo.pg import free_port
from dbmcp.server import App

H = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
V = {**H, "MCP-Protocol-Version": "2025-06-18"}


def call(i, name, args, **extra):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args, **extra}}


SQL = {"database": "store", "sql": "select id, label from lab.many order by id"}
def initialize(i, version, **extra):
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}, **extra}
    return {"jsonrpc": "2.0", "id": i, "method": "initialize", "params": params}


CASES = [  # (headers, body) — served by the front when fast, else passed to the SDK: the answers must match
    (H, initialize(100, "2025-06-18")),
    (H, initialize(101, "2025-03-26")),
    (H, initialize(102, "2024-11-05")),
    (H, initialize(103, "2025-11-25", capabilities={"roots": {"listChanged": True}})),
    (V, {"jsonrpc": "2.0", "method": "notifications/initialized"}),
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
    (H, initialize(19, "1999-01-01")),
    (H, {"jsonrpc": "2.0", "id": 27, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}),
    (H, initialize(28, "2026-07-28")),
    (V, {"jsonrpc": "2.0", "method": "notifications/initialized", "params": {"x": 1}}),
    (V, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
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
    sdk_only = AuthGate(app.sdk, config, None)

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
    for headers, body in CASES[:13]:
        assert (await _post(url + "/mcp", headers, body)).status_code in (200, 202)
    assert reached == []
    await _post(url + "/mcp", H, initialize(29, "2026-07-28"))  # the 2026 protocol: the SDK's
    assert reached == ["/mcp"]


def test_the_sdk_is_imported_only_when_needed():
    import subprocess
    import sys

    code = ("import sys; from dbmcp.config import Config; from dbmcp.server import App; "
            "App(Config.model_validate({'databases': {'x': {'engine': 'postgres', 'url': 'postgresql://u@h/x'}}})); "
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
