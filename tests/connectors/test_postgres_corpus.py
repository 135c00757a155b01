"""The guard corpus end to end, against a real PostgreSQL connected as a SUPERUSER (the operator's mistake the
guard must survive): every hostile statement is refused and changes nothing; every analyst query answers."""

from __future__ import annotations

import asyncpg
import pytest

from dbmcp.config import Limits, PostgresDatabase
from dbmcp.connectors.postgres import PostgresConnector
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import Refused, ToolError
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
       (SELECT md5(string_agg(t::text, ',' ORDER BY customer_id)) FROM store.customer_secrets t) AS secrets,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
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


SESSION = """
SELECT current_setting('default_transaction_read_only') AS read_only, current_setting('search_path') AS path,
       current_setting('statement_timeout') AS timeout, current_setting('role') AS role,
       (SELECT count(*) FROM pg_listening_channels()) AS listening,
       (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared
"""
CLEAN_SESSION = {"read_only": "on", "path": '"$user", public', "timeout": "5s", "role": "none", "listening": 0,
                 "prepared": 0}


@pytest.fixture(scope="module")
async def superuser(pg):
    """One pooled connection, so that whatever a statement left in its session would show in the next call."""
    db = PostgresDatabase(engine="postgres", url=pg.dsn(DATABASE), include=INCLUDE, exclude=EXCLUDE,
                          pool_max_size=1)
    connector = PostgresConnector("store", db, Limits(max_rows=50, timeout_s=5))
    await connector.start()
    yield connector
    await connector.close()


async def test_hostile_corpus_changes_nothing_as_superuser(pg, superuser):
    """Every hostile statement, through sql_query and sql_explain, is refused by the guard (outcome refused, not a
    database error) and leaves no trace: rows, objects, settings, locks, large objects, files, the session."""
    admin = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        before = await _snapshot(admin)
        not_refused = {}
        for sql, _reason in HOSTILE:
            for tool in (superuser.query, superuser.explain):
                try:
                    await (tool(sql, []) if tool == superuser.query else tool(sql))
                    not_refused[sql] = "answered"
                except Refused:
                    pass
                except ToolError as e:
                    not_refused[sql] = e.message
        after = await _snapshot(admin)
    finally:
        await admin.close()
    assert not_refused == {}
    assert after == before
    session = (await superuser.query(SESSION, [])).data["rows"][0]
    assert dict(zip(CLEAN_SESSION, session, strict=True)) == CLEAN_SESSION


async def test_legitimate_corpus_answers_as_superuser(superuser):
    failures = {}
    for sql in LEGIT:
        try:
            answer = await superuser.query(sql, PARAMS.get(sql, []))
            assert answer.data["row_count"] >= 0
            plan = await superuser.explain(sql)
            assert plan.data["plan"]["Node Type"]
        except ToolError as e:
            failures[sql] = e.message
    assert failures == {}


@pytest.mark.parametrize(
    "template",
    ["select * from {s}.{n}", "select * from {S}.{N}", 'select * from "{s}"."{n}"', "table {s}.{n}",
     "select * from only {s}.{n}", "with x as (select * from {s}.{n}) select 1", "select '{s}.{n}'::regclass",
     "select ' {S}.{N}'::regclass", "select pg_relation_size('{s}.{n}')", "select has_table_privilege('{S}.{N}', 'x')",
     "select null::{s}.{n}", "select null::{S}.{N}[]", "select '{s}.{n}'::regtype", "explain select * from {s}.{n}"],
)
async def test_a_hidden_relation_reads_exactly_like_a_missing_one(superuser, template):
    """The guard's refusal for the excluded table and PostgreSQL's own error for a table that does not exist."""
    messages = []
    for name in ("customer_secrets", "no_such_table"):
        sql = template.format(s="store", n=name, S="STORE", N=name.upper())
        with pytest.raises(ToolError) as e:
            await superuser.query(sql, [])
        messages.append(e.value.message.replace(name, "X"))
    assert messages[0] == messages[1]
