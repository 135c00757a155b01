"""The SQL guard alone, on the public corpus (tests/guards/sql_corpus.py), with the catalog of a real database."""

from __future__ import annotations

import re
from dataclasses import replace

import asyncpg
import pytest
import sqlglot
from sqlglot import exp

from dbmcp.allowlist import Allowlist
from dbmcp.connectors.postgres_catalog import GUARD_FACTS, guard_policy
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import Refused
from dbmcp.guards.sql import SqlPolicy, check_query
from dbmcp.guards.sql_functions import call_reason
from tests.guards.sql_corpus import EXCLUDE, HIDDEN, HOSTILE, INCLUDE, LEGIT


@pytest.fixture(scope="module")
async def facts(pg) -> asyncpg.Record:
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        return await conn.fetchrow(GUARD_FACTS)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def policy(facts) -> SqlPolicy:
    return guard_policy(facts, Allowlist(INCLUDE, EXCLUDE).allows, [], 30.0)


def test_corpus_is_large_enough():
    assert len(HOSTILE) >= 150 and len(LEGIT) >= 60


@pytest.mark.parametrize(("sql", "reason"), HOSTILE)
def test_hostile_is_refused(policy, sql, reason):
    with pytest.raises(Refused) as e:
        check_query(sql, policy)
    assert "\n" not in e.value.message
    if reason:
        assert reason in e.value.message, e.value.message


@pytest.mark.parametrize("sql", LEGIT)
def test_legitimate_passes(policy, sql):
    assert check_query(sql, policy).sql == sql


@pytest.mark.parametrize(
    ("sql", "message"),  # exactly what PostgreSQL says when the object does not exist
    [("select * from store.customer_secrets", 'relation "store.customer_secrets" does not exist'),
     ("select * from STORE.CUSTOMER_SECRETS", 'relation "store.customer_secrets" does not exist'),
     ("select * from \"Store\".customer_secrets", 'relation "Store.customer_secrets" does not exist'),
     ("select ' STORE.CUSTOMER_SECRETS'::regclass", 'relation "store.customer_secrets" does not exist'),
     ("select has_table_privilege('Store.Customer_Secrets', 'select')",
      'relation "store.customer_secrets" does not exist'),
     ("select null::STORE.CUSTOMER_SECRETS[]", 'type "store.customer_secrets[]" does not exist'),
     ("select 'STORE.CUSTOMER_SECRETS[]'::regtype", 'type "store.customer_secrets[]" does not exist'),
     ("select null::store._customer_secrets", 'type "store._customer_secrets" does not exist')],
)
def test_hidden_relation_is_worded_as_missing(policy, sql, message):
    with pytest.raises(Refused) as e:
        check_query(sql, policy)
    assert e.value.message == message


def test_relations_are_resolved_through_ctes_and_search_path(policy):
    checked = check_query("with orders as (select 1) select * from orders, pg_class, store.orders o", policy)
    assert checked.relations == ("pg_catalog.pg_class", "store.orders")


def test_user_functions_follow_the_catalog_and_allow_functions(policy):
    functions = replace(policy.functions, user_safe=frozenset({"store.safe_fn", "safe_fn"}),
                        user_unsafe=frozenset({"store.risky_fn", "risky_fn"}))
    local = replace(policy, functions=functions)
    check_query("select store.safe_fn(1), safe_fn(2)", local)
    with pytest.raises(Refused, match="VOLATILE or SECURITY DEFINER"):
        check_query("select store.risky_fn()", local)
    allowed = replace(local, functions=replace(functions, allowed=frozenset({"store.risky_fn"})))
    check_query("select store.risky_fn()", allowed)
    with pytest.raises(Refused, match="side effects"):  # the denylist wins over allow_functions
        check_query("select pg_read_file('x')", replace(local, functions=replace(functions,
                                                                                allowed=frozenset({"pg_read_file"}))))


