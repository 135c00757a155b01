"""The SQL guard (PostgreSQL dialect, sqlglot): one read-only query inside the allowlist, or a refusal.

Fail closed at every step: the text must tokenize as PostgreSQL tokenizes it (guards/sql_syntax.py); a statement
that does not parse into a known read-only shape is refused; every node of the tree is checked (writes in CTEs and
subqueries, SELECT INTO, locking clauses); every call, attribute notation `x.func` included, must be known to be
read-only (guards/sql_functions.py); every relation read is resolved (CTEs, the real search_path, names in strings,
row types) and must be inside include/exclude, a hidden one refused in PostgreSQL's words for a missing one. The
database is the second wall: connectors/postgres.py, docs/security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from dbmcp.errors import Refused
from dbmcp.guards import sql_functions as fn
from dbmcp.guards.sql_functions import UNKNOWN, FunctionCatalog
from dbmcp.guards.sql_syntax import (
    array_depth,
    array_items,
    explained_query,
    ident,
    in_type_name,
    lexical_problem,
    not_understood,
    reg_type,
    type_ref,
)

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
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_USER_TYPE = exp.DataType.Type.USERDEFINED
_COMPUTED = "refused: a relation or type given by a computed name or oid is not allowed here; name it in a string"
_CATALOG_FUNCTIONS = "reads the system catalogs, which this database's allowlist does not include"


class HiddenRelation(Refused):
    """A relation outside the allowlist: worded exactly as PostgreSQL words one that does not exist."""


class NeedsCatalog(Refused):
    """A refusal that a fresher catalog might lift (an object created after the catalog was read)."""


class UnknownFunction(NeedsCatalog):
    """A function the cached catalog does not know."""


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
    catalog_visible: bool = True  # the allowlist admits pg_catalog.pg_class: catalog facts are not secret
    user_types: frozenset[str] = frozenset()  # "schema.name" of user types that are not a relation's row type
    # Where code the guard cannot see may run: views and row-security tables ("schema.name"); user-defined
    # operators or casts anywhere make every statement opaque.
    opaque_relations: frozenset[str] = frozenset()
    always_opaque: bool = False
    # Verdicts already reached under this policy (a new policy starts empty): by text, and by shape (see _shape).
    verdicts: dict[Any, Checked] = field(default_factory=dict, init=False, compare=False, repr=False)


@dataclass(frozen=True)
class Checked:
    """A statement the guard accepted, and the relations it reads (schema.name)."""

    sql: str
    tree: exp.Expression  # on a shape hit, the tree of an earlier text that differed only in number literals
    relations: tuple[str, ...]
    opaque: bool = False  # it may run code the guard cannot see (user functions, views): clean the session after
    query: str = ""  # the read query itself (without EXPLAIN and its options, when the statement is one)
    # The guard vouches that PostgreSQL's grammar reads it as a query (it starts with SELECT, WITH, VALUES, TABLE
    # or a parenthesis: no DO, CALL or SET can hide in it) and that only built-in code runs (no user functions,
    # views, policies, user types, operators or casts): nothing in it can change the session, so the connector may
    # run it outside an explicit transaction.
    plain: bool = False


class _Seen:
    """What the walk found: the relations read, and whether code the guard cannot see may run."""

    __slots__ = ("relations", "opaque")

    def __init__(self, opaque: bool):
        self.relations: list[str] = []
        self.opaque = opaque


def check_query(sql: str, policy: SqlPolicy) -> Checked:
    """Accept exactly one read-only query (SELECT, WITH ... SELECT, VALUES, TABLE, set operations, EXPLAIN).

    Verdicts are remembered per policy: by text, and by shape, the tokens with number literals left out, when no
    number in the statement is an argument of a call, cast or array (where the guard reads values: pg_sleep's
    seconds, regclass[] items). Only acceptances are remembered; a refusal is worked out again each time."""
    verdicts = policy.verdicts
    known = verdicts.get(sql)
    if known is not None:
        return known
    tokens = _tokens(sql)
    shape = _shape(tokens)
    known = verdicts.get(shape)
    if known is not None:
        checked = replace(known, sql=sql, query=sql)
    else:
        checked = _check(sql, tokens, policy)
        if checked.query is sql and _numbers_are_values(checked.tree):
            _remember(verdicts, shape, checked)
    _remember(verdicts, sql, checked)
    return checked


def _check(sql: str, tokens: list[Token], policy: SqlPolicy) -> Checked:
    tree, query = _parse_tokens(sql, tokens), sql
    if isinstance(tree, exp.Command) and str(tree.this).upper() == "EXPLAIN":
        query = _explained(tree)
        tree = _parse_one(query)
    if not isinstance(tree, _READ_ROOTS):
        raise Refused(f"refused: {_kind(tree)} is not allowed; dbmcp runs read-only queries")
    seen = _Seen(policy.always_opaque)
    for node in tree.walk():
        _check_node(node, policy, seen)
    return Checked(sql=sql, tree=tree, relations=tuple(seen.relations), opaque=seen.opaque, query=query,
                   plain=not seen.opaque and tokens[0].token_type in _QUERY_FIRST)


_QUERY_FIRST = frozenset({TokenType.SELECT, TokenType.WITH, TokenType.VALUES, TokenType.TABLE, TokenType.L_PAREN})
_VERDICTS_KEPT = 4096
_NUMBER = TokenType.NUMBER


def _remember(verdicts: dict[Any, Checked], key: Any, checked: Checked) -> None:
    if len(verdicts) >= _VERDICTS_KEPT:
        verdicts.clear()
    verdicts[key] = checked


def _shape(tokens: list[Token]) -> tuple[Any, ...]:
    """The statement with its number literals left out. Two texts with the same shape parse into the same tree but
    for those numbers (sqlglot's parser never branches on a number's digits); strings and names stay in."""
    return tuple(_NUMBER if t.token_type is _NUMBER else (t.token_type, t.text) for t in tokens)


def _numbers_are_values(tree: exp.Expression) -> bool:
    """Whether no number literal is an argument of a call, cast or array: the only places the guard reads one."""
    return not any(
        not lit.is_string and isinstance(lit.parent, exp.Func) for lit in tree.find_all(exp.Literal)
    )


def _check_node(node: exp.Expression, policy: SqlPolicy, seen: _Seen) -> None:
    if isinstance(node, _FORBIDDEN_TYPES):
        raise Refused(f"refused: {_forbidden(node)} is not allowed; dbmcp runs read-only queries")
    if isinstance(node, exp.Table):
        relation = _relation(node, policy)
        if relation:
            seen.relations.append(relation)
            seen.opaque = seen.opaque or relation in policy.opaque_relations
    elif isinstance(node, exp.Anonymous):
        seen.opaque = _check_call(node, policy, seen.relations) or seen.opaque
    elif isinstance(node, exp.Cast):
        _check_cast(node, policy, seen.relations)
    elif isinstance(node, exp.Column):
        if node.args.get("table") is not None:  # x.f is f(x) when x has no column f: attribute notation
            _check_attribute_call(node.this, policy, seen)
            if node.args.get("db") is not None:
                _check_attribute_call(node.args["table"], policy, seen)
    elif isinstance(node, exp.Dot) and not in_type_name(node):
        _check_attribute_call(node.expression, policy, seen)
    elif isinstance(node, exp.DataType):
        if node.this == _USER_TYPE:
            schema, name = type_ref(node)
            shown = (f"{schema}.{name}" if schema else name) + "[]" * array_depth(node)
            user = _check_type_name(schema, name, policy, shown=shown)
            seen.opaque = seen.opaque or user  # a domain's CHECK, a type's input function
    elif isinstance(node, exp.CTE) and not isinstance(node.this, _READ_ROOTS):  # a CTE body must be a query too
        raise Refused(f"refused: {_kind(node.this)} is not allowed; dbmcp runs read-only queries")
    elif isinstance(node, exp.Func):
        reason = fn.typed_reason(policy.functions, type(node))
        if reason:
            raise Refused(f"refused: {reason}")
        seen.opaque = seen.opaque or fn.user_named(policy.functions, type(node))


# ---- parsing: one statement, tokenized as PostgreSQL tokenizes it ---------------------------------------------
@lru_cache(maxsize=1024)
def _parse_cached(sql: str) -> exp.Expression | str:
    """The single statement's tree (shared and read-only: callers never modify it), or why it was refused."""
    try:
        return _parse_tokens(sql, _tokens(sql))
    except Refused as e:
        return e.message


