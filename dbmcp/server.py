"""The ASGI app: the MCP endpoint (the fast front, and the official SDK behind it) plus health, readiness and
metrics.

Lifespan: connectors start (pools are lazy, a database that is down does not stop startup) and what startup built
is frozen out of the garbage collector's passes; on shutdown the SDK's session manager (if a request started it)
stops and every pool is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dbmcp.audit import AuditLog
from dbmcp.auth.gate import AuthGate, build_verifier, metadata_routes
from dbmcp.config import Config
from dbmcp.connectors import connector_class
from dbmcp.connectors.base import Connector
from dbmcp.errors import ToolError
from dbmcp.front import FastFront
from dbmcp.metrics import Metrics
from dbmcp.sdk import HostRules, SdkServer
from dbmcp.tools import Tools

log = logging.getLogger("dbmcp.server")
_PING_TIMEOUT_S = 5.0


def app_from_environment() -> ASGIApp:
    """The ASGI app of one worker of `dbmcp serve --workers N` (config path and overrides from the parent)."""
    import os

    from dbmcp.cli import setup_logging
    from dbmcp.config import load

    setup_logging(os.environ.get("DBMCP_LOG_LEVEL", "info"))
    port = os.environ.get("DBMCP_PORT")
    config = load(os.environ["DBMCP_CONFIG"], host=os.environ.get("DBMCP_HOST") or None,
                  port=int(port) if port else None)
    return App(config).asgi


def build_connectors(config: Config) -> dict[str, Connector]:
    return {
        name: connector_class(db.engine)(name, db, config.limits_for(name)) for name, db in config.databases.items()
    }


class App:
    """Everything one server process holds: connectors, tool surface, metrics, audit, and the ASGI app."""

    def __init__(self, config: Config, connectors: dict[str, Connector] | None = None):
        self.config = config
        self.connectors = connectors if connectors is not None else build_connectors(config)
        self.metrics = Metrics()
        self.audit = AuditLog(config.audit)
        self.tools = Tools(config, self.connectors, self.audit, self.metrics)
        self.verifier = build_verifier(config)
        rules = host_rules(config)
        self.sdk = SdkServer(self.tools, rules, stateless=config.server.stateless)
        self._front = FastFront(self.sdk, self.tools, rules) if config.server.stateless else self.sdk
        self.asgi = self._build()

    # ---- HTTP -------------------------------------------------------------------------------------
    def _build(self) -> ASGIApp:
        mcp_endpoint = AuthGate(self._front, self.config, self.verifier)
        routes = [
            *metadata_routes(self.config),
            Route(self.config.server.path, endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]
        return McpFirst(self.config.server.path, mcp_endpoint, Starlette(routes=routes, lifespan=self.lifespan))

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await asyncio.gather(*(c.start() for c in self.connectors.values()))
        # What startup built (modules, schemas, pools) lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise took ~60 ms each and stalled large answers (bench: a 10k-row
        # call's median 95 -> 48 ms).
        gc.collect()
        gc.freeze()
        server = self.config.server
        log.info("serving %d database(s) at http://%s:%s%s (auth %s)", len(self.connectors), server.host,
                 server.port, server.path, self.config.auth.mode)
        try:
            yield
        finally:
            await self.sdk.close()
            await asyncio.gather(*(c.close() for c in self.connectors.values()), return_exceptions=True)
            if self.verifier is not None:
                await self.verifier.close()
            self.audit.close()

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        statuses = await self.database_statuses()
        ready = all(s == "ok" for s in statuses.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "databases": statuses},
                            status_code=200 if ready else 503)

    async def database_statuses(self) -> dict[str, str]:
        async def one(connector: Connector) -> str:
            try:
                await asyncio.wait_for(connector.ping(), _PING_TIMEOUT_S)
                return "ok"
            except ToolError as e:
                return e.message
            except TimeoutError:
                return f"database {connector.name!r} did not answer within {_PING_TIMEOUT_S:g} s"

        names = list(self.connectors)
        results = await asyncio.gather(*(one(self.connectors[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


class McpFirst:
    """A POST to the MCP path goes straight to its endpoint, past Starlette's router and middleware (about 5 % of
    a call's CPU); everything else, lifespan included, goes to the Starlette app, which routes that path the same
    way. An exception from the endpoint reaches uvicorn, which answers 500 as Starlette's error middleware would."""

    def __init__(self, path: str, endpoint: ASGIApp, app: Starlette):
        self.path = path
        self.endpoint = endpoint
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path
                and not scope.get("root_path")):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def host_rules(config: Config) -> HostRules:
    """DNS-rebinding protection: Host (and Origin, when sent) must name this server."""
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    if config.server.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        hosts.append(f"[{config.server.host}]" if ":" in config.server.host else config.server.host)
    if config.server.public_url:
        hosts.append(urlsplit(config.server.public_url).netloc)
    hosts.extend(config.server.allowed_hosts)
    allowed_hosts, allowed_origins = [], []
    for host in dict.fromkeys(hosts):
        allowed_hosts += [host, f"{host}:*"] if not _has_port(host) else [host]
        allowed_origins += [f"{scheme}://{h}" for scheme in ("http", "https") for h in
                            ([host, f"{host}:*"] if not _has_port(host) else [host])]
    return HostRules(allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1