# ---- when the allowlist does not admit the system catalogs ------------------------------------------------------
NO_CATALOG = [  # (sql, None when it passes, else a fragment of the refusal)
    ("select * from pg_class", 'relation "pg_class" does not exist'),
    ("select * from information_schema.tables", "does not exist"),
    ("select relname from pg_catalog.pg_class", "does not exist"),
    ("select format_type(23, null)", "reads the system catalogs"),
    ("select obj_description(16384, 'pg_class')", "reads the system catalogs"),
    ("select pg_get_viewdef(v) from (values (16384)) t(v)", "computed name"),
    ("select has_table_privilege(t.v, 'select') from (values ('store.customer_secrets')) t(v)", "computed name"),
    ("select x::regclass from (values (16384::oid)) t(x)", "computed name"),
    ("select f.obj_description from cast(16384 as oid) f", "attribute notation"),
    ("select pg_stat_get_live_tuples(16384)", "reads the system catalogs"),
    ("select pg_relation_size('store.customer_secrets')", "does not exist"),
    ("select to_regclass('store.orders')", "reads the system catalogs"),  # NULL when missing, else an error
    ("select to_regtype('integer')", "reads the system catalogs"),
    ("select null::pg_class", None),  # a system row type: public knowledge
    ("select pg_relation_size('store.orders'), pg_get_viewdef('store.order_summary')", None),
    ("select 'store.orders'::regclass, has_table_privilege('store.orders', 'select')", None),
    ("select count(*) from store.orders", None),
    ("select to_char(now(), 'YYYY'), jsonb_build_object('a', 1), gen_random_uuid() is not null", None),
]


@pytest.mark.parametrize(("sql", "refusal"), NO_CATALOG)
def test_catalogs_outside_the_allowlist(facts, sql, refusal):
    policy = guard_policy(facts, Allowlist(["store.*"], EXCLUDE).allows, [], 30.0)
    assert not policy.catalog_visible
    if refusal is None:
        check_query(sql, policy)
    else:
        with pytest.raises(Refused, match=re.escape(refusal)):
            check_query(sql, policy)


# ---- name resolution ---------------------------------------------------------------------------------------------
SCOPES = [  # with store on the search_path: unqualified names, CTE shadowing as PostgreSQL scopes it
    ("select * from customer_secrets", HIDDEN),
    ("with customer_secrets as (select 1) select * from customer_secrets", None),
    ("with a as (select * from customer_secrets), customer_secrets as (select 1) select * from a", HIDDEN),
    ("with recursive a as (select * from customer_secrets), customer_secrets as (select 1) select * from a", None),
    ("with customer_secrets as (select * from customer_secrets) select 1", HIDDEN),
    ("select * from (with customer_secrets as (select 1) select * from customer_secrets) x, customer_secrets", HIDDEN),
    ("select (with customer_secrets as (select 1) select count(*) from customer_secrets)", None),
    ("with x as (select 1) select * from x, lateral (select * from customer_secrets) y", HIDDEN),
    ('select * from "customer_secrets"', HIDDEN), ('select * from "Customer_Secrets"', "does not exist"),
    ("select * from orders join customers on customers.id = orders.customer_id", None),
    ("select null::customer_secrets", HIDDEN), ("select null::_customer_secrets", HIDDEN),
    ("select null::orders, null::_orders", None),
]


@pytest.fixture(scope="module")
async def store_on_path(pg) -> SqlPolicy:
    """The policy of a connection whose search_path (set for the role, say) puts store first."""
    conn = await asyncpg.connect(pg.dsn(DATABASE), server_settings={"search_path": "store, public"})
    try:
        facts = await conn.fetchrow(GUARD_FACTS)
    finally:
        await conn.close()
    assert facts["search_path"] == ["pg_catalog", "store", "public"]
    return guard_policy(facts, Allowlist(INCLUDE, EXCLUDE).allows, [], 30.0)


@pytest.mark.parametrize(("sql", "refusal"), SCOPES)
def test_names_resolve_as_postgresql_resolves_them(store_on_path, sql, refusal):
    local = store_on_path
    if refusal is None:
        check_query(sql, local)
    else:
        with pytest.raises(Refused, match=re.escape(refusal)):
            check_query(sql, local)


def test_standalone_user_types_are_not_relations(policy):
    local = replace(policy, allows=Allowlist(["store.orders"], []).allows, user_types=frozenset({"store.mood"}))
    check_query("select null::store.mood, null::store._mood, 'store.mood'::regtype", local)
    with pytest.raises(Refused, match='type "store.customers" does not exist'):
        check_query("select null::store.customers", local)


# ---- functions sqlglot parses into typed nodes -----------------------------------------------------------------
async def test_no_typed_node_hides_a_refused_function(pg, policy):
    """sqlglot turns some names into typed nodes (random() -> Rand); none may slip past the verdict its name gets."""
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        procs = await conn.fetch("SELECT DISTINCT proname::text AS name, pronargs AS n FROM pg_proc "
                                 "WHERE pronamespace = 'pg_catalog'::regnamespace")
    finally:
        await conn.close()
    typed = 0
    for proc in procs:
        sql = f"select {proc['name']}({', '.join(['1'] * proc['n'])})"
        try:
            tree = sqlglot.parse_one(sql, read="postgres")
        except sqlglot.errors.SqlglotError:
            continue  # not parsed: refused as not understood
        call = tree.expressions[0].unalias()
        if isinstance(call, exp.Anonymous) or not isinstance(call, exp.Func):
            continue
        typed += 1
        reason = call_reason(policy.functions, None, proc["name"], [], policy.max_sleep_s)
        if reason is not None:
            with pytest.raises(Refused):
                check_query(sql, policy)
    assert typed > 100  # the check above really ran over sqlglot's typed functions