def _tokens(sql: str) -> list[Token]:
    """sqlglot's tokens, refused unless PostgreSQL would read the same ones (guards/sql_syntax.py)."""
    if not sql or not sql.strip():
        raise Refused("refused: empty statement")
    try:
        tokens = _DIALECT.tokenize(sql)
    except SqlglotError as e:
        raise Refused(_not_understood(e)) from None
    except Exception as e:  # noqa: BLE001 - any tokenizer failure fails closed
        raise Refused(not_understood(type(e).__name__)) from None
    problem = lexical_problem(sql, tokens) if tokens else "refused: empty statement"
    if problem:
        raise Refused(problem)
    return tokens


def _parse_tokens(sql: str, tokens: list[Token]) -> exp.Expression:
    try:
        statements = [s for s in _DIALECT.parser().parse(tokens, sql) if s is not None]
    except SqlglotError as e:
        raise Refused(_not_understood(e)) from None
    except Exception as e:  # noqa: BLE001 - any parser failure (recursion depth, internal errors) fails closed
        raise Refused(not_understood(type(e).__name__)) from None
    if len(statements) != 1:
        raise Refused(f"refused: exactly one statement is allowed, got {len(statements)}")
    return statements[0]


def _not_understood(e: SqlglotError) -> str:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return not_understood(first[:160])


