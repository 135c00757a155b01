"""The MongoDB guard, data-driven: (pipeline or filter, reason) tables like tests/guards/sql_corpus.py."""

from __future__ import annotations

import pytest

from dbmcp.allowlist import Allowlist
from dbmcp.errors import Refused, ToolError
from dbmcp.guards.mongo import MongoPolicy, check_filter, check_pipeline

POLICY = MongoPolicy(Allowlist(["*"], ["secrets", "audit.*"]).allows, "app")
WRITE, CODE, SPY, HIDDEN, UNKNOWN, MALFORMED = ("read-only", "runs code", "server activity", "does not exist",
                                                 "unknown stage", "invalid")


def _nest(depth: int) -> dict:
    value: dict = {"a": 1}
    for _ in range(depth):
        value = {"$and": [value]}
    return value


def _facets(depth: int) -> list:
    pipeline: list = [{"$match": {}}]
    for _ in range(depth):
        pipeline = [{"$facet": {"f": pipeline}}]
    return pipeline


def _lookups(depth: int) -> list:
    pipeline: list = [{"$match": {}}]
    for _ in range(depth):
        pipeline = [{"$lookup": {"from": "users", "pipeline": pipeline, "as": "u"}}]
    return pipeline


_CODE_OPS = [
    {"$where": "this.a == 1"},
    {"$expr": {"$function": {"body": "function() {return 1}", "args": [], "lang": "js"}}},
    {"a": {"$where": "1"}},
    {"$and": [{"$where": "sleep(1000)"}]},
    {"$or": [{"a": 1}, {"$expr": {"$gt": [{"$function": {"body": "x", "args": [], "lang": "js"}}, 1]}}]},
]
HOSTILE_PIPELINES: list[tuple[object, str]] = [
    ([{"$out": "copy"}], WRITE), ([{"$merge": {"into": "copy"}}], WRITE), ([{"$merge": "copy"}], WRITE),
    ([{"$match": {}}, {"$out": {"db": "other", "coll": "x"}}], WRITE),
    ([{"$facet": {"a": [{"$out": "x"}]}}], WRITE), ([{"$facet": {"a": [{"$match": {}}], "b": [{"$merge": "x"}]}}], WRITE),
    ([{"$lookup": {"from": "users", "pipeline": [{"$out": "x"}], "as": "u"}}], WRITE),
    ([{"$unionWith": {"coll": "users", "pipeline": [{"$merge": "x"}]}}], WRITE),
    ([{"$facet": {"a": [{"$facet": {"b": [{"$out": "x"}]}}]}}], WRITE),
    *[([{"$match": f}], CODE) for f in _CODE_OPS],
    ([{"$group": {"_id": None, "x": {"$accumulator": {"init": "function(){}", "accumulate": "f", "accumulateArgs": [],
                                                       "merge": "f", "lang": "js"}}}}], CODE),
    ([{"$project": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}}], CODE),
    ([{"$addFields": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}}], CODE),
    ([{"$set": {"x": {"$cond": [True, {"$function": {"body": "f", "args": [], "lang": "js"}}, 1]}}}], CODE),
    ([{"$lookup": {"from": "users", "pipeline": [{"$match": {"$where": "1"}}], "as": "u"}}], CODE),
    ([{"$facet": {"a": [{"$match": {"$where": "1"}}]}}], CODE),
    ([{"$where": "1"}], CODE), ([{"$function": {}}], CODE),
    ([{"$currentOp": {}}], SPY), ([{"$currentOp": {"allUsers": True}}], SPY), ([{"$listSessions": {}}], SPY),
    ([{"$listLocalSessions": {"allUsers": True}}], SPY), ([{"$planCacheStats": {}}], SPY),
    ([{"$queryStats": {}}], SPY), ([{"$listSampledQueries": {}}], SPY), ([{"$shardedDataDistribution": {}}], SPY),
    ([{"$changeStream": {}}], SPY), ([{"$listClusterCatalog": {}}], SPY), ([{"$listSearchIndexes": {}}], SPY),
    ([{"$facet": {"a": [{"$currentOp": {}}]}}], SPY), ([{"$indexStats": {}}], SPY),
    ([{"$unionWith": {"coll": "users", "pipeline": [{"$indexStats": {}}]}}], SPY),
    ([{"$collStats": {"latencyStats": {"histograms": True}}}], "other users' activity"),
    ([{"$collStats": {"count": {}, "queryExecStats": {}}}], "other users' activity"),
    ([{"$collStats": "count"}], MALFORMED),
    ([{"$lookup": {"from": "users", "pipeline": [{"$listSessions": {}}], "as": "x"}}], SPY),
    ([{"$lookup": {"from": "secrets", "localField": "a", "foreignField": "b", "as": "s"}}], HIDDEN),
    ([{"$lookup": {"from": "system.users", "localField": "a", "foreignField": "b", "as": "s"}}], HIDDEN),
    ([{"$lookup": {"from": "system.profile", "pipeline": [], "as": "s"}}], HIDDEN),
    ([{"$lookup": {"from": "audit.log", "localField": "a", "foreignField": "b", "as": "s"}}], HIDDEN),
    ([{"$lookup": {"from": {"db": "admin", "coll": "system.users"}, "pipeline": [], "as": "s"}}], "another database"),
    ([{"$lookup": {"from": {"db": "app", "coll": "users"}, "pipeline": [], "as": "s"}}], "another database"),
    ([{"$graphLookup": {"from": "secrets", "startWith": "$a", "connectFromField": "a", "connectToField": "b",
                        "as": "g"}}], HIDDEN),
    ([{"$graphLookup": {"from": "system.js", "startWith": "$a", "connectFromField": "a", "connectToField": "b",
                        "as": "g"}}], HIDDEN),
    ([{"$unionWith": "secrets"}], HIDDEN), ([{"$unionWith": {"coll": "secrets"}}], HIDDEN),
    ([{"$unionWith": {"coll": "users", "pipeline": [{"$unionWith": "secrets"}]}}], HIDDEN),
    ([{"$unionWith": {"coll": {"db": "x", "coll": "y"}}}], "another database"),
    ([{"$facet": {"a": [{"$lookup": {"from": "secrets", "localField": "a", "foreignField": "b", "as": "s"}}]}}], HIDDEN),
    ([{"$lookup": {"from": "users", "as": "u", "pipeline": [{"$lookup": {"from": "secrets", "pipeline": [],
                                                                          "as": "s"}}]}}], HIDDEN),
    ([{"$unionWith": "system.views"}], HIDDEN), ([{"$unionWith": "system.buckets.x"}], HIDDEN),
    ([{"$evil": {}}], UNKNOWN), ([{"$sql": {"statement": "select 1"}}], UNKNOWN), ([{"$doesNotExist": 1}], UNKNOWN),
    ([{"match": {}}], UNKNOWN), ([{"": {}}], UNKNOWN), ([{"$match": {}}, {"$unknownStage": {}}], UNKNOWN),
    ({"$match": {}}, MALFORMED), ("[{$match: {}}]", MALFORMED), ([1], MALFORMED), (["$match"], MALFORMED),
    ([{}], MALFORMED), ([{"$match": {}, "$limit": 1}], MALFORMED), ([[{"$match": {}}]], MALFORMED),
    ([{"$lookup": "secrets"}], MALFORMED), ([{"$lookup": {"as": "x"}}], MALFORMED),
    ([{"$unionWith": 5}], MALFORMED), ([{"$unionWith": ""}], MALFORMED),
    ([{"$lookup": {"from": "$secrets", "pipeline": [], "as": "x"}}], MALFORMED),
    ([{"$match": _nest(80)}], "nested deeper"), ([{"$match": _nest(5000)}], "nested deeper"),
    (_facets(30), "nested deeper"), (_lookups(30), "nested deeper"), (_lookups(3000), "nested deeper"),
    ([{"$lookup": {"from": "users", "pipeline": {"$match": {}}, "as": "u"}}], MALFORMED),
    ([{"$graphLookup": {"pipeline": [], "startWith": "$a", "as": "g"}}], MALFORMED),
    ([{"$lookup": {"from": ["users"], "pipeline": [], "as": "u"}}], MALFORMED),
    ([{"$lookup": {"from": {"$symbol": "secrets"}, "pipeline": [], "as": "u"}}], "another database"),
    ([{"$facet": {"a": [{"$facet": {"b": [{"$match": _nest(70)}]}}]}}], "nested deeper"),
]
HOSTILE_FILTERS: list[tuple[object, str]] = [
    *[(f, CODE) for f in _CODE_OPS],
    ({"a": {"$elemMatch": {"$where": "1"}}}, CODE), ({"$nor": [{"$where": "1"}]}, CODE),
    ({"$expr": {"$accumulator": {}}}, CODE), ({"x": [{"$function": {}}]}, CODE),
    ([{"a": 1}], MALFORMED), ("a == 1", MALFORMED), (5, MALFORMED), (_nest(70), "nested deeper"),
    ({"$out": "x"}, WRITE), ({"a": {"$merge": 1}}, WRITE),
    ({"a": {"$ref": "users", "$id": 1, "$where": "1"}}, CODE),  # Extended JSON would hide it in a DBRef
    ({"a": {"$code": "x", "$scope": {"$where": "1"}}}, CODE), ({"$where": {"$code": "sleep(100)"}}, CODE),
    ({"$currentOp": {}}, SPY), (_nest(5000), "nested deeper"), ({1: 2}, MALFORMED),
]
LEGIT_PIPELINES = [
    [], [{"$match": {"status": "paid"}}], [{"$match": {"total": {"$gt": 100}}}, {"$sort": {"total": -1}}, {"$limit": 5}],
    [{"$group": {"_id": "$status", "n": {"$sum": 1}, "avg": {"$avg": "$total"}}}],
    [{"$project": {"_id": 0, "email": 1, "year": {"$year": "$created_at"}}}],
    [{"$unwind": "$tags"}, {"$sortByCount": "$tags"}],
    [{"$lookup": {"from": "users", "localField": "user_id", "foreignField": "_id", "as": "user"}}],
    [{"$lookup": {"from": "users", "let": {"u": "$user_id"}, "pipeline": [{"$match": {"$expr": {"$eq": ["$_id", "$$u"]}}}],
                  "as": "user"}}],
    [{"$graphLookup": {"from": "categories", "startWith": "$parent", "connectFromField": "parent",
                       "connectToField": "_id", "as": "ancestors"}}],
    [{"$unionWith": "archive"}, {"$count": "n"}], [{"$unionWith": {"coll": "archive", "pipeline": [{"$limit": 3}]}}],
    [{"$facet": {"by_status": [{"$sortByCount": "$status"}], "total": [{"$count": "n"}]}}],
    [{"$bucket": {"groupBy": "$total", "boundaries": [0, 100, 1000], "default": "more"}}],
    [{"$bucketAuto": {"groupBy": "$total", "buckets": 4}}],
    [{"$setWindowFields": {"sortBy": {"at": 1}, "output": {"running": {"$sum": "$total", "window": {
        "documents": ["unbounded", "current"]}}}}}],
    [{"$addFields": {"full": {"$concat": ["$first", " ", "$last"]}}}, {"$unset": "first"}],
    [{"$replaceRoot": {"newRoot": "$address"}}], [{"$replaceWith": {"a": "$a"}}],
    [{"$sample": {"size": 10}}], [{"$skip": 10}, {"$limit": 10}], [{"$set": {"x": {"$toUpper": "$name"}}}],
    [{"$match": {"name": {"$regex": "^a", "$options": "i"}}}],
    [{"$match": {"_id": {"$oid": "5f8f8c44b54764421b7156c1"}}}],
    [{"$match": {"at": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}}],
    [{"$documents": [{"a": 1}]}], [{"$collStats": {"count": {}}}], [{"$collStats": {"storageStats": {}}}],
    [{"$unionWith": {"pipeline": [{"$documents": [{"a": 1}]}]}}],
    [{"$lookup": {"pipeline": [{"$documents": [{"x": 1}]}], "as": "extra"}}],
    [{"$geoNear": {"near": {"type": "Point", "coordinates": [0, 0]}, "distanceField": "d", "query": {"a": 1}}}],
    [{"$match": {"$expr": {"$regexMatch": {"input": "$name", "regex": "^a"}}}}, {"$limit": 1}],
    _facets(10),
    [{"$densify": {"field": "n", "range": {"step": 1, "bounds": "full"}}}],
]
LEGIT_FILTERS = [None, {}, {"status": "paid"}, {"total": {"$gte": 10, "$lt": 20}}, {"tags": {"$in": ["vip"]}},
                 {"$or": [{"a": 1}, {"b": {"$exists": False}}]}, {"$expr": {"$gt": ["$total", "$paid"]}},
                 {"name": {"$regex": "^x"}}, {"loc": {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}}},
                 {"a": {"$type": "string"}}, {"items": {"$elemMatch": {"qty": {"$gt": 2}}}}, {"tags": {"$size": 2}},
                 {"$jsonSchema": {"required": ["name"]}}, {"_id": {"$oid": "5f8f8c44b54764421b7156c1"}},
                 {"ref": {"$ref": "users", "$id": 1}}, {"where": "a field named where"}, _nest(30)]


