"""A lean front for the hot path of stateless Streamable HTTP; everything else goes to the SDK's transport.

In stateless mode the SDK builds a transport, memory streams, a dispatcher and a task per request: about 1 ms
of CPU before a tool runs. Agents call tools in tight loops, so this front answers the requests that need
none of that itself — a POST carrying one JSON-RPC message for `tools/call`, `tools/list`, `ping`, `initialize`
(a known handshake-era version) or `notifications/initialized`, on a handshake-era protocol version (or none),
with valid Host/Origin, Content-Type and Accept headers — through the same tool handlers the SDK server has
registered (dbmcp.tools, dbmcp.sdk), with the SDK's types for validation. Anything else (other notifications,
the 2026 protocol, GET/DELETE, batches, malformed input, a header problem) is passed to the SDK unchanged, body
included, so its answers and status codes stay the spec's; the SDK is started by the first such request.
tests/test_front.py checks that both paths answer the same requests identically.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import orjson
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbmcp import __version__
from dbmcp.permissions import Caller, nobody
from dbmcp.results import dumps
from dbmcp.sdk import CAPABILITIES, INSTRUCTIONS, MAX_BODY, HostRules
from dbmcp.tools import Tools

FAST_METHODS = frozenset({"tools/call", "tools/list", "ping", "initialize", "notifications/initialized"})
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastFront:
    def __init__(self, sdk: ASGIApp, tools: Tools, rules: HostRules, max_body: int = MAX_BODY):
        self.sdk = sdk
        self.tools = tools
        self.rules = rules
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or not self._headers_fit(scope):
            await self.sdk(scope, receive, send)
            return
        body, complete = await _read_body(receive, self.max_body)
        replay = _replay(body, receive)
        message = _fast_request(body) if complete else None
        if message is None:
            await self.sdk(scope, replay, send)
            return
        if "id" not in message:  # notifications/initialized: accepted, nothing to answer (as the SDK does)
            await send({"type": "http.response.start", "status": 202,
                        "headers": [*_JSON_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        result = await self._answer(scope, message)
        if result is None:  # params the SDK should judge (it answers -32602 in its own words)
            await self.sdk(scope, replay, send)
            return
        payload = f'{{"jsonrpc":"2.0","id":{dumps(message["id"])},"result":{result}}}'.encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, scope: Scope, message: dict[str, Any]) -> str | None:
        caller: Caller = scope.get("state", {}).get("caller") or nobody()
        method, params = message["method"], message.get("params")
        if method == "ping":
            return "{}"
        if method == "initialize":
            version = (params or {}).get("protocolVersion")
            if version not in HANDSHAKE_PROTOCOL_VERSIONS or not _valid(types.InitializeRequestParams, params):
                return None
            return dumps({"capabilities": CAPABILITIES, "instructions": INSTRUCTIONS, "protocolVersion": version,
                          "serverInfo": {"name": "dbmcp", "version": __version__}})
        if method == "tools/list":
            if params is not None and not _valid(types.PaginatedRequestParams, params):
                return None
            return dumps({"tools": self.tools.visible_json(caller)})
        try:
            call = types.CallToolRequestParams.model_validate(params)
        except ValidationError:
            return None
        return (await self.tools.call(caller, call.name, call.arguments)).to_json()

    def _headers_fit(self, scope: Scope) -> bool:
        headers = {k: v for k, v in scope["headers"] if k in _WANTED}
        version = headers.get(b"mcp-protocol-version")
        if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            return False
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if content_type != "application/json" or not _accepts_json(headers.get(b"accept", b"").decode("latin-1")):
            return False
        origin = headers.get(b"origin")
        return self.rules.allows(headers.get(b"host", b"").decode("latin-1"),
                                 origin.decode("latin-1") if origin is not None else None)


_WANTED = frozenset({b"mcp-protocol-version", b"content-type", b"accept", b"host", b"origin"})


def _accepts_json(accept: str) -> bool:
    """The SDK's Accept rule for JSON responses (RFC 7231 wildcards included)."""
    kinds = [part.strip().split(";")[0].strip().lower() for part in accept.split(",")]
    return any(kind in ("*/*", "application/json", "application/*") for kind in kinds)


def _fast_request(body: bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(body)  # stricter than json (no NaN, lone surrogates, huge ints): those go to the SDK
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or message.get("method") not in FAST_METHODS:
        return None
    if message["method"] == "notifications/initialized":
        return message if "id" not in message and "params" not in message else None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None  # a notification, or an id only the SDK should judge
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return None
    return message


def _valid(model: Any, params: dict) -> bool:
    try:
        model.model_validate(params)
    except ValidationError:
        return False
    return True


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it is all there (False past `limit`: the SDK answers 413)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
