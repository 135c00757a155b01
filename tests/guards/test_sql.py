"""The first SQL guard: one read-only statement, fail closed. Data-driven: (sql, verdict, reason fragment)."""

from __future__ import annotations

import pytest

from dbmcp.errors import Refused
from dbmcp.guards.sql import check_query

ALLOWED = [
    "select 1",
    "SELECT * FROM store.orders WHERE id = $1",
    "with recent as (select * from store.orders where ordered_at > now() - interval '7 days') select count(*) from recent",
    "values (1, 'a'), (2, 'b')",
    "table store.orders",
    "select 1 union all select 2",
    "(select 1) except (select 2)",
    "select * from store.orders o join lateral (select * from store.order_items i where i.order_id = o.id) x on true",
    "select 1;",
    "select 'a; drop table x' as s",
    "select $$not; a; statement$$",
    "select 1 -- ; drop table x",
    "select /* ; delete from t */ 1",
    "select jsonb_path_query('{}'::jsonb, '$.a')",
    "select count(*) filter (where status = 'paid') from store.orders",
    "select * from generate_series(1, 3) g",
]

REFUSED = [
    ("", "empty statement"),
    ("   ", "empty statement"),
    ("select 1; select 2", "exactly one statement"),
    ("select 1; drop table store.orders", "exactly one statement"),
    ("commit; drop table store.orders", "exactly one statement"),
    ("insert into t values (1)", "INSERT"),
    ("update t set a = 1", "UPDATE"),
    ("delete from t", "DELETE"),
    ("merge into t using s on t.id = s.id when matched then delete", "MERGE"),
    ("drop table t", "DROP"),
    ("create table t (a int)", "CREATE"),
    ("alter table t add column b int", "ALTER"),
    ("truncate t", "TRUNCATE"),
    ("copy t to stdout", "COPY"),
    ("grant select on t to public", "GRANT"),
    ("with d as (delete from t returning *) select * from d", "DELETE"),
    ("with u as (update t set a = 1 returning *) select * from u", "UPDATE"),
    ("with i as (insert into t values (1) returning *) select * from i", "INSERT"),
    ("select * into newtable from t", "SELECT INTO"),
    ("select * from t for update", "FOR UPDATE/SHARE"),
    ("select * from t for share", "FOR UPDATE/SHARE"),
    ("select * from (select * from t for update) x", "FOR UPDATE/SHARE"),
    ("begin", "only read-only queries"),
    ("commit", "only read-only queries"),
    ("rollback", "only read-only queries"),
    ("set statement_timeout = 0", "only read-only queries"),
    ("reset all", "only read-only queries"),
    ("vacuum", "only read-only queries"),
    ("analyze t", "only read-only queries"),
    ("lock table t", "only read-only queries"),
    ("listen x", "only read-only queries"),
    ("notify x", "only read-only queries"),
    ("do $$ begin end $$", "only read-only queries"),
    ("call p()", "only read-only queries"),
    ("prepare p as select 1", "only read-only queries"),
    ("execute p", "only read-only queries"),
    ("discard all", "only read-only queries"),
    ("checkpoint", "only read-only queries"),
    ("refresh materialized view m", "only read-only queries"),
    ("declare c cursor for select 1", "only read-only queries"),
    ("explain analyze delete from t", "only read-only queries"),
    ("select (", "not understood"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed(sql):
    assert check_query(sql).sql == sql


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_refused(sql, reason):
    with pytest.raises(Refused) as e:
        check_query(sql)
    assert reason in e.value.message
    assert "\n" not in e.value.message
