"""The guard corpus end to end, against a real PostgreSQL connected as a SUPERUSER (the operator's mistake the
guard must survive): every hostile statement is refused and changes nothing; every analyst query answers."""

from __future__ import annotations

import asyncpg
import pytest

from dbmcp.config import Limits, PostgresDatabase
from dbmcp.connectors.postgres import PostgresConnector
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import ToolError
from tests.guards.sql_corpus import EXCLUDE, HOSTILE, INCLUDE, LEGIT

PARAMS = {
    "select * from store.customers where id = $1": [1],
    "select id, email from store.customers where country_code = $1 and created_at > $2::timestamptz limit 10":
        ["DE", "2024-01-01T00:00:00Z"],
}
FACTS = """
SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM store.products t) AS products,
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM store.warehouses t) AS warehouses,
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM store.reviews t) AS reviews,
       (SELECT count(*) FROM pg_class) AS relations, (SELECT count(*) FROM pg_proc) AS functions,
       (SELECT count(*) FROM pg_namespace) AS schemas, (SELECT count(*) FROM pg_roles) AS roles,
       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
       (SELECT count(*) FROM pg_replication_slots) AS slots,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory') AS advisory_locks,
       (SELECT count(*) FROM pg_prepared_statements) AS prepared,
       (SELECT string_agg(f, ',' ORDER BY f) FROM pg_ls_dir('.') f) AS data_dir,
       (SELECT md5(pg_read_file('postgresql.auto.conf'))) AS auto_conf,
       (SELECT string_agg(rolname || ':' || array_to_string(rolconfig, ';'), ',') FROM pg_roles
        WHERE rolconfig IS NOT NULL) AS role_settings,
       (SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings
        WHERE source NOT IN ('default', 'session', 'client')) AS settings
"""


async def _snapshot(admin: asyncpg.Connection) -> dict:
    """Row counts of every store table, checksums of some, and everything else a write could change."""
    tables = [r[0] for r in await admin.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'store'::regnamespace AND relkind = 'r' ORDER BY 1")]
    counts = {t: await admin.fetchval(f'SELECT count(*) FROM store."{t}"') for t in tables}
    return {"row_counts": counts, **dict(await admin.fetchrow(FACTS))}


@pytest.fixture(scope="module")
async def superuser(pg):
    db = PostgresDatabase(engine="postgres", url=pg.dsn(DATABASE), include=INCLUDE, exclude=EXCLUDE)
    connector = PostgresConnector("store", db, Limits(max_rows=50, timeout_s=5))
    await connector.start()
    yield connector
    await connector.close()


async def test_hostile_corpus_changes_nothing_as_superuser(pg, superuser):
    admin = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        before = await _snapshot(admin)
        answered = []
        for sql, _reason in HOSTILE:
            try:
                await superuser.query(sql, [])
                answered.append(sql)
            except ToolError:
                pass
        after = await _snapshot(admin)
    finally:
        await admin.close()
    assert answered == []
    assert after == before


async def test_legitimate_corpus_answers_as_superuser(superuser):
    failures = {}
    for sql in LEGIT:
        try:
            answer = await superuser.query(sql, PARAMS.get(sql, []))
            assert answer.data["row_count"] >= 0
        except ToolError as e:
            failures[sql] = e.message
    assert failures == {}
