"""Catalog queries behind list_objects and describe_object for PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from dbmcp.guards.sql import SqlPolicy
from dbmcp.guards.sql_functions import FunctionCatalog

KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}

# Objects the connected role can read (schema USAGE and table SELECT), system schemas left out.
LIST_OBJECTS = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       CASE WHEN c.relkind IN ('r', 'p', 'm', 'f') AND c.reltuples >= 0 THEN c.reltuples::bigint END AS rows,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname
"""

# The exact name (schema.name as list_objects shows it) first; else PostgreSQL's own parsing (search_path).
_RESOLVE_EXACT = """
SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

OBJECT = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       CASE WHEN c.relkind IN ('r', 'p', 'm', 'f') AND c.reltuples >= 0 THEN c.reltuples::bigint END AS rows,
       obj_description(c.oid, 'pg_class') AS comment,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS definition
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
"""

_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default, col_description(a.attrelid, a.attnum) AS comment
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS = """
SELECT con.conname AS name, con.contype::text AS type,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i) AS columns,
       fn.nspname AS ref_schema, fc.relname AS ref_name,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i)
         AS ref_columns
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = $1 AND con.contype IN ('p', 'f')
ORDER BY con.contype DESC, con.conname
"""

_INDEXES = """
SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS unique,
       i.indisprimary AS primary
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1
ORDER BY ic.relname
"""

# What the SQL guard needs to know (one round trip): search_path, functions by volatility, relations on the path,
# functions with regclass parameters (their positions), user-defined types that are not a relation's row type,
# where code the guard cannot see may run (views, row-security policies, user-defined operators and casts).
GUARD_FACTS = """
SELECT current_schemas(true)::text[] AS search_path,
       ARRAY(SELECT DISTINCT proname::text FROM pg_catalog.pg_proc
             WHERE pronamespace = 'pg_catalog'::regnamespace AND provolatile <> 'v') AS builtin,
       ARRAY(SELECT DISTINCT proname::text FROM pg_catalog.pg_proc
             WHERE pronamespace = 'pg_catalog'::regnamespace AND provolatile = 'v') AS builtin_volatile,
       ARRAY(SELECT ARRAY[n.nspname::text, p.proname::text, (p.provolatile = 'v' OR p.prosecdef)::text]
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) AS user_functions,
       ARRAY(SELECT ARRAY[n.nspname::text, c.relname::text]
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
               AND n.nspname = ANY(current_schemas(true))) AS relations,
       ARRAY(SELECT DISTINCT ARRAY[p.proname::text, (a.position - 1)::text]
             FROM pg_catalog.pg_proc p, unnest(p.proargtypes::oid[]) WITH ORDINALITY a(type, position)
             WHERE a.type = 'pg_catalog.regclass'::regtype) AS regclass_args,
       ARRAY(SELECT n.nspname || '.' || t.typname
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                               WHERE c.oid = COALESCE(NULLIF(e.typrelid, 0), t.typrelid) AND c.relkind <> 'c'))
         AS user_types,
       ARRAY(SELECT n.nspname || '.' || c.relname
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE (c.relkind = 'v' OR c.relrowsecurity)
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS opaque_relations,
       EXISTS (SELECT FROM pg_catalog.pg_operator o
               WHERE o.oprnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))
       OR EXISTS (SELECT FROM pg_catalog.pg_cast k JOIN pg_catalog.pg_proc p ON p.oid = k.castfunc
                  WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))
         AS always_opaque
"""

ROLE_CHECK = """
SELECT r.rolname, r.rolsuper,
       (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner = r.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%') AS owned
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""


def guard_policy(facts: asyncpg.Record, allows: Callable[[str], bool], allowed_functions: list[str],
                 max_sleep_s: float) -> SqlPolicy:
    """The guard's policy for one database from GUARD_FACTS and its config."""
    safe: set[str] = set()
    unsafe: set[str] = set()
    for schema, name, risky in facts["user_functions"]:
        for key in (f"{schema}.{name}".lower(), name.lower()):
            (unsafe if risky == "true" else safe).add(key)
    relations: dict[str, set[str]] = {}
    for schema, name in facts["relations"]:
        relations.setdefault(name, set()).add(schema)
    regclass_args: dict[str, set[int]] = {}
    for name, position in facts["regclass_args"]:
        regclass_args.setdefault(name.lower(), set()).add(int(position))
    return SqlPolicy(
        allows=allows,
        search_path=tuple(facts["search_path"]),
        relations={name: frozenset(schemas) for name, schemas in relations.items()},
        functions=FunctionCatalog(
            builtin=frozenset(facts["builtin"]), builtin_volatile=frozenset(facts["builtin_volatile"]),
            user_safe=frozenset(safe), user_unsafe=frozenset(unsafe),
            allowed=frozenset(f.lower() for f in allowed_functions),
            regclass_args={name: frozenset(p) for name, p in regclass_args.items()},
        ),
        max_sleep_s=max_sleep_s,
        catalog_visible=allows("pg_catalog.pg_class"),
        user_types=frozenset(facts["user_types"]),
        opaque_relations=frozenset(facts["opaque_relations"]),
        always_opaque=facts["always_opaque"],
    )


async def resolve(conn: asyncpg.Connection, name: str) -> int | None:
    """The oid of the relation `name` denotes, or None."""
    schema, dot, rel = name.partition(".")
    if dot and '"' not in name:
        oid = await conn.fetchval(_RESOLVE_EXACT, schema, rel)
        if oid is not None:
            return oid
    try:
        return await conn.fetchval("SELECT to_regclass($1)::oid", name)
    except asyncpg.PostgresError:  # not a parsable name: the same as an unknown one
        return None


async def describe(conn: asyncpg.Connection, oid: int, obj: asyncpg.Record, visible: Callable[[str], bool]) -> dict:
    """Columns, keys, indexes, row estimate and (views) definition. Foreign keys to hidden objects are left out."""
    columns = [dict(r) for r in await conn.fetch(_COLUMNS, oid)]
    primary_key: list[str] = []
    foreign_keys: list[dict[str, Any]] = []
    for con in await conn.fetch(_CONSTRAINTS, oid):
        if con["type"] == "p":
            primary_key = list(con["columns"])
            continue
        target = f"{con['ref_schema']}.{con['ref_name']}"
        if visible(target):
            foreign_keys.append(
                {"name": con["name"], "columns": list(con["columns"]),
                 "references": {"object": target, "columns": list(con["ref_columns"])}}
            )
    out: dict[str, Any] = {
        "name": f"{obj['schema']}.{obj['name']}",
        "kind": KINDS[obj["relkind"]],
        "comment": obj["comment"],
        "rows_estimate": obj["rows"],
        "columns": columns,
        "primary_key": primary_key,
        "foreign_keys": foreign_keys,
        "indexes": [dict(r) for r in await conn.fetch(_INDEXES, oid)],
    }
    if obj["definition"] is not None:
        out["definition"] = obj["definition"].strip()
    return out
