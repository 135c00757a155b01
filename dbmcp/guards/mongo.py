"""The MongoDB guard: filters and pipelines that only read, and only collections inside the allowlist.

Fail closed: a pipeline stage must be one of the known read stages; `$out`, `$merge`, server-side code
(`$where`, `$function`, `$accumulator`) and stages that show other users' activity are refused wherever they
appear, inside `$facet`, `$lookup` and `$unionWith` sub-pipelines and expressions included. Every collection a
pipeline reads (`$lookup.from`, `$graphLookup.from`, `$unionWith`) must be inside the allowlist, in this
database, and not a `system.*` collection; a hidden one reads exactly like one that does not exist.
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
    "$documents", "$collStats", "$indexStats", "$search", "$searchMeta", "$vectorSearch",
})
WRITE_STAGES = frozenset({"$out", "$merge"})
CODE_OPERATORS = frozenset({"$where", "$function", "$accumulator"})
# Stages that show other sessions' operations, queries or cluster internals.
INTROSPECTION_STAGES = frozenset({
    "$currentOp", "$listSessions", "$listLocalSessions", "$planCacheStats", "$queryStats",
    "$listSampledQueries", "$shardedDataDistribution", "$listClusterCatalog", "$changeStream",
    "$changeStreamSplitLargeEvent", "$listSearchIndexes", "$listCachedAndActiveUsers",
})


class MongoPolicy:
    def __init__(self, allows: Callable[[str], bool], database: str):
        self.allows = allows
        self.database = database  # the name clients use, for messages

    def collection(self, name: Any, shown: str | None = None) -> str:
        """A collection the caller may read, or the refusal for one it may not (worded as missing)."""
        if not isinstance(name, str) or not name or "\x00" in name or name.startswith("$"):
            raise ToolError(f"invalid collection name {name!r}")
        if name.startswith("system.") or not self.allows(name):
            raise Refused(f"collection {shown or name!r} does not exist in database {self.database!r}")
        return name


def check_filter(value: Any, policy: MongoPolicy, what: str = "filter") -> None:
    """A find filter, projection or sort: a document without server-side code."""
    if value is not None and not isinstance(value, dict):
        raise ToolError(f"invalid {what}: expected a JSON object")
    _walk(value, policy, depth=0)


def check_pipeline(pipeline: Any, policy: MongoPolicy, depth: int = 0) -> list[str]:
    """Refuse a pipeline that writes, runs code, spies or reads outside the allowlist; return what it reads."""
    if not isinstance(pipeline, list):
        raise ToolError("invalid pipeline: expected a JSON array of stages")
    reads: list[str] = []
    for i, stage in enumerate(pipeline):
        if not isinstance(stage, dict) or len(stage) != 1:
            raise ToolError(f"invalid pipeline: stage {i} must be an object with exactly one $stage key")
        name, spec = next(iter(stage.items()))
        _check_stage(name, spec, policy, depth, reads)
    return reads


def _check_stage(name: str, spec: Any, policy: MongoPolicy, depth: int, reads: list[str]) -> None:
    if name in WRITE_STAGES:
        raise Refused(f"refused: {name} is not allowed; dbmcp runs read-only queries")
    if name in INTROSPECTION_STAGES:
        raise Refused(f"refused: {name} is not allowed: it shows server activity beyond this database's data")
    if name in CODE_OPERATORS:
        raise Refused(f"refused: {name} is not allowed: it runs code on the server")
    if name not in READ_STAGES:
        raise Refused(f"refused: unknown stage {name}; dbmcp runs known read-only stages only")
    if name == "$lookup" or name == "$graphLookup":
        _foreign(spec, "from", policy, reads, name)
    elif name == "$unionWith":
        if isinstance(spec, str):
            reads.append(policy.collection(spec))
            spec = {}
        else:
            _foreign(spec, "coll", policy, reads, name)
    if name == "$facet" and isinstance(spec, dict):
        for sub in spec.values():
            reads += check_pipeline(sub, policy, depth + 1)
        return
    if isinstance(spec, dict) and isinstance(spec.get("pipeline"), list):
        reads += check_pipeline(spec["pipeline"], policy, depth + 1)
        spec = {k: v for k, v in spec.items() if k != "pipeline"}
    _walk(spec, policy, depth + 1)


def _foreign(spec: Any, key: str, policy: MongoPolicy, reads: list[str], stage: str) -> None:
    if not isinstance(spec, dict):
        raise ToolError(f"invalid {stage}: expected an object")
    target = spec.get(key)
    if isinstance(target, dict):  # {db: ..., coll: ...}: another database
        raise Refused(f"refused: {stage} into another database is not allowed")
    if target is None:
        if stage == "$lookup" and "pipeline" in spec:
            return  # a $lookup over $documents only
        raise ToolError(f"invalid {stage}: '{key}' is required")
    reads.append(policy.collection(target))


def _walk(value: Any, policy: MongoPolicy, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ToolError(f"invalid query: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ToolError("invalid query: keys must be strings")
            if key in CODE_OPERATORS:
                raise Refused(f"refused: {key} is not allowed: it runs code on the server")
            if key in WRITE_STAGES or key in INTROSPECTION_STAGES:
                raise Refused(f"refused: {key} is not allowed; dbmcp runs read-only queries")
            _walk(item, policy, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, policy, depth + 1)
