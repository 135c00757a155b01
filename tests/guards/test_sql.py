"""The SQL guard alone, on the public corpus (tests/guards/sql_corpus.py), with the catalog of a real database."""

from __future__ import annotations

import asyncpg
import pytest

from dbmcp.allowlist import Allowlist
from dbmcp.connectors.postgres_catalog import GUARD_FACTS, guard_policy
from dbmcp.demo.launcher import DATABASE
from dbmcp.errors import Refused
from dbmcp.guards.sql import SqlPolicy, check_query
from tests.guards.sql_corpus import EXCLUDE, HOSTILE, INCLUDE, LEGIT


@pytest.fixture(scope="module")
async def policy(pg) -> SqlPolicy:
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    try:
        facts = await conn.fetchrow(GUARD_FACTS)
    finally:
        await conn.close()
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


def test_hidden_relation_is_worded_as_missing(policy):
    with pytest.raises(Refused) as e:
        check_query("select * from store.customer_secrets", policy)
    assert e.value.message == 'relation "store.customer_secrets" does not exist'


def test_relations_are_resolved_through_ctes_and_search_path(policy):
    checked = check_query("with orders as (select 1) select * from orders, pg_class, store.orders o", policy)
    assert checked.relations == ("pg_catalog.pg_class", "store.orders")


def test_user_functions_follow_the_catalog_and_allow_functions(policy):
    from dataclasses import replace

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
