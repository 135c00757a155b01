"""`dbmcp demo`: an embedded PostgreSQL with the sample store, served on 127.0.0.1 with auth off.

Everything it creates (the PostgreSQL process, its temp data directory) is removed on Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

from dbmcp.config import load
from dbmcp.demo import dataset
from dbmcp.demo.pg import EmbeddedPostgres

CONFIG = Path(__file__).with_name("demo.yaml")
DATABASE = "store"
ROLE = "dbmcp_demo"  # the least-privilege role dbmcp connects as: SELECT only, read-only by default


async def prepare(pg: EmbeddedPostgres, scale: float = 1.0) -> dict[str, int]:
    """Create the store database on the embedded server and load it (see load_store)."""
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        return await load_store(conn, scale=scale)
    finally:
        await conn.close()


async def load_store(
    conn: asyncpg.Connection, scale: float = 1.0, reader_password: str | None = None
) -> dict[str, int]:
    """Load the dataset and create the least-privilege role dbmcp connects as (SELECT only, read-only)."""
    counts = await dataset.load(conn, scale=scale)
    login = "LOGIN" if reader_password is None else "LOGIN PASSWORD " + _literal(reader_password)
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(
        f"""
        CREATE ROLE {ROLE} {login};
        ALTER ROLE {ROLE} SET default_transaction_read_only = on;
        GRANT CONNECT ON DATABASE "{database}" TO {ROLE};
        GRANT USAGE ON SCHEMA store TO {ROLE};
        GRANT SELECT ON ALL TABLES IN SCHEMA store TO {ROLE};
        REVOKE SELECT ON store.customer_secrets FROM {ROLE};  -- hidden by the config, and by the database
        """
    )
    return counts


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def banner(url: str) -> str:
    return f"""
dbmcp demo: MCP endpoint {url}
  database "store" (sample online store), read-only, auth off, loopback only

Claude Code:
  claude mcp add --transport http dbmcp-demo {url}

Claude Desktop (claude_desktop_config.json, through the mcp-remote gateway):
  {{"mcpServers": {{"dbmcp-demo": {{"command": "npx",
    "args": ["-y", "mcp-remote", "{url}", "--transport", "http-only"]}}}}}}

MCP Inspector:
  npx @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list
  (UI: npx @modelcontextprotocol/inspector, transport "Streamable HTTP", URL {url})

Ctrl-C stops the server and removes the database. Audit lines follow, one per tool call.
"""


def run_demo(port: int) -> int:
    from dbmcp.cli import serve

    started = time.monotonic()
    print("dbmcp demo: starting an embedded PostgreSQL and loading the sample store ...", file=sys.stderr)
    pg = EmbeddedPostgres()
    try:
        pg.start()
        counts = asyncio.run(prepare(pg))
        rows = sum(counts.values())
        print(f"dbmcp demo: loaded {len(counts)} tables, {rows:,} rows in {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        os.environ["DBMCP_DEMO_URL"] = pg.dsn(DATABASE, user=ROLE)
        os.environ["DBMCP_DEMO_PORT"] = str(port)
        config = load(CONFIG)
        print(banner(f"http://127.0.0.1:{config.server.port}{config.server.path}"), flush=True)
        return serve(config)
    finally:
        pg.remove()
        print("dbmcp demo: stopped; embedded PostgreSQL and its data removed", file=sys.stderr)
