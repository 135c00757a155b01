"""MongoDB through PyMongo's async client (the successor of Motor): collections, inferred schemas, bounded reads.

Every operation carries maxTimeMS from limits.timeout_s (and a client-side deadline a little later) and a row
bound (max_rows + 1, so `truncated` is exact); documents stream from the cursor into the row/byte budget and the
cursor is closed as soon as a cap is reached. Filters and pipelines pass the guard (guards/mongo.py) as the
caller wrote them, before anything is sent. Documents come back as MongoDB relaxed Extended JSON (README "Value
types"); Extended JSON is accepted in filters and pipelines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import bson
import orjson
from bson import json_util
from pydantic import Field
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout, OperationFailure, PyMongoError

from dbmcp.allowlist import matches
from dbmcp.config import Limits, MongoDatabase
from dbmcp.connectors.base import Answer, Args, Connector, ToolSpec
from dbmcp.connectors.mongodb_schema import Shape
from dbmcp.errors import Refused, ToolError
from dbmcp.guards import mongo as guard
from dbmcp.results import RowBudget, dumps

log = logging.getLogger("dbmcp.mongodb")
T = TypeVar("T")
_RELAXED = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED, tz_aware=True)
_COUNTED_COLLECTIONS = 100  # list_objects reads estimated counts for this many collections at most
_COUNT_CONCURRENCY = 8
_RELIST_S = 2.0  # at most this often, re-read the collection list when a query names one it lacks
_BATCH = 1000  # documents per cursor round trip at most
_UNAUTHORIZED, _AUTH_FAILED = 13, 18
_WRITE_ACTIONS = frozenset({
    "anyAction", "insert", "update", "remove", "createCollection", "dropCollection", "dropDatabase", "createIndex",
    "dropIndex", "collMod", "renameCollectionSameDB", "convertToCapped", "createSearchIndexes", "dropSearchIndex",
})


class FindArgs(Args):
    collection: str = Field(description="Collection name")
    filter: dict[str, Any] | None = Field(None, description="Query filter (Extended JSON accepted)")
    projection: dict[str, Any] | None = None
    sort: dict[str, int] | None = Field(None, description='e.g. {"created_at": -1}')
    limit: int | None = Field(None, description="At most this many documents (capped by the server's max_rows)")


class AggregateArgs(Args):
    collection: str = Field(description="Collection name")
    pipeline: list[Any] = Field(description="Aggregation pipeline: read-only stages (Extended JSON accepted)")


class MongoConnector(Connector):
    engine = "mongodb"
    tools = (
        ToolSpec("mongo_find", "Find documents in a MongoDB collection (read-only, capped; `truncated` says when "
                 "documents were left out). Values are relaxed Extended JSON.", FindArgs, "read"),
        ToolSpec("mongo_aggregate", "Run a read-only aggregation pipeline on a MongoDB collection ($out, $merge and "
                 "server-side code are refused; results capped).", AggregateArgs, "read"),
    )
    config: MongoDatabase

    def __init__(self, name: str, config: MongoDatabase, limits: Limits):
        super().__init__(name, config, limits)
        self.policy = guard.MongoPolicy(self.allowlist.allows, name)
        self._client: AsyncMongoClient | None = None
        self._collections: set[str] | None = None  # names seen by listCollections, re-read when one is missing
        self._collections_read_at = 0.0

    # ---- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        timeout_ms = int(min(self.limits.timeout_s, 10) * 1000)
        try:  # no I/O here: the client connects (and resolves mongodb+srv) in the background and on demand
            self._client = AsyncMongoClient(
                self.config.url, appname="dbmcp", tz_aware=True, readPreference=self.config.read_preference,
                serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            )
        except (PyMongoError, ValueError, TypeError) as e:  # the message may quote the URL: log the type only
            log.warning("database %s: invalid MongoDB URL or options (%s)", self.name, type(e).__name__)
            self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        await self._run(lambda db: db.command("ping"))

    async def _run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run `operation(db)` within the deadline; driver errors become one line that never shows the URL."""
        if self._client is None:
            raise ToolError(f"database {self.name!r} has an invalid MongoDB URL or options")
        try:
            async with asyncio.timeout(self.limits.timeout_s + min(self.limits.timeout_s, 5.0)):
                return await operation(self._client[self.config.database])
        except (ExecutionTimeout, TimeoutError):
            raise self.timed_out() from None
        except OperationFailure as e:
            if e.code in (_UNAUTHORIZED, _AUTH_FAILED):
                raise ToolError(f"database {self.name!r} refused dbmcp's credentials or permissions") from None
            message = (e.details or {}).get("errmsg") or str(e)
            raise ToolError(f"database {self.name!r}: {message.strip()[:300]}") from None
        except PyMongoError as e:
            log.warning("database %s unreachable: %s", self.name, type(e).__name__)
            raise self.unreachable() from None
        except (bson.errors.BSONError, OverflowError) as e:  # a value BSON cannot hold (e.g. an int over 64 bits)
            raise ToolError(f"invalid query: {str(e).strip()[:200]}") from None

    # ---- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, args: Args) -> Answer:
        if isinstance(args, FindArgs):
            return await self.find(args)
        if isinstance(args, AggregateArgs):
            return await self.aggregate(args.collection, args.pipeline)
        raise ToolError(f"unknown tool {tool!r}")

    async def _require(self, names: list[str]) -> None:
        """Refuse a read of a collection that does not exist, worded as for one outside the allowlist."""
        for name in names:
            stale = time.monotonic() - self._collections_read_at > _RELIST_S
            if self._collections is None or (name not in self._collections and stale):
                self._collections = {i["name"] for i in await self._run(_list_collections)}
                self._collections_read_at = time.monotonic()
            if name not in self._collections:
                raise Refused(self.policy.missing(name))

    async def find(self, args: FindArgs) -> Answer:
        collection = self.policy.collection(args.collection)
        for value, what in ((args.filter, "filter"), (args.projection, "projection"), (args.sort, "sort")):
            guard.check_filter(value, self.policy, what)
        limit, capped = self._limit(args.limit)
        query, projection = _extended(args.filter, "filter"), _extended(args.projection, "projection")
        await self._require([collection])
        budget = RowBudget(self.limits.max_rows, self.limits.max_bytes)

        async def run(db: Any) -> None:
            fetch = limit + 1 if capped else limit  # the extra document tells a cap from an exact fit
            cursor = db[collection].find(query or {}, projection, sort=list(args.sort.items()) if args.sort else None,
                                         limit=fetch, batch_size=min(fetch, _BATCH), max_time_ms=self._max_time_ms)
            await _drain(cursor, budget)

        await self._run(run)
        statement = dumps({"filter": args.filter, "projection": args.projection, "sort": args.sort,
                           "limit": args.limit})
        return _documents(budget, collection, statement)

    async def aggregate(self, collection: str, pipeline: list[Any]) -> Answer:
        collection = self.policy.collection(collection)
        reads = guard.check_pipeline(pipeline, self.policy)
        stages = _extended(pipeline, "pipeline")
        await self._require([collection, *reads])
        budget = RowBudget(self.limits.max_rows, self.limits.max_bytes)
        bounded = [*stages, {"$limit": self.limits.max_rows + 1}]  # a caller's smaller $limit is not truncation

        async def run(db: Any) -> None:
            cursor = await db[collection].aggregate(bounded, maxTimeMS=self._max_time_ms,
                                                    batchSize=min(self.limits.max_rows + 1, _BATCH))
            await _drain(cursor, budget)

        await self._run(run)
        return _documents(budget, collection, dumps(pipeline))

    @property
    def _max_time_ms(self) -> int:
        return max(int(self.limits.timeout_s * 1000), 1)

    def _limit(self, limit: int | None) -> tuple[int, bool]:
        """(documents to return, whether max_rows capped them); a limit below 1 is refused."""
        if limit is None or limit > self.limits.max_rows:
            return self.limits.max_rows, True
        if limit < 1:
            raise ToolError("invalid arguments: limit must be at least 1 (0 and negative limits are not supported)")
        return limit, False

    # ---- schema -----------------------------------------------------------------------------------
    async def list_objects(self, pattern: str | None) -> Answer:
        infos = await self._run(_list_collections)
        objects, truncated = [], False
        for info in sorted(infos, key=lambda i: i["name"]):
            name = info["name"]
            if name.startswith("system.") or not self.allowlist.allows(name) or not matches(name, pattern):
                continue
            if len(objects) >= self.limits.max_rows:
                truncated = True
                break
            objects.append({"name": name, "kind": _kind(info), "rows": None})
        await self._estimate([o for o in objects if o["kind"] == "collection"][:_COUNTED_COLLECTIONS])
        return Answer({"objects": objects, "truncated": truncated}, row_count=len(objects), truncated=truncated)

    async def _estimate(self, objects: list[dict]) -> None:
        """Fill in estimated counts (collection metadata, no scan); a count that fails stays null."""
        gate = asyncio.Semaphore(_COUNT_CONCURRENCY)

        async def one(obj: dict) -> None:
            async with gate:
                try:
                    obj["rows"] = await self._run(lambda db: db[obj["name"]].estimated_document_count(
                        maxTimeMS=self._max_time_ms))
                except ToolError:
                    pass

        await asyncio.gather(*(one(o) for o in objects))

    async def describe_object(self, name: str) -> Answer:
        try:
            collection = self.policy.collection(name)
        except ToolError:  # Refused included: hidden reads like unknown
            raise self.unknown_object(name) from None
        infos = {i["name"]: i for i in await self._run(_list_collections)}
        if collection not in infos:
            raise self.unknown_object(name)
        info, kind = infos[collection], _kind(infos[collection])
        shape, more = await self._sample(collection)
        fields, fields_cut = shape.fields()
        data: dict[str, Any] = {"name": collection, "kind": kind, "rows": None, "sampled": shape.documents,
                                "fields": fields, "truncated": more or fields_cut}
        if kind == "collection":
            await self._estimate([data])
            data["indexes"] = await self._run(lambda db: _indexes(db[collection]))
        options = info.get("options") or {}
        if options.get("validator"):
            data["validator"] = _relaxed(options["validator"])
        if kind == "view":
            data.update(self._view_definition(options))
        return Answer(data, object=collection, truncated=data["truncated"])

    async def _sample(self, collection: str) -> tuple[Shape, bool]:
        """The shape of a `$sample` of sample_size documents, and whether the collection holds more."""
        size, shape = self.config.sample_size, Shape()

        async def run(db: Any) -> bool:
            cursor = await db[collection].aggregate([{"$sample": {"size": size + 1}}], maxTimeMS=self._max_time_ms,
                                                    batchSize=min(size + 1, _BATCH))
            async for document in cursor:
                if shape.documents >= size:
                    await cursor.close()
                    return True
                shape.add(document)
            return False

        return shape, await self._run(run)

    def _view_definition(self, options: dict) -> dict[str, Any]:
        """A view's source and pipeline, shown only when every collection it reads is visible to the caller."""
        pipeline = _relaxed(options.get("pipeline") or [])
        try:
            view_on = self.policy.collection(options.get("viewOn"))
            guard.check_pipeline(pipeline, self.policy)  # every collection it reads must be visible too
        except ToolError:
            return {}
        return {"view_on": view_on, "pipeline": pipeline}

    async def check(self) -> list[str]:
        """Warn when the database would not refuse a write on its own (no authentication, or write privileges)."""
        status = await self._run(lambda db: db.command({"connectionStatus": 1, "showPrivileges": True}))
        auth = status.get("authInfo") or {}
        if not auth.get("authenticatedUsers"):
            return ["connects without authentication: MongoDB will not refuse writes on its own; "
                    "use a user with the built-in read role (see config/mongodb.yaml)"]
        writes = sorted({
            action for privilege in auth.get("authenticatedUserPrivileges") or []
            if _covers(privilege.get("resource") or {}, self.config.database)
            for action in privilege.get("actions") or [] if action in _WRITE_ACTIONS
        })
        if writes:
            return [f"the MongoDB user may change database {self.config.database!r} ({', '.join(writes[:6])}): "
                    "use a user with the built-in read role only"]
        return []