def _parse_one(sql: str) -> exp.Expression:
    parsed = _parse_cached(sql)
    if isinstance(parsed, str):
        raise Refused(parsed)
    return parsed


def _explained(command: exp.Command) -> str:
    """EXPLAIN without ANALYZE of a read query: the query's text."""
    rest = command.expression.name if isinstance(command.expression, exp.Literal) else str(command.expression or "")
    return explained_query(rest)


def _kind(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this).upper() or "this statement"
    return _forbidden(tree)


def _forbidden(node: exp.Expression) -> str:
    """What a node that is not a read query does, in a refusal's words."""
    return next((v for k, v in _FORBIDDEN.items() if isinstance(node, k)), "this statement")


# ---- relations ------------------------------------------------------------------------------------------------
def _relation(table: exp.Table, policy: SqlPolicy) -> str | None:
    """The relation a table reference reads (None for CTE names and table functions); refuse hidden ones."""
    if not isinstance(table.this, exp.Identifier):
        return None
    name, schema = ident(table.this), ident(table.args.get("db"))
    if schema is None and _shadowed_by_cte(table, name):
        return None
    qualified = _resolve(schema, name, policy, shown=f"{schema}.{name}" if schema else name)
    if qualified in fn.DATA_RELATIONS or name in fn.DATA_RELATION_NAMES:  # visible, so it may be named
        raise Refused(f"refused: {qualified} is not allowed: it shows row values of other tables, other sessions' "
                      "statements or secrets")
    return qualified


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
    """Whether an unqualified name refers to a CTE visible at this point: earlier CTEs of a WITH, every CTE of a
    WITH RECURSIVE, all of them from the query the WITH belongs to."""
    path: list[exp.Expression] = [table]
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            inside = next((c for c in ctes if c in path), None)
            visible = ctes if inside is None or with_.args.get("recursive") else ctes[: ctes.index(inside)]
            if any(ident(c.args["alias"].this) == name for c in visible if c.args.get("alias")):
                return True
        path.append(node)
        node = node.parent
    return False


def _relation_named(text: str, policy: SqlPolicy) -> str:
    """A relation named by a string (regclass input): resolved and checked like a table reference."""
    table = _name_in_string(text, "relation")
    schema, name = ident(table.args.get("db")), ident(table.this)
    return _resolve(schema, name, policy, shown=f"{schema}.{name}" if schema else name)


def _name_in_string(text: str, what: str) -> exp.Table:
    try:
        table = _DIALECT.parse_into(exp.Table, text)[0]
    except SqlglotError:
        table = None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        raise HiddenRelation(f'{what} "{text}" does not exist')
    return table


# ---- types: a table's row type shows its columns ------------------------------------------------------------
def _check_type_name(schema: str | None, name: str, policy: SqlPolicy, shown: str) -> bool:
    """A user-defined type: refused when it is the row type (or its array) of a relation outside the allowlist.
    Returns whether it is a type outside the system schemas (its input function or domain checks are code)."""
    if schema is not None:
        return _check_type_in(schema, name, policy, shown)
    bases = (name, name[1:]) if name.startswith("_") else (name,)
    for s in policy.search_path:
        if f"{s}.{name}" in policy.user_types:
            return True
        if any(s in policy.relations.get(b, ()) for b in bases):
            return _check_type_in(s, name, policy, shown)
    return False  # a built-in type, or none at all (PostgreSQL says so)


