"""PostgreSQL through an asyncpg pool: the engine's tools, run behind the guard and inside the database's own walls.

Every pooled session is read-only by default and carries the statement/lock/idle timeouts (startup settings).
A query the guard vouches for as plain (a query running only built-in code) runs as one unnamed prepared
statement in its own implicit, read-only transaction, its rows fetched with one Execute of max_rows + 1. Any
other statement runs inside `BEGIN READ ONLY`, its rows through a cursor stopped at max_rows + 1 / max_bytes,
then `ROLLBACK` (and the session cleanup after code the guard cannot see). A connection lost to a restart is
retried once on a fresh one, so the database comes back without restarting dbmcp.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from pydantic import Field

from dbmcp.allowlist import matches
from dbmcp.config import PostgresDatabase
from dbmcp.connectors import postgres_catalog as catalog
from dbmcp.connectors.base import Answer, Args, Connector, ToolSpec
from dbmcp.errors import Refused, ToolError
from dbmcp.guards import sql as guard
from dbmcp.results import RowBudget, dumps, json_safe, table

log = logging.getLogger("dbmcp.postgres")
T = TypeVar("T")
_CHUNK = 5000  # rows per cursor round trip
_POLICY_RELOAD_S = 2.0  # at most this often, re-read the catalog when a query names something it lacks
_GRACE_S = 5.0  # client-side deadline beyond the server's statement_timeout
_LIMITED_FETCH = hasattr(PreparedStatement, "_PreparedStatement__bind_execute")  # asyncpg's Bind/Execute(limit)
_ONE_SHOT_ROWS = 10_001  # max_rows below this: a plain statement's rows come in one Execute (see _query_implicit)


class SqlQueryArgs(Args):
    sql: str = Field(description="One read-only SELECT/WITH/VALUES/TABLE statement")
    params: list[Any] | None = Field(None, description="Values for $1, $2, ...")


class SqlExplainArgs(Args):
    sql: str = Field(description="The query to plan (not executed)")


_CONNECTION_ERRORS = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    OSError,
)


class PostgresConnector(Connector):
    engine = "postgres"
    tools = (
        ToolSpec(
            "sql_query",
            "Run one read-only SQL query (PostgreSQL dialect) and return columns and rows. Results are capped; "
            "`truncated` is true when rows were left out. Use $1, $2 ... with `params` for values.",
            SqlQueryArgs,
            "read",
        ),
        ToolSpec(
            "sql_explain",
            "Show the PostgreSQL query plan (EXPLAIN, FORMAT JSON, not executed) for one read-only query.",
            SqlExplainArgs,
            "read",
        ),
    )
    config: PostgresDatabase

    def __init__(self, name: str, config: PostgresDatabase, limits: Any):
        super().__init__(name, config, limits)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._policy: guard.SqlPolicy | None = None
        self._policy_loaded_at = 0.0

    # ---- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._get_pool()
        except ToolError as e:
            log.warning("database %s: %s; will retry on first use", self.name, e.message)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), timeout=10)
            if not pool._closed:  # noqa: SLF001 - asyncpg has no public "is closed"
                pool.terminate()

    async def ping(self) -> None:
        await self._with_conn(lambda conn: conn.fetchval("SELECT 1"))

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                timeout_ms = str(int(self.limits.timeout_s * 1000))
                try:
                    self._pool = await asyncpg.create_pool(
                        self.config.url,
                        min_size=self.config.pool_min_size,
                        max_size=self.config.pool_max_size,
                        timeout=self.config.connect_timeout_s,
                        ssl=self._ssl(),
                        init=_init_connection,
                        connection_class=_Connection,
                        reset=_after_rollback,
                        server_settings={
                            "application_name": "dbmcp",
                            "default_transaction_read_only": "on",
                            "statement_timeout": timeout_ms,
                            "lock_timeout": timeout_ms,
                            "idle_in_transaction_session_timeout": timeout_ms,
                            "intervalstyle": "iso_8601",
                        },
                    )
                except (TimeoutError, asyncpg.PostgresError, *_CONNECTION_ERRORS) as e:
                    raise self._unreachable(e) from None
        return self._pool

    def _ssl(self) -> ssl.SSLContext | str | None:
        mode, ca = self.config.sslmode, self.config.ssl_ca_file
        if mode is None and ca is None:
            return None  # whatever the URL says (sslmode=... in the URL works too)
        if mode in ("disable", "allow", "prefer", "require") and ca is None:
            return mode
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = mode in (None, "verify-full")
        return ctx

    def _unreachable(self, e: BaseException) -> ToolError:
        log.warning("database %s unreachable: %s", self.name, type(e).__name__)
        if isinstance(e, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return ToolError(f"database {self.name!r} refused dbmcp's credentials")
        return self.unreachable()

    # ---- running things ---------------------------------------------------------------------------
    async def _with_conn(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run fn on a pooled connection; retry once on a connection lost (e.g. to a database restart)."""
        for attempt in (1, 2):
            pool = await self._get_pool()
            try:
                async with asyncio.timeout(self.limits.timeout_s + _GRACE_S):
                    async with pool.acquire() as conn:
                        return await fn(conn)
            except TimeoutError:
                raise self.timed_out() from None
            except asyncpg.QueryCanceledError:
                raise self.timed_out() from None
            except asyncpg.PostgresError as e:
                if isinstance(e, _CONNECTION_ERRORS) and attempt == 1:
                    continue
                raise _postgres_error(e, self.name) from None
            except _CONNECTION_ERRORS as e:
                if attempt == 1:
                    continue
                raise self._unreachable(e) from None
            except asyncpg.InterfaceError as e:
                hint = "; select its fields, (x).*, or to_jsonb(x)" if "composite" in _first_line(e) else ""
                raise ToolError(f"database {self.name!r}: {_first_line(e)}{hint}") from None
        raise AssertionError("unreachable")

    async def _read_only(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], opaque: bool = False) -> T:
        """fn inside BEGIN READ ONLY ... ROLLBACK, on a pooled connection."""
        return await self._with_conn(lambda conn: self._read_only_on(conn, lambda: fn(conn), opaque))

    @staticmethod
    async def _read_only_on(conn: asyncpg.Connection, fn: Callable[[], Awaitable[T]], opaque: bool) -> T:
        """fn inside BEGIN READ ONLY ... ROLLBACK. After a statement that ran user-defined functions (whose
        bodies the guard cannot see), the same round trip also releases session locks and listeners."""
        end = "ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all(); UNLISTEN *" if opaque else "ROLLBACK"
        await conn.execute("BEGIN READ ONLY")
        try:
            return await fn()
        finally:
            try:
                await conn.execute(end)
            except Exception:  # the connection is unusable: drop it rather than return it to the pool
                with contextlib.suppress(Exception):  # (the pool may have dropped it already)
                    conn.terminate()

    # ---- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, args: Args) -> Answer:
        if tool == "sql_query":
            assert isinstance(args, SqlQueryArgs)
            return await self.query(args.sql, args.params or [])
        if tool == "sql_explain":
            return await self.explain(args.sql)  # type: ignore[attr-defined]
        raise ToolError(f"unknown tool {tool!r}")

    async def guard_check(self, sql: str) -> guard.Checked:
        """The guard's verdict, with this database's allowlist and catalog (read once, again when it lags)."""
        for attempt in (1, 2):
            policy = self._policy if self._policy is not None else await self._load_policy()
            try:
                return guard.check_query(sql, policy)
            except guard.NeedsCatalog as e:
                if attempt == 2 or time.monotonic() - self._policy_loaded_at < _POLICY_RELOAD_S:
                    raise self._worded(e) from None
                await self._load_policy()
            except guard.HiddenRelation as e:
                raise self._worded(e) from None
        raise AssertionError("unreachable")

    def _worded(self, e: Exception) -> Refused:
        """Hidden and unknown relations read exactly like PostgreSQL's own error for a missing one."""
        message = e.message if isinstance(e, Refused) else str(e)
        return Refused(f"database {self.name!r}: {message}" if isinstance(e, guard.HiddenRelation) else message)

    async def _load_policy(self) -> guard.SqlPolicy:
        facts = await self._with_conn(lambda conn: conn.fetchrow(catalog.GUARD_FACTS))
        self._policy = catalog.guard_policy(facts, self.allowlist.allows, self.config.allow_functions,
                                            self.limits.timeout_s)
        self._policy_loaded_at = time.monotonic()
        return self._policy

    async def query(self, sql: str, params: list[Any]) -> Answer:
        checked = await self.guard_check(sql)
        one_shot = _plain(checked) and self.limits.max_rows < _ONE_SHOT_ROWS

        async def run(conn: asyncpg.Connection) -> Answer:
            if one_shot and _read_only_default(settings := conn.get_settings()):
                return await self._query_implicit(conn, settings, sql, params)
            return await self._read_only_on(conn, lambda: self._query_cursor(conn, sql, params), checked.opaque)

        return await self._with_conn(run)

    async def _query_implicit(self, conn: asyncpg.Connection, settings: Any, sql: str, params: list[Any]) -> Answer:
        """A plain statement (a query running only built-in code, see guard.Checked.plain) in its own implicit
        transaction, which the session's default_transaction_read_only makes read-only: Parse, then Bind/Execute
        of at most max_rows + 1 rows: two round trips where BEGIN/cursor/ROLLBACK take five. As a second wall for
        what ROLLBACK would have undone: should PostgreSQL report afterwards that the session is no longer
        read-only or has another search_path, or a command tag other than SELECT, the connection is closed before
        it can run anything else."""
        stmt = await conn.prepare(sql, name="")
        args = _coerce_params(params, stmt.get_parameters())
        records = await stmt._PreparedStatement__bind_execute(args, self.limits.max_rows + 1, None)  # noqa: SLF001
        # (a statement that failed changed nothing: its transaction rolled back)
        tag = stmt.get_statusmsg()  # None when rows were left in the portal: a query's rows
        intact = _read_only_default(settings) and getattr(settings, "search_path", None) == conn.opening_search_path
        if not (intact and (tag is None or tag.startswith("SELECT"))):
            log.error("database %s: a statement changed its session (%s); the connection is closed", self.name, tag)
            conn.terminate()
            raise Refused("refused: the statement changed the database session; its connection was closed")
        attributes, budget, convert = self._budget(stmt)
        for record in records:
            if not budget.add(convert(record)):
                break
        return _rows_answer(sql, attributes, budget)

    async def _query_cursor(self, conn: asyncpg.Connection, sql: str, params: list[Any]) -> Answer:
        """Inside BEGIN READ ONLY: rows through a cursor, _CHUNK at a time, until the budget is full."""
        stmt = await conn.prepare(sql, name="")
        attributes, budget, convert = self._budget(stmt)
        cursor = await stmt.cursor(*_coerce_params(params, stmt.get_parameters()))
        while not budget.truncated:
            chunk = await cursor.fetch(min(_CHUNK, self.limits.max_rows + 1 - len(budget.rows)))
            for record in chunk:
                if not budget.add(convert(record)):
                    break
            if len(chunk) == 0:
                break
        return _rows_answer(sql, attributes, budget)

    def _budget(self, stmt: Any) -> tuple[tuple[Any, ...], RowBudget, Callable[[asyncpg.Record], list[Any]]]:
        attributes = stmt.get_attributes()
        convert = _row_converter([a.type for a in attributes])
        return attributes, RowBudget(self.limits.max_rows, self.limits.max_bytes), convert

    async def explain(self, sql: str) -> Answer:
        checked = await self.guard_check(sql)
        has_params = checked.tree.find(guard.exp.Parameter) is not None
        query = checked.query or sql  # "EXPLAIN x" plans x

        async def run(conn: asyncpg.Connection) -> Answer:
            if not has_params:
                plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}")  # noqa: S608 - it passed the guard
                return Answer({"plan": plan[0]["Plan"]}, statement=sql)
            # $n placeholders without values: plan the prepared statement generically, whatever the values.
            # fetch, not execute: the extended protocol takes exactly one statement, as for sql_query.
            await conn.fetch(f"PREPARE dbmcp_explain AS {query}")  # noqa: S608 - it passed the guard
            try:
                n = await conn.fetchval(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'dbmcp_explain'"
                )
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                nulls = ", ".join(["NULL"] * n)
                plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE dbmcp_explain({nulls})")
            finally:
                try:
                    await conn.execute("DEALLOCATE dbmcp_explain")
                except asyncpg.PostgresError:  # the transaction failed: drop the connection, and the statement
                    conn.terminate()
            return Answer({"plan": plan[0]["Plan"]}, statement=sql)

        return await self._read_only(run, opaque=checked.opaque)

    async def list_objects(self, pattern: str | None) -> Answer:
        rows = await self._read_only(lambda conn: conn.fetch(catalog.LIST_OBJECTS))
        objects, truncated = [], False
        for r in rows:
            name = f"{r['schema']}.{r['name']}"
            if not self.allowlist.allows(name) or not matches(name, pattern):
                continue
            if len(objects) >= self.limits.max_rows:
                truncated = True
                break
            objects.append(
                {"name": name, "kind": catalog.KINDS[r["relkind"]], "rows": r["rows"], "comment": r["comment"]}
            )
        return Answer({"objects": objects, "truncated": truncated}, row_count=len(objects), truncated=truncated)

    async def describe_object(self, name: str) -> Answer:
        async def run(conn: asyncpg.Connection) -> Answer:
            oid = await catalog.resolve(conn, name)
            found = await conn.fetchrow(catalog.OBJECT, oid) if oid is not None else None
            full = f"{found['schema']}.{found['name']}" if found else None
            if found is None or not self.allowlist.allows(full):
                raise self.unknown_object(name)
            return Answer(await catalog.describe(conn, oid, found, self.allowlist.allows), object=full)

        return await self._read_only(run)

    async def check(self) -> list[str]:
        role = await self._read_only(lambda conn: conn.fetchrow(catalog.ROLE_CHECK))
        warnings = []
        if role["rolsuper"]:
            warnings.append(
                f"connects as superuser {role['rolname']!r}: use a read-only role (see docs/security.md)"
            )
        if role["owned"]:
            warnings.append(
                f"role {role['rolname']!r} owns {role['owned']} objects: a role that owns tables can change them; "
                "use a role with SELECT only"
            )
        return warnings