async def _list_collections(db: Any) -> list[dict]:
    try:
        cursor = await db.list_collections()
    except OperationFailure as e:  # a user with find on some collections only: list the ones it may read
        if e.code != _UNAUTHORIZED:
            raise
        cursor = await db.list_collections(nameOnly=True, authorizedCollections=True)
    return [dict(i) async for i in cursor]


async def _indexes(collection: Any) -> list[dict]:
    out = []
    async for index in await collection.list_indexes():
        entry = {"name": index["name"], "key": _relaxed(index["key"]), "unique": bool(index.get("unique"))}
        for option in ("sparse", "expireAfterSeconds", "partialFilterExpression"):
            if option in index:
                entry[option] = _relaxed(index[option])
        out.append(entry)
    return out


async def _drain(cursor: Any, budget: RowBudget) -> None:
    """Stream documents into the budget; close the cursor (killCursors) as soon as a cap is reached.

    Only then: after an error or the deadline the driver discards the cursor itself, and awaiting a close
    there could outlive the deadline.
    """
    async for document in cursor:
        if not budget.add(_relaxed(document)):
            await cursor.close()
            return


def _documents(budget: RowBudget, collection: str, statement: str) -> Answer:
    n, truncated = len(budget.rows), budget.truncated
    text = f'{{"documents":{budget.json_rows()},"row_count":{n},"truncated":{"true" if truncated else "false"}}}'
    return Answer({"documents": budget.rows, "row_count": n, "truncated": truncated}, object=collection,
                  statement=statement, row_count=n, truncated=truncated, text=text)


def _kind(info: dict) -> str:
    return "view" if info.get("type") == "view" else "collection"  # timeseries collections read as collections


def _covers(resource: dict, database: str) -> bool:
    return bool(resource.get("anyResource")) or resource.get("db") in ("", database)


def _relaxed(value: Any) -> Any:
    """BSON values as relaxed Extended JSON (plain JSON types; ObjectId -> {"$oid"}, dates -> {"$date": ISO})."""
    return orjson.loads(json_util.dumps(value, json_options=_RELAXED))


def _extended(value: Any, what: str) -> Any:
    """Extended JSON input ({"$oid": ...}, {"$date": ...}) to BSON values."""
    if value is None:
        return None
    try:
        return json_util.loads(json.dumps(value), json_options=_RELAXED)
    except (ValueError, TypeError, bson.errors.BSONError) as e:
        raise ToolError(f"invalid {what}: {str(e).strip().splitlines()[0][:200]}") from None