def test_corpus_is_large_enough():
    assert len(HOSTILE_PIPELINES) + len(HOSTILE_FILTERS) >= 80
    assert len(LEGIT_PIPELINES) + len(LEGIT_FILTERS) >= 25


@pytest.mark.parametrize(("pipeline", "reason"), HOSTILE_PIPELINES)
def test_hostile_pipeline_is_refused(pipeline, reason):
    with pytest.raises(ToolError) as e:
        check_pipeline(pipeline, POLICY)
    assert reason in e.value.message, e.value.message
    assert "\n" not in e.value.message
    if reason in (WRITE, CODE, SPY, HIDDEN, UNKNOWN):
        assert isinstance(e.value, Refused)


@pytest.mark.parametrize(("value", "reason"), HOSTILE_FILTERS)
def test_hostile_filter_is_refused(value, reason):
    with pytest.raises(ToolError) as e:
        check_filter(value, POLICY)
    assert reason in e.value.message, e.value.message


@pytest.mark.parametrize("pipeline", LEGIT_PIPELINES)
def test_legitimate_pipeline_passes(pipeline):
    check_pipeline(pipeline, POLICY)


@pytest.mark.parametrize("value", LEGIT_FILTERS)
def test_legitimate_filter_passes(value):
    check_filter(value, POLICY)


def test_reads_are_reported():
    pipeline = [{"$lookup": {"from": "users", "pipeline": [{"$unionWith": "archive"}], "as": "u"}},
                {"$facet": {"x": [{"$graphLookup": {"from": "cats", "startWith": "$a", "connectFromField": "a",
                                                    "connectToField": "b", "as": "g"}}]}}]
    assert sorted(check_pipeline(pipeline, POLICY)) == ["archive", "cats", "users"]