_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "timestamptz": datetime.datetime.fromisoformat, "timestamp": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat, "time": datetime.time.fromisoformat, "timetz": datetime.time.fromisoformat,
    "int2": int, "int4": int, "int8": int, "oid": int, "float4": float, "float8": float, "uuid": uuid.UUID,
    "bool": lambda v: {"true": True, "false": False, "t": True, "f": False}[v.lower()],
}


def _coerce_params(params: list[Any], types: tuple[Any, ...]) -> list[Any]:
    """JSON has no dates, UUIDs or 64-bit precision guarantees: accept their text forms for typed $n parameters."""
    out = []
    for i, (value, t) in enumerate(zip(params, types, strict=False), start=1):
        parse = _FROM_TEXT.get(t.name) if isinstance(value, str) else None
        try:
            out.append(parse(value) if parse else value)
        except (ValueError, KeyError):
            raise ToolError(f"params: ${i} {value!r} is not a valid {t.name}") from None
    return out + list(params[len(out):])


async def _after_rollback(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing left to do; every call ends with ROLLBACK and the session cleanup (see _read_only)."""


_IDENTITY_TYPES = frozenset({"int2", "int4", "int8", "oid", "text", "varchar", "bpchar", "name", "bool", "numeric",
                             "interval", "char", "citext"})


def _row_converter(types: list[Any]) -> Callable[[asyncpg.Record], list[Any]]:
    """Per-column conversion to JSON-safe values, chosen once per statement from the column types."""
    converters = [None if t.name in _IDENTITY_TYPES else json_safe for t in types]
    if not any(converters):
        return list
    return lambda record: [v if c is None or v is None else c(v) for c, v in zip(converters, record, strict=True)]


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Decode values into their exact JSON-safe forms (see dbmcp/results.py); remember the search_path."""
    conn.opening_search_path = getattr(conn.get_settings(), "search_path", None)
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, schema="pg_catalog", encoder=dumps, decoder=json.loads, format="text")
    for typename in ("numeric", "interval"):  # exact text, not a float or a lossy timedelta
        await conn.set_type_codec(typename, schema="pg_catalog", encoder=str, decoder=str, format="text")
    # row(...) values in PostgreSQL's text form, "(1,x)" (a table's row type still needs its fields selected)
    await conn.set_type_codec("record", schema="pg_catalog", encoder=str, decoder=str, format="text")


