"""The MongoDB guard: filters and pipelines that only read, and only collections inside the allowlist.

Fail closed: a pipeline stage must be one of the known read stages; `$out`, `$merge`, server-side code
(`$where`, `$function`, `$accumulator`) and stages that show other users' activity are refused wherever they
appear, inside `$facet`, `$lookup` and `$unionWith` sub-pipelines and expressions included. Every collection a
pipeline reads (`$lookup.from`, `$graphLookup.from`, `$unionWith`) must be inside the allowlist, in this
database, and not a `system.*` collection; a hidden one reads exactly like one that does not exist.

The guard judges the caller's JSON as written, before Extended JSON is parsed, so every key is visible to it.

Introspection decisions: `$currentOp`, `$listSessions`, `$listLocalSessions`, `$planCacheStats`, `$queryStats`
and kin are refused (they show other sessions' operations and query shapes). `$indexStats` is refused too: its
per-index access counters are other users' query patterns, and describe_object already lists the indexes.
`$collStats` is allowed for `count` and `storageStats` (sizes of a collection the caller may read) and refused
with `latencyStats` or `queryExecStats` (everyone's operation latencies and scans).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbmcp.errors import Refused, ToolError

MAX_DEPTH = 64

READ_STAGES = frozenset({
    "$match", "$project", "$addFields", "$set", "$unset", "$group", "$sort", "$limit", "$skip", "$count",
    "$unwind", "$lookup", "$graphLookup", "$unionWith", "$facet", "$bucket", "$bucketAuto", "$sortByCount",
    "$replaceRoot", "$replaceWith", "$sample", "$densify", "$fill", "$setWindowFields", "$redact", "$geoNear",
    "$documents", "$collStats", "$search", "$searchMeta", "$vectorSearch",
})
WRITE_STAGES = frozenset({"$out", "$merge"})
CODE_OPERATORS = frozenset({"$where", "$function", "$accumulator"})
# Stages that show other sessions' operations, queries, usage or cluster internals.
INTROSPECTION_STAGES = frozenset({
    "$currentOp", "$listSessions", "$listLocalSessions", "$planCacheStats", "$queryStats", "$indexStats",
    "$listSampledQueries", "$shardedDataDistribution", "$listClusterCatalog", "$changeStream",
    "$changeStreamSplitLargeEvent", "$listSearchIndexes", "$listCachedAndActiveUsers",
})
COLLSTATS_ALLOWED = frozenset({"count", "storageStats"})


class MongoPolicy:
    def __init__(self, allows: Callable[[str], bool], database: str):
        self.allows = allows
        self.database = database  # the name clients use, for messages

    def collection(self, name: Any) -> str:
        """A collection the caller may read, or the refusal for one it may not (worded as missing)."""
        if not isinstance(name, str) or not name or "\x00" in name or name.startswith("$"):
            raise ToolError(f"invalid collection name {name!r}")
        if name.startswith("system.") or not self.allows(name):
            raise Refused(self.missing(name))
        return name

    def missing(self, name: str) -> str:
        return f"collection {name!r} does not exist in database {self.database!r}"


def check_depth(value: Any, what: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH (iteratively: no recursion limit to hit on hostile input)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ToolError(f"invalid {what}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def check_filter(value: Any, policy: MongoPolicy, what: str = "filter") -> None:
    """A find filter, projection or sort: a document without server-side code."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ToolError(f"invalid {what}: expected a JSON object")
    check_depth(value, what)
    _walk(value)


def check_pipeline(pipeline: Any, policy: MongoPolicy) -> list[str]:
    """Refuse a pipeline that writes, runs code, spies or reads outside the allowlist; return what it reads."""
    check_depth(pipeline, "pipeline")
    reads: list[str] = []
    _pipeline(pipeline, policy, reads)
    return reads


def _pipeline(pipeline: Any, policy: MongoPolicy, reads: list[str]) -> None:
    if not isinstance(pipeline, list):
        raise ToolError("invalid pipeline: expected a JSON array of stages")
    for i, stage in enumerate(pipeline):
        if not isinstance(stage, dict) or len(stage) != 1:
            raise ToolError(f"invalid pipeline: stage {i} must be an object with exactly one $stage key")
        name, spec = next(iter(stage.items()))
        _stage(name, spec, policy, reads)


def _stage(name: str, spec: Any, policy: MongoPolicy, reads: list[str]) -> None:
    _refuse_key(name)
    if name not in READ_STAGES:
        raise Refused(f"refused: unknown stage {name}; dbmcp runs known read-only stages only")
    if name in ("$lookup", "$graphLookup"):
        _foreign(spec, "from", policy, reads, name)
    elif name == "$unionWith":
        if isinstance(spec, str):
            reads.append(policy.collection(spec))
            return
        _foreign(spec, "coll", policy, reads, name)
    elif name == "$collStats":
        _coll_stats(spec)
    if name == "$facet" and isinstance(spec, dict):
        for sub in spec.values():
            _pipeline(sub, policy, reads)
        return
    if isinstance(spec, dict) and "pipeline" in spec and name in ("$lookup", "$unionWith"):
        _pipeline(spec["pipeline"], policy, reads)
        spec = {k: v for k, v in spec.items() if k != "pipeline"}
    _walk(spec)


def _foreign(spec: Any, key: str, policy: MongoPolicy, reads: list[str], stage: str) -> None:
    if not isinstance(spec, dict):
        raise ToolError(f"invalid {stage}: expected an object")
    target = spec.get(key)
    if isinstance(target, dict):  # {db: ..., coll: ...}: another database (or Extended JSON, never a name)
        raise Refused(f"refused: {stage} into another database is not allowed")
    if target is None:
        if stage != "$graphLookup" and isinstance(spec.get("pipeline"), list):
            return  # a sub-pipeline over $documents only: it reads no collection
        raise ToolError(f"invalid {stage}: '{key}' is required")
    reads.append(policy.collection(target))


def _coll_stats(spec: Any) -> None:
    if not isinstance(spec, dict):
        raise ToolError("invalid $collStats: expected an object")
    for option in spec:
        if option not in COLLSTATS_ALLOWED:
            raise Refused(f"refused: $collStats {option} is not allowed: it shows other users' activity "
                          f"(allowed: {', '.join(sorted(COLLSTATS_ALLOWED))})")


def _refuse_key(key: str) -> None:
    if key in WRITE_STAGES:
        raise Refused(f"refused: {key} is not allowed; dbmcp runs read-only queries")
    if key in CODE_OPERATORS:
        raise Refused(f"refused: {key} is not allowed; it runs code on the server")
    if key in INTROSPECTION_STAGES:
        raise Refused(f"refused: {key} is not allowed; it shows server activity beyond this database's data")


def _walk(value: Any) -> None:
    """Every key at every depth of a filter, expression or stage body (depth was checked up front)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ToolError("invalid query: keys must be strings")
                _refuse_key(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