def _check_type_in(schema: str, name: str, policy: SqlPolicy, shown: str) -> bool:
    base = name[1:] if name.startswith("_") else None
    if schema in _SYSTEM_SCHEMAS:
        return False
    if f"{schema}.{name}" in policy.user_types or (base and f"{schema}.{base}" in policy.user_types):
        return True
    if not (policy.allows(f"{schema}.{name}") and (base is None or policy.allows(f"{schema}.{base}"))):
        raise HiddenRelation(f'type "{shown}" does not exist')
    return False  # a relation's row type


def _check_type_string(text: str, policy: SqlPolicy) -> None:
    core, brackets = text.strip(), ""
    while core.endswith("[]"):
        core, brackets = core[:-2].rstrip(), brackets + "[]"
    try:
        if exp.DataType.build(core, dialect=_DIALECT).this != _USER_TYPE:
            return
    except (SqlglotError, ValueError):
        pass
    table = _name_in_string(core, "type")
    schema, name = ident(table.args.get("db")), ident(table.this)
    _check_type_name(schema, name, policy, shown=(f"{schema}.{name}" if schema else name) + brackets)


def _check_cast(cast: exp.Cast, policy: SqlPolicy, relations: list[str]) -> None:
    """'x'::regclass and 'x'::regtype name a relation (or its row type): checked like a reference to it."""
    kind, array = reg_type(cast.to)
    if kind is None:
        return
    arg = cast.this
    if array and isinstance(arg, exp.Array) and all(isinstance(e, exp.Literal) for e in arg.expressions):
        names = [e.this for e in arg.expressions]
    else:
        text = _named_in_string(arg, policy)
        if text is None:
            return
        names = array_items(text) if array else [text]
        if names is None:
            raise Refused(_COMPUTED)
    for name in names:
        if kind == "regclass":
            relations.append(_relation_named(name, policy))
        else:
            _check_type_string(name, policy)


# ---- functions ----------------------------------------------------------------------------------------------
def _check_call(call: exp.Anonymous, policy: SqlPolicy, relations: list[str]) -> bool:
    """Refuse a call that is not known to be read-only; return whether it may be a user-defined function."""
    name = call.name.lower()
    schema = None
    if isinstance(call.parent, exp.Dot) and call.parent.expression is call:
        schema = call.parent.this.sql(dialect="postgres").strip('"').lower()
    reason = fn.call_reason(policy.functions, schema, name, call.expressions, policy.max_sleep_s)
    if reason:
        raise (UnknownFunction if reason.endswith(UNKNOWN) else Refused)(f"refused: {reason}")
    builtin = schema in (None, "pg_catalog")
    if builtin and name.startswith("to_reg") and not policy.catalog_visible:  # NULL for a missing name: telling
        raise Refused(f"refused: {name}() {_CATALOG_FUNCTIONS}")
    args = call.expressions
    positions = fn.relation_positions(policy.functions, name, len(args))
    for i in positions:
        _check_relation_argument(args[i], policy, relations)
    type_index = fn.TYPE_ARGUMENT.get(name, {}).get(len(args)) if builtin else None
    if type_index is not None:
        text = _named_in_string(args[type_index], policy)
        if text is not None:
            _check_type_string(text, policy)
    elif builtin and not positions and not policy.catalog_visible and fn.catalog_reader(name):
        raise Refused(f"refused: {name}() {_CATALOG_FUNCTIONS}")
    return not (builtin and fn.builtin_only(policy.functions, schema, name))


def _check_attribute_call(node: exp.Expression | None, policy: SqlPolicy, seen: _Seen) -> None:
    if isinstance(node, exp.Identifier):
        name = ident(node)
        reason = fn.attribute_reason(policy.functions, name, policy.catalog_visible)
        if reason:
            raise Refused(f"refused: {reason}")
        seen.opaque = seen.opaque or fn.user_named(policy.functions, name)


def _check_relation_argument(arg: exp.Expression, policy: SqlPolicy, relations: list[str]) -> None:
    """A relation named by a string (pg_relation_size('x'), has_table_privilege('x', ...)) is checked like a table
    reference."""
    text = _named_in_string(arg, policy)
    if text is not None:
        relations.append(_relation_named(text, policy))


def _named_in_string(arg: exp.Expression, policy: SqlPolicy) -> str | None:
    """The name an argument gives as a string literal, to be checked; None for a column (an oid from the catalogs),
    allowed only when the catalogs are visible anyway; anything else (a computed name or oid) is refused."""
    if isinstance(arg, exp.Literal) and arg.is_string:
        return arg.this
    if isinstance(arg, exp.Column) and policy.catalog_visible:
        return None
    raise Refused(_COMPUTED)
