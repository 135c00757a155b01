"""MongoDB through PyMongo's async client (the successor of Motor): collections, inferred schemas, bounded reads.

Every operation carries maxTimeMS from limits.timeout_s and a row bound (max_rows + 1, so `truncated` is exact);
filters and pipelines pass the guard (guards/mongo.py) before anything is sent. Documents come back as
MongoDB relaxed Extended JSON (README: "MongoDB values"); Extended JSON is accepted in filters and pipelines.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import orjson
from bson import json_util
from pydantic import Field
from pymongo import AsyncMongoClient
from pymongo.errors import (
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from dbmcp.allowlist import matches
from dbmcp.config import Limits, MongoDatabase
from dbmcp.connectors.base import Answer, Args, Connector, ToolSpec
from dbmcp.connectors.mongodb_schema import infer
from dbmcp.errors import Refused, ToolError
from dbmcp.guards import mongo as guard
from dbmcp.results import RowBudget, dumps

log = logging.getLogger("dbmcp.mongodb")
_RELAXED = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED, tz_aware=True)
_COUNTED_COLLECTIONS = 100  # list_objects reads estimated counts for this many collections at most
_RELIST_S = 2.0  # at most this often, re-read the collection list when a query names one it lacks


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
        try:  # creating the client connects in the background: a server that is down does not fail startup
            self._client = AsyncMongoClient(
                self.config.url, appname="dbmcp", tz_aware=True, readPreference=self.config.read_preference,
                serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            )
        except (PyMongoError, ValueError, TypeError) as e:
            log.warning("database %s: invalid MongoDB URL or options (%s)", self.name, type(e).__name__)
            self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        await self._run(lambda db: db.command("ping"))

    @property
    def _db(self) -> Any:
        if self._client is None:
            raise ToolError(f"database {self.name!r} has an invalid MongoDB URL or options")
        return self._client[self.config.database]

    async def _run(self, operation: Any) -> Any:
        """Run `operation(db)` and map driver errors to one line that never shows the URL."""
        try:
            return await operation(self._db)
        except ExecutionTimeout:
            raise ToolError(f"query timed out after {self.limits.timeout_s:g} s (limits.timeout_s)") from None
        except OperationFailure as e:
            if e.code in (18, 13):
                raise ToolError(f"database {self.name!r} refused dbmcp's credentials or permissions") from None
            message = (e.details or {}).get("errmsg") or str(e)
            raise ToolError(f"database {self.name!r}: {message.splitlines()[0][:300]}") from None
        except (PyMongoError, InvalidOperation) as e:
            log.warning("database %s unreachable: %s", self.name, type(e).__name__)
            raise ToolError(f"database {self.name!r} is unreachable") from None

    # ---- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, args: Args) -> Answer:
        if isinstance(args, FindArgs):
            return await self.find(args)
        if isinstance(args, AggregateArgs):
            return await self.aggregate(args.collection, args.pipeline)
        raise ToolError(f"unknown tool {tool!r}")

    async def _exist(self, names: list[str]) -> None:
        """Refuse a read of a collection that does not exist, worded as for one outside the allowlist."""
        for name in names:
            if self._collections is None or (name not in self._collections
                                             and time.monotonic() - self._collections_read_at > _RELIST_S):
                infos = await self._run(_list_collections)
                self._collections = {i["name"] for i in infos}
                self._collections_read_at = time.monotonic()
            if name not in self._collections:
                raise Refused(f"collection {name!r} does not exist in database {self.name!r}")

    async def find(self, args: FindArgs) -> Answer:
        collection = self.policy.collection(args.collection)
        await self._exist([collection])
        query, projection, sort = (_extended(v, what) for v, what in (
            (args.filter, "filter"), (args.projection, "projection"), (args.sort, "sort")))
        for value, what in ((query, "filter"), (projection, "projection"), (sort, "sort")):
            guard.check_filter(value, self.policy, what)
        limit, capped = self._limit(args.limit)

        async def run(db: Any) -> list[dict]:
            cursor = db[collection].find(query or {}, projection, sort=list(sort.items()) if sort else None,
                                         limit=limit + 1 if capped else limit, max_time_ms=self._max_time_ms,
                                         batch_size=min(limit + 1, 1000))
            return await cursor.to_list(None)

        documents = await self._run(run)
        return self._answer(documents, collection, dumps({"filter": args.filter, "sort": args.sort}), capped)

    async def aggregate(self, collection: str, pipeline: list[Any]) -> Answer:
        collection = self.policy.collection(collection)
        stages = _extended(pipeline, "pipeline")
        await self._exist([collection, *guard.check_pipeline(stages, self.policy)])
        bounded = [*stages, {"$limit": self.limits.max_rows + 1}]

        async def run(db: Any) -> list[dict]:
            cursor = await db[collection].aggregate(bounded, maxTimeMS=self._max_time_ms,
                                                    batchSize=min(self.limits.max_rows + 1, 1000))
            return await cursor.to_list(None)

        documents = await self._run(run)
        return self._answer(documents, collection, dumps(pipeline), capped=True)

    @property
    def _max_time_ms(self) -> int:
        return int(self.limits.timeout_s * 1000)

    def _limit(self, limit: int | None) -> tuple[int, bool]:
        """(documents to return, whether max_rows capped them); a limit below 1 is refused."""
        if limit is None or limit > self.limits.max_rows:
            return self.limits.max_rows, True
        if limit < 1:
            raise ToolError("invalid arguments: limit must be at least 1 (0 and negative limits are not supported)")
        return limit, False

    def _answer(self, documents: list[dict], collection: str, statement: str, capped: bool) -> Answer:
        budget = RowBudget(self.limits.max_rows if capped else len(documents), self.limits.max_bytes)
        for doc in documents:
            if not budget.add(orjson.loads(json_util.dumps(doc, json_options=_RELAXED))):
                break
        n, truncated = len(budget.rows), budget.truncated
        text = f'{{"documents":{budget.json_rows()},"row_count":{n},"truncated":{"true" if truncated else "false"}}}'
        return Answer({"documents": budget.rows, "row_count": n, "truncated": truncated}, object=collection,
                      statement=statement, row_count=n, truncated=truncated, text=text)

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
            objects.append({"name": name, "kind": info.get("type", "collection"), "rows": None})
        for obj in objects[:_COUNTED_COLLECTIONS]:
            if obj["kind"] == "collection":
                obj["rows"] = await self._run(lambda db, n=obj["name"]: db[n].estimated_document_count(
                    maxTimeMS=self._max_time_ms))
        return Answer({"objects": objects, "truncated": truncated}, row_count=len(objects), truncated=truncated)

    async def describe_object(self, name: str) -> Answer:
        try:
            collection = self.policy.collection(name)
        except (Refused, ToolError):
            raise self._unknown(name) from None
        infos = {i["name"]: i for i in await self._run(_list_collections)}
        if collection not in infos:
            raise self._unknown(name)
        info, size = infos[collection], self.config.sample_size

        async def sample(db: Any) -> list[dict]:
            cursor = await db[collection].aggregate([{"$sample": {"size": size + 1}}], maxTimeMS=self._max_time_ms)
            return await cursor.to_list(None)

        async def indexes(db: Any) -> list[dict]:
            return [dict(i) async for i in await db[collection].list_indexes()] if info.get("type") != "view" else []

        documents = await self._run(sample)
        data = {
            "name": collection, "kind": info.get("type", "collection"),
            "sampled": min(len(documents), size), "sample_truncated": len(documents) > size,
            "fields": infer(documents[:size]),
            "indexes": [{"name": i["name"], "key": dict(i["key"]), "unique": bool(i.get("unique"))}
                        for i in await self._run(indexes)],
            "validator": json.loads(json_util.dumps((info.get("options") or {}).get("validator"),
                                                    json_options=_RELAXED)),
        }
        return Answer(data, object=collection)

    def _unknown(self, name: str) -> ToolError:
        return ToolError(f"unknown object {name!r} in database {self.name!r}; see list_objects")


async def _list_collections(db: Any) -> list[dict]:
    return [dict(i) async for i in await db.list_collections()]


def _extended(value: Any, what: str) -> Any:
    """Extended JSON input ({"$oid": ...}, {"$date": ...}) to BSON values."""
    if value is None:
        return None
    try:
        return json_util.loads(json.dumps(value), json_options=_RELAXED)
    except (ValueError, TypeError) as e:
        raise ToolError(f"invalid {what}: {str(e).splitlines()[0][:200]}") from None
