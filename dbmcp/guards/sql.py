"""The SQL guard (PostgreSQL dialect, sqlglot): one read-only query inside the allowlist, or a refusal.

Fail closed at every step: a statement sqlglot does not parse into a known read-only shape is refused; every
node of the tree is checked (writes hidden in CTEs and subqueries, SELECT INTO, locking clauses); every function
call must be known to be read-only (guards/sql_functions.py); every relation the statement reads is resolved
(CTE names shadow tables, unqualified names through the connection's real search_path) and must be inside the
database's include/exclude lists; a hidden relation is refused in exactly the words PostgreSQL uses for one that
does not exist. The database is the second wall (READ ONLY transaction, timeouts, rollback):
see connectors/postgres.py and docs/security.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError

from dbmcp.errors import Refused
from dbmcp.guards.sql_functions import RELATION_ARGUMENT, UNKNOWN, FunctionCatalog, verdict

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback to a generic Command

_DIALECT = Postgres()
_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)
# Node types that write, change state or escape the single-query model, wherever they appear in the tree.
_FORBIDDEN: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE", exp.Create: "CREATE",
    exp.Drop: "DROP", exp.Alter: "ALTER", exp.TruncateTable: "TRUNCATE", exp.Copy: "COPY", exp.Grant: "GRANT",
    exp.Command: "this statement", exp.Into: "SELECT INTO", exp.Lock: "FOR UPDATE/SHARE", exp.Set: "SET",
    exp.Transaction: "transaction control", exp.Commit: "transaction control",
    exp.Rollback: "transaction control", exp.Analyze: "ANALYZE",
}
_FORBIDDEN_TYPES = tuple(_FORBIDDEN)
_EXPLAIN_OPTIONS = {"VERBOSE", "COSTS", "SETTINGS", "GENERIC_PLAN", "BUFFERS", "WAL", "TIMING", "SUMMARY",
                    "MEMORY", "FORMAT", "SERIALIZE"}
_REGCLASS = {"REGCLASS"}


class HiddenRelation(Refused):
    """A relation outside the allowlist: worded exactly as PostgreSQL words one that does not exist."""


class NeedsCatalog(Refused):
    """A refusal that a fresher catalog might lift (an object created after the catalog was read)."""


class UnknownFunction(NeedsCatalog):
    pass


class UnknownRelation(HiddenRelation, NeedsCatalog):
    """An unqualified relation the cached catalog does not know: the connector reloads the catalog and retries."""

    def __init__(self, name: str):
        super().__init__(f'relation "{name}" does not exist')
        self.name = name


@dataclass(frozen=True)
class SqlPolicy:
    """What the guard needs to know about one database: its allowlist and catalog facts."""

    allows: Callable[[str], bool] = lambda name: True
    search_path: tuple[str, ...] = ("pg_catalog", "public")
    relations: Mapping[str, frozenset[str]] = field(default_factory=dict)  # relname -> schemas that have it
    functions: FunctionCatalog = FunctionCatalog()
    max_sleep_s: float = 30.0


@dataclass(frozen=True)
class Checked:
    """A statement the guard accepted, and the relations it reads (schema.name)."""

    sql: str
    tree: exp.Expression
    relations: tuple[str, ...]
    opaque: bool = False  # it calls user-defined functions, whose bodies the guard cannot see


def check_query(sql: str, policy: SqlPolicy) -> Checked:
    """Accept exactly one read-only query (SELECT, WITH ... SELECT, VALUES, TABLE, set operations, EXPLAIN)."""
    tree = _parse_one(sql)
    if isinstance(tree, exp.Command) and str(tree.this).upper() == "EXPLAIN":
        tree = _explained(tree)
    if not isinstance(tree, _READ_ROOTS):
        raise Refused(f"refused: {_kind(tree)} is not allowed; dbmcp runs read-only queries")
    relations: list[str] = []
    opaque = False
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_TYPES):
            raise Refused(f"refused: {_FORBIDDEN[type(node)]} is not allowed; dbmcp runs read-only queries")
        if isinstance(node, exp.Table):
            relation = _relation(node, policy)
            if relation:
                relations.append(relation)
        elif isinstance(node, exp.Anonymous):
            opaque = _check_call(node, policy, relations) or opaque
        elif isinstance(node, exp.Cast) and node.to.sql(dialect="postgres").upper() in _REGCLASS:
            _check_relation_argument(node.this, policy, relations)
    return Checked(sql=sql, tree=tree, relations=tuple(relations), opaque=opaque)


@lru_cache(maxsize=1024)
def _parse_cached(sql: str) -> exp.Expression | str:
    """The single statement's tree (shared and read-only: callers never modify it), or why it was refused."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=_DIALECT) if s is not None]
    except SqlglotError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"refused: the statement is not understood ({first[:160]}); dbmcp runs read-only queries only"
    if len(statements) != 1:
        return f"refused: exactly one statement is allowed, got {len(statements)}"
    return statements[0]


def _parse_one(sql: str) -> exp.Expression:
    if not sql or not sql.strip():
        raise Refused("refused: empty statement")
    parsed = _parse_cached(sql)
    if isinstance(parsed, str):
        raise Refused(parsed)
    return parsed


