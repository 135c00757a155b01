"""`dbmcp serve | check | demo` (see the contract in README.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from dbmcp import __version__
from dbmcp.config import Config, ConfigError, load

log = logging.getLogger("dbmcp")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dbmcp", description="A read-only, scoped MCP server for databases.")
    parser.add_argument("--version", action="version", version=f"dbmcp {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the server until SIGINT/SIGTERM")
    serve_p.add_argument("--config", required=True, metavar="PATH")
    serve_p.add_argument("--host")
    serve_p.add_argument("--port", type=int)
    serve_p.add_argument("--workers", type=int, default=1, help="worker processes (stateless mode: any answers any)")
    check_p = sub.add_parser("check", help="validate the config and connect to every database")
    check_p.add_argument("--config", required=True, metavar="PATH")
    demo_p = sub.add_parser("demo", help="serve a sample store database on an embedded PostgreSQL")
    demo_p.add_argument("--port", type=int, default=8765)
    sub.add_parser("keygen", help="print a new API key and its sha256 for auth.api_keys")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        if args.command == "serve":
            config = load(args.config, host=args.host, port=args.port)
            if args.workers > 1:
                os.environ["DBMCP_LOG_LEVEL"] = args.log_level
                return serve_workers(config, args.config, args.host, args.port, args.workers)
            return serve(config)
        if args.command == "check":
            return asyncio.run(check(load(args.config)))
        if args.command == "keygen":
            return keygen()
        from dbmcp.demo.launcher import run_demo

        return run_demo(args.port)
    except ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("mcp", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "asyncio"):
        logging.getLogger(name).setLevel(quiet)


def serve(config: Config) -> int:
    import uvicorn

    from dbmcp.server import App

    app = App(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app.asgi, host=config.server.host, port=config.server.port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=config.server.shutdown_timeout_s, server_header=False,
        )
    )
    # uvicorn drains in-flight requests on SIGINT/SIGTERM, then re-raises the signal to the handler it found
    # installed: make that a no-op so a graceful stop exits 0 rather than dying by the signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()  # uvloop and httptools when installed (uvicorn[standard])
    if not server.started:
        return 1
    log.info("dbmcp stopped")
    return 0


def keygen() -> int:
    from dbmcp.auth.api_keys import generate

    key, digest = generate()
    print(f"key:        {key}")
    print(f"key_sha256: {digest}")
    print("Give the key to the client (Authorization: Bearer <key>); put only key_sha256 in the config.")
    return 0


def serve_workers(config: Config, path: str, host: str | None, port: int | None, workers: int) -> int:
    """N processes on one socket (uvicorn's supervisor); each loads the same config. Needs stateless mode."""
    import uvicorn

    if not config.server.stateless:
        print("config error: --workers needs server.stateless: true (sessions live in one process)", file=sys.stderr)
        return 2
    os.environ["DBMCP_CONFIG"] = path
    os.environ["DBMCP_HOST"] = host or ""
    os.environ["DBMCP_PORT"] = str(port) if port is not None else ""
    uvicorn.run("dbmcp.server:app_from_environment", factory=True, host=config.server.host, port=config.server.port,
                workers=workers, log_config=None, access_log=False, lifespan="on", server_header=False,
                timeout_graceful_shutdown=config.server.shutdown_timeout_s)
    return 0


async def check(config: Config) -> int:
    from dbmcp.errors import ToolError
    from dbmcp.server import build_connectors
    from dbmcp.tools import COMMON_TOOLS

    status = 0
    for name, connector in build_connectors(config).items():
        tools = [t.name for t in COMMON_TOOLS[1:]] + [t.name for t in connector.tools]
        try:
            await connector.start()
            await connector.ping()
            warnings = await connector.check()
            print(f"{name} ({connector.engine}): ok; tools: {', '.join(tools)}")
            for warning in warnings:
                print(f"  warning: {warning}")
        except ToolError as e:
            status = 1
            print(f"{name} ({connector.engine}): {e.message}")
        finally:
            await connector.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
