"""The SQL guard (PostgreSQL dialect, sqlglot): one read-only query, or a refusal that says why.

Fail closed: whatever sqlglot does not parse into a known read-only query shape is refused. The database
is the second wall (READ ONLY transaction, timeouts, rollback): see connectors/postgres.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmcp.errors import Refused

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback to a generic Command

_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)

# Node types that write, change state or escape the single-query model, wherever they appear in the tree.
_FORBIDDEN: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Insert, "INSERT"),
    (exp.Update, "UPDATE"),
    (exp.Delete, "DELETE"),
    (exp.Merge, "MERGE"),
    (exp.Create, "CREATE"),
    (exp.Drop, "DROP"),
    (exp.Alter, "ALTER"),
    (exp.TruncateTable, "TRUNCATE"),
    (exp.Copy, "COPY"),
    (exp.Grant, "GRANT"),
    (exp.Command, "a statement this guard does not understand"),
    (exp.Into, "SELECT INTO"),
    (exp.Lock, "FOR UPDATE/SHARE"),
    (exp.Set, "SET"),
    (exp.Transaction, "transaction control"),
    (exp.Commit, "transaction control"),
    (exp.Rollback, "transaction control"),
    (exp.Analyze, "ANALYZE"),
)


@dataclass(frozen=True)
class Checked:
    """A statement the guard accepted."""

    sql: str
    tree: exp.Expression


def check_query(sql: str) -> Checked:
    """Accept exactly one read-only query (SELECT, WITH ... SELECT, VALUES, TABLE, set operations)."""
    if not sql or not sql.strip():
        raise Refused("empty statement")
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except SqlglotError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise Refused(f"statement not understood, refused: {first[:200]}") from None
    if len(statements) != 1:
        raise Refused(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _READ_ROOTS):
        raise Refused(f"only read-only queries are allowed (SELECT, WITH, VALUES, TABLE); got {_kind(tree)}")
    for node in tree.walk():
        for node_type, what in _FORBIDDEN:
            if isinstance(node, node_type):
                raise Refused(f"only read-only queries are allowed; {what} refused")
    return Checked(sql=sql, tree=tree)


def _kind(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this).upper() or "a command"
    return tree.key.upper()
