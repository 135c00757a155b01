"""Load the demo store into an existing PostgreSQL (docker-compose's seed step).

    SEED_ADMIN_URL=postgresql://postgres:...@postgres/store SEED_READER_PASSWORD=... python -m dbmcp.demo.seed

Idempotent: does nothing when the `store` schema already exists.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from dbmcp.demo.launcher import ROLE, load_store


async def seed(admin_url: str, reader_password: str, scale: float = 1.0) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = 'store'"):
            return "store schema already present; nothing to do"
        counts = await load_store(conn, scale=scale, reader_password=reader_password)
        return f"loaded {sum(counts.values()):,} rows into {len(counts)} tables; role {ROLE} can read them"
    finally:
        await conn.close()


def main() -> int:
    url, password = os.environ.get("SEED_ADMIN_URL"), os.environ.get("SEED_READER_PASSWORD")
    if not url or not password:
        print("seed: set SEED_ADMIN_URL and SEED_READER_PASSWORD", file=sys.stderr)
        return 2
    try:
        print("seed:", asyncio.run(seed(url, password)))
    except (OSError, asyncpg.PostgresError) as e:
        print(f"seed: failed: {type(e).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