def test_typed_nodes_named_like_a_user_function_are_judged_as_one(policy):
    functions = replace(policy.functions, user_unsafe=frozenset({"lab.upper", "upper"}))
    with pytest.raises(Refused, match="VOLATILE or SECURITY DEFINER"):
        check_query("select upper('x')", replace(policy, functions=functions))


# ---- opaque: code the guard cannot see ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "opaque"),
    [("select count(*) from store.orders", False), ("select now(), random()", False),
     ("select * from store.order_summary", True), ("select count(*) from (table store.order_summary) s", True),
     ("select store.safe_fn(1)", True), ("select x.safe_fn from store.orders x", True)],
)
def test_statements_that_may_run_unseen_code_are_opaque(policy, sql, opaque):
    functions = replace(policy.functions, user_safe=frozenset({"store.safe_fn", "safe_fn"}))
    local = replace(policy, functions=functions)
    assert check_query(sql, local).opaque is opaque
    assert check_query("select 1", replace(local, always_opaque=True)).opaque  # user operators or casts exist


def _with_numbers(sql: str, value: str) -> str | None:
    """sql with every number literal replaced by value (None when it has none)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("postgres").tokenize(sql)
    except sqlglot.errors.SqlglotError:
        return None
    spans = [(t.start, t.end + 1) for t in tokens if t.token_type == sqlglot.TokenType.NUMBER]
    for start, end in reversed(spans):
        sql = sql[:start] + value + sql[end:]
    return sql if spans else None


def _verdict(sql: str, policy: SqlPolicy) -> tuple:
    try:
        checked = check_query(sql, policy)
    except Refused as e:
        return ("refused", e.message)
    return ("accepted", checked.sql, checked.query, checked.relations, checked.opaque, checked.plain)


EXTRA_NUMBERS = ["select pg_sleep(1)", "select pg_sleep(0.5) from store.orders where id = 3",
                 "select array[16384]::regclass[]", "select 1::regclass", "select * from store.orders limit 5"]


@pytest.mark.parametrize("value", ["0", "31", "16384", "1e9", "100000.5"])
def test_remembered_verdicts_match_fresh_ones_whatever_the_numbers(policy, value):
    """A statement checked once, then again with other numbers: the remembered verdict (by shape) is exactly the
    one a fresh guard reaches, over the whole corpus."""
    compared = 0
    for sql in [s for s, _ in HOSTILE] + LEGIT + EXTRA_NUMBERS:
        variant = _with_numbers(sql, value)
        if variant is None:
            continue
        warmed = replace(policy)  # a fresh, empty memory of verdicts
        _verdict(sql, warmed)
        assert _verdict(variant, warmed) == _verdict(variant, replace(policy)), (sql, variant)
        compared += 1
    assert compared > 150


def test_verdicts_are_remembered_by_shape_only_where_numbers_are_plain_values(policy):
    local = replace(policy)
    first = check_query("select * from store.orders where id = 1 limit 10", local)
    second = check_query("select * from store.orders where id = 2 limit 20", local)
    assert second.sql == second.query == "select * from store.orders where id = 2 limit 20"
    assert second.tree is first.tree and second.relations == ("store.orders",)
    assert check_query("select pg_sleep(1)", local).plain
    with pytest.raises(Refused, match="pg_sleep"):  # a call's argument: never judged by shape
        check_query("select pg_sleep(31)", local)
    with pytest.raises(Refused, match="does not exist"):  # names and strings are part of the shape
        check_query("select * from store.customer_secrets where id = 2 limit 20", local)


@pytest.mark.parametrize(
    ("sql", "plain"),
    [("select count(*) from store.orders", True), ("with o as (select 1) select * from o", True),
     ("table store.orders", True), ("values (1)", True), ("(select 1)", True),
     ("explain select 1", False), ("select * from store.order_summary", False)],
)
def test_plain_statements_are_queries_running_built_in_code_only(policy, sql, plain):
    assert check_query(sql, policy).plain is plain