def _plain(checked: guard.Checked) -> bool:
    """Whether the guard vouched that the statement runs only built-in code (and asyncpg offers a limited fetch)."""
    return checked.plain and _LIMITED_FETCH


class _Connection(asyncpg.Connection):
    """A pooled connection that remembers the search_path PostgreSQL reported when it was opened (18+)."""

    __slots__ = ("opening_search_path",)


def _read_only_default(settings: Any) -> bool:
    """The session's default_transaction_read_only as PostgreSQL last reported it (14+; older ones do not).
    `settings` is the connection's ConnectionSettings, which asyncpg updates as reports arrive."""
    return getattr(settings, "default_transaction_read_only", None) == "on"


def _rows_answer(sql: str, attributes: tuple[Any, ...], budget: RowBudget) -> Answer:
    data, text = table([{"name": a.name, "type": _type_name(a.type)} for a in attributes], budget)
    return Answer(data, statement=sql, row_count=data["row_count"], truncated=data["truncated"], text=text)


def _type_name(t: Any) -> str:
    if t.kind == "array" and t.name.startswith("_"):
        return t.name[1:] + "[]"
    return t.name


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _postgres_error(e: asyncpg.PostgresError, database: str) -> ToolError:
    """A database error as one line: the server's message (it names only what the caller wrote), never detail."""
    message = _first_line(e)
    if e.sqlstate == "25006":  # read_only_sql_transaction: the second wall caught it
        return Refused(f"the database refused a write in a read-only transaction: {message}")
    if e.sqlstate == "42501":
        return ToolError(f"database {database!r}: {message} (the database role lacks this privilege)")
    return ToolError(f"database {database!r}: {message}")
