"""The official MCP SDK's low-level server with dbmcp's tools registered, built on first use.

The fast front (front.py) answers the common stateless requests itself; everything else — the 2026 protocol,
GET/DELETE, batches, malformed input, stateful sessions — is served here by the SDK's Streamable HTTP transport.
Importing the SDK's server and client packages costs about 0.35 s and 30 MB, so a server that only ever sees
the common requests never pays it: the SDK is imported and its session manager started by the first request
that needs it, and stopped with the app.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from starlette.types import ASGIApp, Receive, Scope, Send

from dbmcp import __version__
from dbmcp.permissions import Caller, nobody
from dbmcp.tools import Tools

MAX_BODY = 4 * 1024 * 1024  # the SDK's default: a tool call is small
INSTRUCTIONS = (
    "Read-only access to databases. Start with list_databases, then list_objects and describe_object; "
    "query with the engine's tool. Results are capped: check `truncated`."
)
CAPABILITIES = {"tools": {"listChanged": False}}


@dataclass(frozen=True)
class HostRules:
    """DNS-rebinding protection: the Host (and Origin, when sent) values this server answers to."""

    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)

    def allows(self, host: str | None, origin: str | None) -> bool:
        return _allowed(host, self.allowed_hosts) and (origin is None or _allowed(origin, self.allowed_origins))


def _allowed(value: str | None, patterns: list[str]) -> bool:
    """The SDK's rule: an exact entry, or `name:*` for any port."""
    return bool(value) and any(value == p or (p.endswith(":*") and value.startswith(p[:-1])) for p in patterns)


class SdkServer:
    """An ASGI app: the SDK's Streamable HTTP transport over a low-level `Server` holding dbmcp's handlers."""

    def __init__(self, tools: Tools, rules: HostRules, stateless: bool):
        self.tools = tools
        self.rules = rules
        self.stateless = stateless
        self._asgi: ASGIApp | None = None
        self._building: asyncio.Future[ASGIApp] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def started(self) -> bool:
        return self._asgi is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._asgi or await self.start()
        await app(scope, receive, send)

    async def start(self) -> ASGIApp:
        # one build, whoever asks first; shielded, so a client that hangs up mid-build cancels only its wait
        if self._building is None:
            self._building = asyncio.ensure_future(self._build())
        building = self._building
        try:
            self._asgi = await asyncio.shield(building)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._building is building:
                self._building = None  # a failed start is retried by the next request
            raise
        return self._asgi

    async def _build(self) -> ASGIApp:
        from mcp.server import Server
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        server = Server("dbmcp", version=__version__, instructions=INSTRUCTIONS, on_list_tools=self._list_tools,
                        on_call_tool=self._call_tool)
        manager = StreamableHTTPSessionManager(
            app=server, json_response=True, stateless=self.stateless, max_request_body_size=MAX_BODY,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                                        allowed_hosts=self.rules.allowed_hosts,
                                                        allowed_origins=self.rules.allowed_origins),
        )
        ready = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(run())
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            self._task.result()  # the manager failed to start: raise its error
        return StreamableHTTPASGIApp(manager)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- handlers registered on the SDK server ---------------------------------------------------------
    @staticmethod
    def _caller(ctx: Any) -> Caller:
        caller = getattr(getattr(ctx.request, "state", None), "caller", None)
        return caller if caller is not None else nobody()

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools.visible(self._caller(ctx)))

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return (await self.tools.call(self._caller(ctx), params.name, params.arguments)).to_sdk()
