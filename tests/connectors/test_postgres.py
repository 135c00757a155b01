"""The PostgreSQL connector against a real PostgreSQL: tools, value types, caps, timeouts, walls, recovery."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from dbmcp.config import Limits, PostgresDatabase
from dbmcp.connectors import postgres
from dbmcp.connectors.postgres import PostgresConnector
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import Refused, ToolError


def make(url: str, include=("store.*", "lab.*"), exclude=("lab.hidden",), **limits) -> PostgresConnector:
    db = PostgresDatabase(engine="postgres", url=url, include=list(include), exclude=list(exclude))
    return PostgresConnector("store", db, Limits(**limits))


@pytest.fixture
async def pgc(store_url):
    connector = make(store_url)
    await connector.start()
    yield connector
    await connector.close()


async def test_point_query_with_params(pgc):
    answer = await pgc.query("SELECT id, email FROM store.customers WHERE id = $1", [7])
    assert answer.data["columns"] == [{"name": "id", "type": "int8"}, {"name": "email", "type": "text"}]
    assert answer.data["rows"] == [[7, "customer7@example.com"]]
    assert answer.data["row_count"] == 1 and answer.data["truncated"] is False


async def test_value_types_are_json_safe_and_documented(pgc):
    answer = await pgc.query("SELECT * FROM lab.types ORDER BY id", [])
    types = {c["name"]: c["type"] for c in answer.data["columns"]}
    assert types["arr"] == "int4[]" and types["j"] == "jsonb" and types["n"] == "numeric"
    r1, r2, r3, r4 = (dict(zip(types, row, strict=True)) for row in answer.data["rows"])
    assert r1["n"] == "12345678901234567890.123456789"  # exact, as a string
    assert r1["big"] == 9007199254740993  # JSON integers are arbitrary precision
    assert r1["f"] == 1.5 and r2["f"] == "Infinity" and r3["f"] == "-Infinity" and r4["f"] == "NaN"
    assert r2["n"] == "NaN" and r3["n"] == "0.10"
    assert r1["d"] == "2026-11-24" and r1["ts"] == "2026-11-24T10:30:00+00:00"
    assert r1["tsn"] == "2026-11-24T10:30:00" and r1["t"] == "10:30:00"
    assert r1["iv"] == "P1DT2H" and r2["iv"] == "P-3M"
    assert r1["u"] == "11111111-2222-3333-4444-555555555555"
    assert r1["b"] == "AQL/" and r2["b"] == ""  # base64 of 01 02 ff
    assert r1["j"] == {"a": [1, 2, {"b": None}], "s": "x"} and r2["j"] is None and r3["j"] == []
    assert r1["arr"] == [1, 2, 3] and r1["tarr"] == ["a", "b c"] and r2["arr"] == []
    assert r1["flag"] is True and r1["ip"] == "10.0.0.1" and r1["txt"] == "héllo"
    assert '"n":' not in answer.text and '"12345678901234567890.123456789"' in answer.text  # same values as text


@pytest.fixture(params=["one Execute", "cursor"])
def fetch_path(request, monkeypatch):
    """Both ways rows are fetched: a plain statement's single limited Execute, and the cursor inside BEGIN READ ONLY
    (what statements that run unseen code, or configs with max_rows above 10,000, use)."""
    if request.param == "cursor":
        monkeypatch.setattr(postgres, "_ONE_SHOT_ROWS", 0)
    return request.param


async def test_max_rows_truncates_exactly(store_url, fetch_path):
    connector = make(store_url, max_rows=10)
    try:
        capped = await connector.query("SELECT id FROM lab.many ORDER BY id", [])
        assert capped.data["row_count"] == 10 and capped.data["truncated"] is True
        assert capped.data["rows"][-1] == [10]
        exact = await connector.query("SELECT id FROM lab.many ORDER BY id LIMIT 10", [])
        assert exact.data["row_count"] == 10 and exact.data["truncated"] is False  # the caller's own LIMIT
        fewer = await connector.query("SELECT id FROM lab.many ORDER BY id LIMIT 3", [])
        assert fewer.data["truncated"] is False
    finally:
        await connector.close()


async def test_max_bytes_truncates_and_stays_under_cap(store_url, fetch_path):
    connector = make(store_url, max_rows=5000, max_bytes=2000)
    try:
        answer = await connector.query("SELECT id, label FROM lab.many ORDER BY id", [])
        assert answer.data["truncated"] is True
        assert 0 < answer.data["row_count"] < 5000
        assert len(answer.text.encode()) <= 2000 + 200  # rows under the cap; the envelope adds columns
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM store.orders", "refused: DELETE is not allowed; dbmcp runs read-only queries"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT 1; DROP TABLE store.orders", "exactly one statement"),
        ("COMMIT; DROP TABLE store.orders", "exactly one statement"),
        ("WITH x AS (UPDATE store.orders SET total = 0 RETURNING id) SELECT * FROM x", "UPDATE"),
        ("SELECT * FROM store.orders FOR UPDATE", "FOR UPDATE"),
    ],
)
async def test_writes_are_refused_by_the_guard(pgc, sql, reason):
    with pytest.raises(Refused, match=reason):
        await pgc.query(sql, [])


@contextlib.asynccontextmanager
async def admin_objects(pg, create: str, drop: str):
    """Objects a test creates as the superuser for its duration (the connector never could)."""
    admin = await asyncpg.connect(pg.dsn(DATABASE))
    await admin.execute(create)
    try:
        yield admin
    finally:
        await admin.execute(drop)
        await admin.close()


@contextlib.asynccontextmanager
async def connector_allowing(url: str, functions: list[str], **limits):
    connector = make(url, **limits)
    connector.config.allow_functions = functions
    try:
        yield connector
    finally:
        await connector.close()


async def test_database_is_the_second_wall(store_url, pg):
    """A write the guard cannot see (inside a function the operator allowed) fails in the READ ONLY transaction."""
    async with admin_objects(
        pg,
        "CREATE FUNCTION lab.sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO lab.many VALUES (999999, 'x') "
        "RETURNING 1 $$; GRANT EXECUTE ON FUNCTION lab.sneaky() TO dbmcp_demo; GRANT INSERT ON lab.many TO dbmcp_demo",
        "REVOKE INSERT ON lab.many FROM dbmcp_demo; DROP FUNCTION lab.sneaky()",
    ) as admin, connector_allowing(store_url, ["lab.sneaky"]) as connector:
        with pytest.raises(Refused, match="read-only transaction"):
            await connector.query("SELECT lab.sneaky()", [])
        assert await admin.fetchval("SELECT count(*) FROM lab.many WHERE id = 999999") == 0


async def test_volatile_user_functions_are_refused_unless_allowed(store_url, pg):
    async with connector_allowing(store_url, []) as connector:
        await connector.query("SELECT 1", [])  # the catalog is read now, before the functions exist
        async with admin_objects(
            pg,
            "CREATE FUNCTION lab.tick() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';"
            "CREATE FUNCTION lab.pure(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'",
            "DROP FUNCTION lab.tick(); DROP FUNCTION lab.pure(int)",
        ):
            connector._policy_loaded_at -= 60  # as if the reload rate limit had passed
            with pytest.raises(Refused, match=r"lab.tick\(\) is not allowed: it is VOLATILE"):
                await connector.query("SELECT lab.tick()", [])  # unknown to the old catalog: read again, judged
            assert (await connector.query("SELECT lab.pure(21)", [])).data["rows"] == [[42]]


async def test_session_changes_do_not_leak_between_calls(store_url, pg):
    """Even a session-level change made by an allowed function is rolled back with the call."""
    async with admin_objects(
        pg, "CREATE FUNCTION lab.set_path() RETURNS text LANGUAGE sql AS "
            "$$ SELECT set_config('search_path', 'lab', false) $$", "DROP FUNCTION lab.set_path()",
    ), connector_allowing(store_url, ["lab.set_path"], max_rows=5) as connector:
        connector.config.pool_max_size = 1  # one connection: every call reuses it
        await connector.query("SELECT lab.set_path()", [])
        answer = await connector.query("SELECT current_setting('search_path')", [])
        assert answer.data["rows"][0][0] != "lab"  # rolled back with the transaction


async def test_session_locks_taken_by_allowed_functions_are_released(store_url, pg):
    async with admin_objects(
        pg, "CREATE FUNCTION lab.locker() RETURNS void LANGUAGE sql AS $$ SELECT pg_advisory_lock(4242) $$",
        "DROP FUNCTION lab.locker()",
    ) as admin, connector_allowing(store_url, ["lab.locker"]) as connector:
        await connector.query("SELECT lab.locker()", [])
        held = await admin.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")
        assert held == 0


async def test_timeout_is_one_line_and_the_connector_keeps_serving(store_url):
    connector = make(store_url, timeout_s=0.5)
    try:
        with pytest.raises(ToolError, match=r"timed out after 0.5 s \(limits.timeout_s\)"):
            await connector.query("SELECT count(*) FROM generate_series(1, 1000000000)", [])
        assert (await connector.query("SELECT 1", [])).data["rows"] == [[1]]
    finally:
        await connector.close()


async def test_hidden_and_unknown_relations_read_alike(pgc):
    messages = []
    for name in ("lab.hidden", "lab.no_such_table"):
        with pytest.raises(ToolError) as e:
            await pgc.query(f"SELECT * FROM {name}", [])
        messages.append(e.value.message.replace(name, "X"))
    assert messages[0] == messages[1] == "database 'store': relation \"X\" does not exist"


async def test_params_accept_text_forms(pgc):
    answer = await pgc.query(
        "SELECT $1::timestamptz, $2::date, $3::uuid, $4::int8, $5::numeric, $6::bool",
        ["2026-01-02T03:04:05Z", "2026-01-02", "11111111-2222-3333-4444-555555555555", "9007199254740993", "1.10",
         "true"],
    )
    assert answer.data["rows"] == [["2026-01-02T03:04:05+00:00", "2026-01-02", "11111111-2222-3333-4444-555555555555",
                                    9007199254740993, "1.10", True]]
    with pytest.raises(ToolError, match=r"params: \$1 'yesterday' is not a valid date"):
        await pgc.query("SELECT $1::date", ["yesterday"])


async def test_database_errors_are_one_line(pgc):
    with pytest.raises(ToolError) as e:
        await pgc.query("SELECT no_such_column FROM store.orders", [])
    assert e.value.message == "database 'store': column \"no_such_column\" does not exist"
    with pytest.raises(ToolError, match=r"params: \$1 .not a number. is not a valid int8"):
        await pgc.query("SELECT * FROM store.orders WHERE id = $1", ["not a number"])


async def test_unreachable_database_is_reported_without_the_dsn():
    connector = make("postgresql://someone:hunter2@127.0.0.1:1/nope")
    await connector.start()  # does not raise: reached lazily
    with pytest.raises(ToolError) as e:
        await connector.ping()
    assert e.value.message == "database 'store' is unreachable"
    await connector.close()


async def test_list_objects_honours_allowlist_and_pattern(pgc):
    answer = await pgc.list_objects(None)
    names = {o["name"]: o for o in answer.data["objects"]}
    assert "store.orders" in names and "lab.many" in names and "lab.hidden" not in names
    assert names["store.orders"]["kind"] == "table" and names["store.orders"]["rows"] > 0
    assert names["store.order_summary"]["kind"] == "view" and names["store.order_summary"]["rows"] is None
    assert names["store.daily_revenue"]["kind"] == "materialized view"
    assert names["store.orders"]["comment"]
    only = await pgc.list_objects("store.order*")
    assert {o["name"] for o in only.data["objects"]} >= {"store.orders", "store.order_items"}
    assert all(o["name"].startswith("store.order") for o in only.data["objects"])
    assert (await pgc.list_objects("STORE.*")).data["objects"] == []  # case-sensitive


async def test_list_objects_is_bounded(store_url):
    connector = make(store_url, max_rows=2)
    try:
        answer = await connector.list_objects(None)
        assert len(answer.data["objects"]) == 2 and answer.data["truncated"] is True
    finally:
        await connector.close()


async def test_describe_table(pgc):
    d = (await pgc.describe_object("store.order_items")).data
    assert d["kind"] == "table" and d["primary_key"] == ["order_id", "line_no"]
    cols = {c["name"]: c for c in d["columns"]}
    assert cols["unit_price"]["type"] == "numeric(12,2)" and cols["unit_price"]["nullable"] is False
    refs = {fk["references"]["object"] for fk in d["foreign_keys"]}
    assert refs == {"store.orders", "store.products"}
    assert any(i["primary"] for i in d["indexes"])
    assert d["rows_estimate"] > 0 and d["comment"]


async def test_describe_view_shows_definition(pgc):
    d = (await pgc.describe_object("store.order_summary")).data
    assert d["kind"] == "view" and "select" in d["definition"].lower()


async def test_describe_hides_objects_outside_allowlist(pgc):
    child = (await pgc.describe_object("lab.child")).data
    assert [fk["references"]["object"] for fk in child["foreign_keys"]] == ["lab.many"]  # lab.hidden left out
    for name in ("lab.hidden", "lab.nope", "pg_catalog.pg_authid", "x'; select 1"):
        with pytest.raises(ToolError) as e:
            await pgc.describe_object(name)
        assert e.value.message == f"unknown object {name!r} in database 'store'; see list_objects"


async def test_explain_does_not_execute(pgc):
    answer = await pgc.explain("SELECT * FROM store.orders WHERE id = $1")
    assert answer.data["plan"]["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Seq Scan")
    with pytest.raises(Refused):
        await pgc.explain("DELETE FROM store.orders")


async def test_recovers_after_database_restart(pgc, pg):
    assert (await pgc.query("SELECT 1", [])).data["rows"] == [[1]]
    pg.stop()
    pg.start()
    answer = await pgc.query("SELECT 2", [])  # stale pooled connections are replaced transparently
    assert answer.data["rows"] == [[2]]


async def test_check_warns_about_superuser(pg):
    connector = make(pg.dsn(DATABASE))
    try:
        warnings = await connector.check()
        assert any("superuser" in w for w in warnings)
    finally:
        await connector.close()


async def test_concurrent_calls_share_the_pool(pgc):
    results = await asyncio.gather(*(pgc.query("SELECT $1::int", [i]) for i in range(30)))
    assert [r.data["rows"][0][0] for r in results] == list(range(30))
