"""The database as the second wall, tested with the guard switched off (as if it had missed everything), connected
as a SUPERUSER: the READ ONLY transaction, the single prepared statement, the timeouts and the rollback stop what
they can. What they cannot stop as a superuser (file reads, server signals, LOCK ...) only the guard and a
least-privilege role stop: the last tests show both. Then: code the guard cannot see (views, row-security policies,
domains) leaves no session lock behind, because the guard marks such statements opaque."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import asyncpg
import pytest
import sqlglot
from sqlglot import exp

from dbmcp.config import Limits, PostgresDatabase
from dbmcp.connectors.postgres import PostgresConnector
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import Refused, ToolError
from dbmcp.guards import sql as guard
from tests.connectors.test_postgres import admin_objects, make
from tests.connectors.test_postgres_corpus import _snapshot

WRITES = [
    "DELETE FROM store.reviews", "UPDATE store.products SET price = 0", "INSERT INTO store.warehouses VALUES "
    "(99, 'X', 'Y', 'ZZ')", "WITH d AS (DELETE FROM store.reviews RETURNING 1) SELECT count(*) FROM d",
    "SELECT * INTO store.copy FROM store.orders", "CREATE TABLE store.evil (a int)", "CREATE TEMP TABLE t (a int)",
    "DROP TABLE store.reviews", "TRUNCATE store.reviews", "ALTER TABLE store.orders ADD COLUMN x int",
    "CREATE ROLE evil", "GRANT SELECT ON store.customer_secrets TO PUBLIC", "SELECT lo_create(0)",
    "REFRESH MATERIALIZED VIEW store.daily_revenue", "DO $$ BEGIN DELETE FROM store.reviews; END $$",
    "CREATE EXTENSION IF NOT EXISTS pg_prewarm", "COMMENT ON TABLE store.orders IS 'x'", "CREATE DATABASE evil",
]
NOT_IN_A_TRANSACTION = ["VACUUM store.orders", "ALTER SYSTEM SET work_mem = '1GB'", "REINDEX DATABASE store"]
MULTI = ["SELECT 1; DELETE FROM store.reviews", "COMMIT; DELETE FROM store.reviews",
         "SET TRANSACTION READ WRITE; DELETE FROM store.reviews", "ROLLBACK; BEGIN; DELETE FROM store.reviews"]


def _no_guard(sql: str, policy: guard.SqlPolicy) -> guard.Checked:
    """The guard switched off: every statement passes, as if wall one had a hole."""
    try:
        tree = next((t for t in sqlglot.parse(sql, read="postgres") if t is not None), None) or exp.Select()
    except sqlglot.errors.SqlglotError:
        tree = exp.Select()
    return guard.Checked(sql=sql, tree=tree, relations=())


async def _superuser_connector(pg, monkeypatch, check_query):
    """A superuser connector on one pooled connection, with `check_query` standing in for the guard."""
    monkeypatch.setattr(guard, "check_query", check_query)
    db = PostgresDatabase(engine="postgres", url=pg.dsn(DATABASE), include=["*"], exclude=[], pool_max_size=1)
    connector = PostgresConnector("store", db, Limits(max_rows=10, timeout_s=1))
    yield connector
    await connector.close()


@pytest.fixture
async def unguarded(pg, monkeypatch):
    async for connector in _superuser_connector(pg, monkeypatch, _no_guard):
        yield connector


def _vouching_guard(sql: str, policy: guard.SqlPolicy) -> guard.Checked:
    """Worse than no guard: every statement passes and is vouched plain (a query running built-in code only), so
    it runs in an implicit transaction, the path without BEGIN READ ONLY and ROLLBACK."""
    return replace(_no_guard(sql, policy), plain=True)


@pytest.fixture
async def vouched(pg, monkeypatch):
    async for connector in _superuser_connector(pg, monkeypatch, _vouching_guard):
        yield connector


async def _fails(connector: PostgresConnector, sql: str) -> str:
    with pytest.raises(ToolError) as e:
        await connector.query(sql, [])
    assert "\n" not in e.value.message
    return e.value.message


async def _writes_fail_and_change_nothing(pg, connector: PostgresConnector, others: Sequence[str] = ()) -> None:
    """Every write fails read-only (each of `others`: not inside a transaction block); the data is unchanged."""
    admin = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        before = await _snapshot(admin)
        for sql in WRITES:
            message = await _fails(connector, sql)
            assert "read-only transaction" in message, (sql, message)
        for sql in others:
            assert "cannot run inside a transaction block" in await _fails(connector, sql), sql
        assert await _snapshot(admin) == before
    finally:
        await admin.close()


async def test_writes_fail_in_the_read_only_transaction(pg, unguarded):
    await _writes_fail_and_change_nothing(pg, unguarded, NOT_IN_A_TRANSACTION)


async def test_one_prepared_statement_only(unguarded):
    for sql in MULTI:
        assert "cannot insert multiple commands into a prepared statement" in await _fails(unguarded, sql), sql
    for sql in ("SELECT 1; DELETE FROM store.reviews", "SELECT $1::int; DELETE FROM store.reviews"):
        with pytest.raises(ToolError, match="multiple commands"):  # sql_explain too, with and without $n
            await unguarded.explain(sql)


async def test_session_changes_end_with_the_call(unguarded):
    """One pooled connection: what a statement changes in the session is rolled back before the next call."""
    for sql in ("SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "SELECT set_config('default_transaction_read_only', 'off', false)", "SET TRANSACTION READ WRITE",
                "COMMIT", "SELECT set_config('search_path', 'evil', false)", "RESET ALL"):
        await unguarded.query(sql, [])
        assert "read-only transaction" in await _fails(unguarded, "DELETE FROM store.reviews"), sql
    settings = await unguarded.query("SELECT current_setting('default_transaction_read_only'), "
                                     "current_setting('search_path'), current_setting('statement_timeout')", [])
    assert settings.data["rows"] == [["on", '"$user", public', "1s"]]


async def test_a_vouched_statement_still_runs_read_only(pg, vouched):
    await _writes_fail_and_change_nothing(pg, vouched)


async def test_a_vouched_statement_that_changes_the_session_loses_its_connection(vouched):
    """Without ROLLBACK to undo them: PostgreSQL reports a session no longer read-only or with another search_path,
    and the command tag tells a SET from a SELECT; either way the connection is closed, and the next call gets a
    fresh one."""
    for sql in ("SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "SELECT set_config('default_transaction_read_only', 'off', false)", "SET search_path = lab",
                "SELECT set_config('search_path', 'lab', false)", "SET statement_timeout = 0", "COMMIT",
                "SET TRANSACTION READ WRITE", "RESET ALL"):
        assert "changed the database session" in await _fails(vouched, sql), sql
        assert "read-only transaction" in await _fails(vouched, "DELETE FROM store.reviews"), sql
    settings = await vouched.query("SELECT current_setting('default_transaction_read_only'), "
                                   "current_setting('search_path'), current_setting('statement_timeout')", [])
    assert settings.data["rows"] == [["on", '"$user", public', "1s"]]
    assert (await vouched.query("SELECT id FROM store.orders ORDER BY id LIMIT 3", [])).data["rows"] == [[1], [2], [3]]


async def test_timeouts_stop_long_statements_and_lock_waits(pg, unguarded):
    assert "timed out after 1 s" in await _fails(unguarded, "SELECT pg_sleep(100)")
    admin = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        await admin.execute("BEGIN; LOCK TABLE store.warehouses IN ACCESS EXCLUSIVE MODE")
        message = await _fails(unguarded, "SELECT count(*) FROM store.warehouses")  # lock or statement timeout
        assert "lock timeout" in message or "timed out after 1 s" in message
        await admin.execute("ROLLBACK")
    finally:
        await admin.close()
    assert (await unguarded.query("SELECT 1", [])).data["rows"] == [[1]]  # and the connector keeps serving


async def test_what_only_the_guard_stops_for_a_superuser(pg, unguarded, monkeypatch):
    """READ ONLY does not stop a superuser from reading files or signalling the server: the guard does."""
    answer = await unguarded.query("SELECT length(pg_read_file('PG_VERSION')) > 0", [])
    assert answer.data["rows"] == [[True]]
    monkeypatch.undo()  # the guard back on
    for sql in ("SELECT pg_read_file('PG_VERSION')", "SELECT pg_reload_conf()", "LOCK TABLE store.orders",
                "SELECT (f).pg_read_file FROM lower('PG_VERSION') f"):
        with pytest.raises(Refused, match="is not allowed"):
            await unguarded.query(sql, [])


async def test_a_least_privilege_role_stops_it_too(store_url, monkeypatch):
    monkeypatch.setattr(guard, "check_query", _no_guard)
    connector = make(store_url, include=["*"], exclude=[])
    try:
        for sql in ("SELECT pg_read_file('PG_VERSION')", "SELECT * FROM store.customer_secrets",
                    "SELECT pg_reload_conf()", "SELECT pg_ls_dir('.')", "SELECT lo_import('PG_VERSION')",
                    "COPY store.orders TO '/tmp/dbmcp-never'"):
            assert "permission denied" in await _fails(connector, sql), sql
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("create", "drop", "sql"),
    [
        ("CREATE VIEW lab.locking AS SELECT pg_try_advisory_lock(4243) AS x; GRANT SELECT ON lab.locking TO dbmcp_demo",
         "DROP VIEW lab.locking", "SELECT * FROM lab.locking"),
        ("CREATE TABLE lab.guarded (id int); INSERT INTO lab.guarded VALUES (1);"
         "ALTER TABLE lab.guarded ENABLE ROW LEVEL SECURITY;"
         "CREATE POLICY p ON lab.guarded USING (pg_try_advisory_lock(4243)); GRANT SELECT ON lab.guarded TO dbmcp_demo",
         "DROP TABLE lab.guarded", "SELECT count(*) FROM lab.guarded"),
        ("CREATE DOMAIN lab.locking_int AS int CHECK (pg_try_advisory_lock(4243))", "DROP DOMAIN lab.locking_int",
         "SELECT 1::lab.locking_int"),
    ],
    ids=["view", "row-security policy", "domain check"],
)
async def test_code_the_guard_cannot_see_leaves_no_session_lock(store_url, pg, create, drop, sql):
    async with admin_objects(pg, create, drop) as admin:
        connector = make(store_url)
        try:
            checked = await connector.guard_check(sql)
            assert checked.opaque  # the guard knows it cannot see this code
            await connector.query(sql, [])
            held = await admin.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243")
            assert held == 0
            assert not (await connector.guard_check("SELECT count(*) FROM lab.many")).opaque
        finally:
            await connector.close()
