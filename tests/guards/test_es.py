"""The Elasticsearch guard, data-driven: index expressions, search bodies and ES|QL sources."""

from __future__ import annotations

import pytest

from dbmcp.allowlist import Allowlist
from dbmcp.errors import Refused, ToolError
from dbmcp.guards.es import check_body, esql_sources, narrow, parse_expression

ALLOWS = Allowlist(["logs-*", "metrics", "events*"], ["logs-secret*"]).allows
CLUSTER = ["logs-a", "logs-b", "logs-secret-1", "metrics", "events", "events-old", "secrets", ".kibana"]


def resolve(pattern: str) -> list[str]:
    from fnmatch import fnmatchcase

    pattern = "*" if pattern in ("_all", "<logs-{now/d}>") else pattern
    return [n for n in CLUSTER if fnmatchcase(n, pattern)]


def target(expression: str) -> list[str]:
    return narrow(parse_expression(expression), ALLOWS, resolve)


HOSTILE_TARGETS = [
    ("secrets", "no such index [secrets]"), ("logs-secret-1", "no such index"), ("logs-a,secrets", "no such index"),
    ("secrets,logs-a", "no such index"), ("metrics,logs-secret-1", "no such index"), ("SECRETS", "no such index"),
    ("remote:logs-a", "cross-cluster"), ("*:logs-*", "cross-cluster"), ("logs-a,cluster2:secrets", "cross-cluster"),
    ("x:*", "cross-cluster"), (".", "invalid"), ("..", "invalid"), ("", "required"), ("  ", "required"),
    ("logs-a/_delete_by_query", "invalid"), ("logs-a/_doc/1", "invalid"), ("../secrets", "invalid"),
    ("logs a", "invalid"), ("logs-a?pretty", "invalid"), ("logs-a#x", "invalid"), ("_cat/indices", "invalid"),
    ("_search", "invalid"), ("-logs-a", "invalid"), ("+logs-a", "invalid"), ("logs-a,", "invalid"),
    (",logs-a", "invalid"), ("logs\\a", "invalid"), ('"logs"', "invalid"), ("<logs-{now/d}>/x", "invalid"),
    ("logs-a%2F_delete_by_query", "invalid"), ("_all/_search", "invalid"), ("logs|x", "invalid"),
]
LEGIT_TARGETS = [
    ("logs-a", ["logs-a"]), ("logs-*", ["logs-a", "logs-b"]), ("*", ["logs-a", "logs-b", "metrics", "events",
                                                                       "events-old"]),
    ("_all", ["logs-a", "logs-b", "metrics", "events", "events-old"]), ("logs-a,metrics", ["logs-a", "metrics"]),
    ("logs-*,-logs-b", ["logs-a"]), ("events*", ["events", "events-old"]), ("lo*-a", ["logs-a"]),
    ("nothing-*", []), ("<logs-{now/d}>", ["logs-a", "logs-b", "metrics", "events", "events-old"]),
    ("metrics,metrics", ["metrics"]), ("logs-*,events", ["logs-a", "logs-b", "events"]),
]
SCRIPTED = [
    {"query": {"script": {"script": {"source": "doc['a'].value > 1"}}}},
    {"query": {"bool": {"filter": [{"script": {"script": "1"}}]}}},
    {"query": {"function_score": {"query": {"match_all": {}}, "script_score": {"script": {"source": "1"}}}}},
    {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}},
    {"script_fields": {"x": {"script": {"source": "1"}}}}, {"runtime_mappings": {"d": {"type": "keyword"}}},
    {"sort": [{"_script": {"type": "number", "script": "1", "order": "asc"}}]},
    {"aggs": {"x": {"scripted_metric": {"map_script": "1"}}}},
    {"aggs": {"x": {"terms": {"script": {"source": "1"}}}}},
    {"aggs": {"t": {"date_histogram": {"field": "d", "calendar_interval": "day"},
                    "aggs": {"b": {"bucket_script": {"buckets_path": {}, "script": "1"}}}}}},
    {"aggs": {"t": {"terms": {"field": "a"}, "aggs": {"s": {"bucket_selector": {"script": "1"}}}}}},
    {"aggs": {"x": {"avg": {"field": "a", "script": "1"}}}},
    {"rescore": {"query": {"rescore_query": {"script_score": {"script": "1"}}}}},
    {"query": {"nested": {"path": "a", "query": {"script": {"script": "1"}}}}},
]
BAD_BODIES = [({"indices_boost": [{"secrets": 1}]}, "indices_boost"), ({"pit": {"id": "x"}}, "'pit'"),
              ({"stats": ["x"]}, "'stats'"), ({"slice": {"id": 0, "max": 2}}, "'slice'"), ("query", "JSON object"),
              ([{"query": {}}], "JSON object"), ({"query": _deep(70)} if (_deep := lambda n: (
                  {"bool": {"must": [_deep(n - 1)]}} if n else {"match_all": {}})) else None, "nested deeper")]
