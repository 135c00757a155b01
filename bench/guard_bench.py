"""How long the SQL guard takes per query: the legitimate corpus, checked with a real database's catalog.

    .venv/bin/python bench/guard_bench.py [--rounds 20]

Prints mean and p95 microseconds per check, cold (each text parsed for the first time) and warm (the parse
cache hit, as when an agent repeats a query).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbmcp.allowlist import Allowlist  # noqa: E402
from dbmcp.connectors.postgres_catalog import GUARD_FACTS, guard_policy  # noqa: E402
from dbmcp.demo.launcher import DATABASE, prepare  # noqa: E402
from dbmcp.demo.pg import EmbeddedPostgres  # noqa: E402
from dbmcp.guards import sql as guard  # noqa: E402
from tests.guards.sql_corpus import EXCLUDE, INCLUDE, LEGIT  # noqa: E402


async def load_policy(pg: EmbeddedPostgres) -> guard.SqlPolicy:
    await prepare(pg, scale=0.02)
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    facts = await conn.fetchrow(GUARD_FACTS)
    await conn.close()
    return guard_policy(facts, Allowlist(INCLUDE, EXCLUDE).allows, [], 30.0)


def measure(policy: guard.SqlPolicy, rounds: int) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    for r in range(rounds):
        for sql in LEGIT:
            text = f"{sql} -- {r}" if not sql.rstrip().endswith(";") else sql  # a new text: a cold parse
            t = time.perf_counter()
            guard.check_query(text, policy)
            cold.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            guard.check_query(text, policy)
            warm.append((time.perf_counter() - t) * 1e6)
    return cold, warm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    with EmbeddedPostgres() as pg:
        policy = asyncio.run(load_policy(pg))
    cold, warm = measure(policy, a.rounds)
    for name, values in (("cold (parse + check)", cold), ("warm (cached parse, check)", warm)):
        values.sort()
        print(f"{name}: mean {statistics.mean(values):.0f} us, p95 {values[int(len(values) * 0.95)]:.0f} us, "
              f"max {values[-1]:.0f} us over {len(values)} checks of {len(LEGIT)} analyst queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