def _explained(command: exp.Command) -> exp.Expression:
    """EXPLAIN without ANALYZE of a read query: the query's tree (the options are checked here)."""
    rest = command.expression.name if isinstance(command.expression, exp.Literal) else str(command.expression or "")
    options: list[str] = []
    match = re.match(r"\s*\(([^()]*)\)", rest)
    if match:
        options = [o.strip().split()[0].upper() for o in match.group(1).split(",") if o.strip()]
        rest = rest[match.end():]
    else:
        while (word := re.match(r"\s*([A-Za-z_]+)\b", rest)) and word.group(1).upper() in {"VERBOSE", "ANALYZE",
                                                                                        "ANALYSE"}:
            options.append(word.group(1).upper())
            rest = rest[word.end():]
    if any(o in ("ANALYZE", "ANALYSE") for o in options):
        raise Refused("refused: EXPLAIN ANALYZE runs the statement; use sql_explain (it never executes)")
    if any(o not in _EXPLAIN_OPTIONS for o in options):
        raise Refused("refused: unknown EXPLAIN option; dbmcp runs read-only queries")
    return _parse_one(rest)


def _kind(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this).upper() or "this statement"
    return {"select": "SELECT"}.get(tree.key, tree.key.upper())


def _ident(node: exp.Expression | None) -> str | None:
    """An identifier as PostgreSQL sees it: quoted keeps its case, unquoted folds to lower case."""
    if node is None:
        return None
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.lower()
    return node.name.lower() or None


def _relation(table: exp.Table, policy: SqlPolicy) -> str | None:
    """The relation a table reference reads (None for CTE names and table functions); refuse hidden ones."""
    if not isinstance(table.this, exp.Identifier):
        return None
    name, schema = _ident(table.this), _ident(table.args.get("db"))
    if schema is None and _shadowed_by_cte(table, name):
        return None
    return _resolve(schema, name, policy, shown=f"{schema}.{name}" if schema else name)


def _resolve(schema: str | None, name: str, policy: SqlPolicy, shown: str) -> str:
    if schema is None:
        schema = next((s for s in policy.search_path if s in policy.relations.get(name, ())), None)
        if schema is None:
            raise UnknownRelation(shown)
    qualified = f"{schema}.{name}"
    if not policy.allows(qualified):
        raise HiddenRelation(f'relation "{shown}" does not exist')
    return qualified


def _shadowed_by_cte(table: exp.Table, name: str) -> bool:
    """Whether an unqualified name refers to a CTE visible at this point (earlier CTEs; itself when RECURSIVE)."""
    path: list[exp.Expression] = [table]
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            inside = next((c for c in ctes if c in path), None)
            if inside is None:
                visible = ctes
            else:
                i = ctes.index(inside)
                visible = ctes[: i + 1] if with_.args.get("recursive") else ctes[:i]
            if any(_ident(c.args["alias"].this) == name for c in visible if c.args.get("alias")):
                return True
        path.append(node)
        node = node.parent
    return False


def _check_call(call: exp.Anonymous, policy: SqlPolicy, relations: list[str]) -> bool:
    """Refuse a call that is not known to be read-only; return whether it is a user-defined function."""
    name = call.name.lower()
    schema = None
    if isinstance(call.parent, exp.Dot) and call.parent.expression is call:
        schema = call.parent.this.sql(dialect="postgres").strip('"').lower()
    reason = verdict(policy.functions, schema, name)
    if reason is None and name == "pg_sleep":
        reason = _sleep_reason(call, policy.max_sleep_s)
    if name in ("pg_sleep_for", "pg_sleep_until"):
        reason = f"{name}() is not allowed; use pg_sleep(seconds) within the timeout"
    if reason:
        raise (UnknownFunction if reason.endswith(UNKNOWN) else Refused)(f"refused: {reason}")
    positions = RELATION_ARGUMENT.get(name)
    if positions:
        index = positions.get(len(call.expressions))
        if index is not None:
            _check_relation_argument(call.expressions[index], policy, relations)
    builtin = schema in (None, "pg_catalog") and (
        name in policy.functions.builtin or name in policy.functions.builtin_volatile)
    return not builtin


def _sleep_reason(call: exp.Anonymous, limit: float) -> str | None:
    arg = call.expressions[0] if len(call.expressions) == 1 else None
    if isinstance(arg, exp.Literal) and not arg.is_string:
        try:
            if float(arg.this) <= limit:
                return None
        except ValueError:
            pass
    return f"pg_sleep() is not allowed beyond the timeout ({limit:g} s) or with a computed argument"


def _check_relation_argument(arg: exp.Expression, policy: SqlPolicy, relations: list[str]) -> None:
    """A relation named by a string (pg_relation_size('x'), 'x'::regclass) is checked like a table reference."""
    if isinstance(arg, exp.Column):
        return  # e.g. an oid from a catalog table, which the allowlist itself admitted
    if not (isinstance(arg, exp.Literal) and arg.is_string):
        raise Refused("refused: a relation given by a computed name is not allowed")
    try:
        table = sqlglot.parse_one(arg.this, read=_DIALECT, into=exp.Table)
    except SqlglotError:
        raise HiddenRelation(f'relation "{arg.this}" does not exist') from None
    schema, name = _ident(table.args.get("db")), _ident(table.this)
    relations.append(_resolve(schema, name, policy, shown=f"{schema}.{name}" if schema else name))