LEGIT_BODIES = [
    None, {}, {"query": {"match_all": {}}}, {"query": {"term": {"level": "error"}}, "size": 5},
    {"query": {"bool": {"must": [{"match": {"msg": "timeout"}}], "filter": [{"range": {"@timestamp": {"gte": "now-1d"}}}]}}},
    {"aggs": {"levels": {"terms": {"field": "level", "size": 10}}}, "size": 1},
    {"aggs": {"per_day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"},
                          "aggs": {"avg_ms": {"avg": {"field": "ms"}}}}}},
    {"sort": [{"@timestamp": "desc"}], "search_after": [1700000000000], "size": 20},
    {"_source": ["msg", "level"], "from": 20, "size": 10}, {"track_total_hits": True},
    {"query": {"query_string": {"query": "level:error AND service:api"}}},
    {"highlight": {"fields": {"msg": {}}}, "query": {"match": {"msg": "x"}}},
    {"collapse": {"field": "user"}}, {"post_filter": {"term": {"a": 1}}},
    {"knn": {"field": "v", "query_vector": [0.1, 0.2], "k": 5, "num_candidates": 20}},
]
HOSTILE_ESQL = [
    ("FROM secrets", "no such index"), ("from secrets | limit 1", "no such index"),
    ("FROM logs-a, secrets", "no such index"), ("FROM logs-a | ENRICH policy ON user", "ENRICH"),
    ("from logs-a | enrich p", "ENRICH"), ("FROM logs-a\n| ENRICH p", "ENRICH"),
    ("FROM logs-a | LOOKUP JOIN secrets ON id", "no such index"),
    ("FROM logs-a | lookup join logs-secret-1 ON id", "no such index"), ("FROM remote:logs-a", "cross-cluster"),
    ("FROM logs-a | LOOKUP JOIN remote:x ON id", "no such index"), ("DROP logs-a", "must start with FROM"),
    ("", "required"), ("   ", "required"), ("SELECT * FROM logs-a", "must start with FROM"),
    ("FROM ../secrets", "invalid"), ("FROM logs-a/_delete_by_query", "invalid"),
]
LEGIT_ESQL = [
    "FROM logs-a | LIMIT 5", "FROM logs-* | STATS c = COUNT(*) BY level",
    "FROM logs-a METADATA _index | KEEP _index, msg", "ROW a = 1", "SHOW INFO",
    'FROM logs-a | WHERE msg == "contains ENRICH as text"', "FROM logs-a | LOOKUP JOIN metrics ON id",
]


def test_corpus_is_large_enough():
    hostile = len(HOSTILE_TARGETS) + len(SCRIPTED) + len(BAD_BODIES) + len(HOSTILE_ESQL)
    legit = len(LEGIT_TARGETS) + len(LEGIT_BODIES) + len(LEGIT_ESQL)
    assert hostile >= 60 and legit >= 25, (hostile, legit)


@pytest.mark.parametrize(("expression", "reason"), HOSTILE_TARGETS)
def test_hostile_targets(expression, reason):
    with pytest.raises(ToolError) as e:
        target(expression)
    assert reason in e.value.message, e.value.message


@pytest.mark.parametrize(("expression", "names"), LEGIT_TARGETS)
def test_targets_are_narrowed_to_allowed_names(expression, names):
    assert target(expression) == names


@pytest.mark.parametrize("body", SCRIPTED)
def test_scripts_are_refused(body):
    with pytest.raises(Refused, match="scripts are not allowed"):
        check_body(body, allow_scripts=False)
    check_body(body, allow_scripts=True) if "runtime_mappings" in body or "script" in str(body) else None


@pytest.mark.parametrize(("body", "reason"), BAD_BODIES)
def test_bad_bodies(body, reason):
    with pytest.raises(ToolError, match=reason.replace("(", r"\(")):
        check_body(body, allow_scripts=True)


@pytest.mark.parametrize("body", LEGIT_BODIES)
def test_legitimate_bodies(body):
    check_body(body, allow_scripts=False)


@pytest.mark.parametrize(("query", "reason"), HOSTILE_ESQL)
def test_hostile_esql(query, reason):
    with pytest.raises(ToolError) as e:
        expression, targets, lookups = esql_sources(query)
        for name in lookups:
            if ":" in name or not ALLOWS(name):
                raise Refused(f"no such index [{name}]")
        narrow(targets, ALLOWS, resolve)
    assert reason in e.value.message, e.value.message


@pytest.mark.parametrize("query", LEGIT_ESQL)
def test_legitimate_esql(query):
    _, targets, lookups = esql_sources(query)
    assert all(ALLOWS(n) for n in lookups)
    narrow(targets, ALLOWS, resolve)
