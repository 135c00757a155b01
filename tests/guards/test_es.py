"""The Elasticsearch guards, data-driven: index expressions, search bodies and ES|QL, each a table of
(input, verdict) like tests/guards/sql_corpus.py. The resolver stands in for the cluster's resolve API and records
its calls, so the tables also show that a refused name never reached the cluster."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from dbmcp.allowlist import Allowlist
from dbmcp.errors import Refused, ToolError
from dbmcp.guards.es import EsPolicy, check_body, resolve
from dbmcp.guards.esql import check_esql

INCLUDE = ["logs-*", "metrics", "events*", ".alerts-*"]
POLICY = EsPolicy(Allowlist(INCLUDE, ["logs-secret*"]).allows, tuple(INCLUDE), "logs")
SCRIPTS_OK = EsPolicy(POLICY.allows, POLICY.include, "logs", allow_scripts=True)
CLUSTER = ["logs-a", "logs-b", "logs-secret-1", "metrics", "events", "events-old", "secrets", ".kibana", ".alerts-1"]
DATE_MATH = {"<logs-{now/d}>": ["logs-a"], "<secrets-{now/d}>": ["secrets"], "<none-{now/d}>": [],
             "<logs-{now/d{yyyy.MM.dd|+12:00}}>": ["logs-b"]}
calls: list[str] = []


async def resolver(expression: str, hidden: bool) -> list[str]:
    calls.append(expression)
    if expression in DATE_MATH:
        return DATE_MATH[expression]
    return [n for n in CLUSTER if fnmatchcase(n, expression) and (hidden or not n.startswith("."))]


UNKNOWN, REMOTE, INVALID, NO_MATCH, REQUIRED = "unknown index", "remote clusters", "invalid", "matches", "name an index"
# (expression, reason): refused, and (but for date math) before anything was asked of the cluster
HOSTILE_TARGETS = [
    ("secrets", UNKNOWN), ("logs-secret-1", UNKNOWN), ("logs-a,secrets", UNKNOWN), ("secrets,logs-a", UNKNOWN),
    ("metrics,logs-secret-1", UNKNOWN), ("SECRETS", UNKNOWN), ("*,secrets", UNKNOWN), ("_all,secrets", UNKNOWN),
    (".kibana", UNKNOWN), ("logs-*,.kibana", UNKNOWN), ("logs-a,-logs-b,secrets", UNKNOWN),
    ("remote:logs-a", REMOTE), ("*:logs-*", REMOTE), ("logs-a,cluster2:secrets", REMOTE), ("x:*", REMOTE),
    ("logs-a::failures", REMOTE), ("logs-*::data", REMOTE),
    (".", INVALID), ("..", INVALID), ("", REQUIRED), ("  ", REQUIRED), ("logs-a/_delete_by_query", INVALID),
    ("logs-a/_doc/1", INVALID), ("../secrets", INVALID), ("logs a", INVALID), ("logs-a?pretty", INVALID),
    ("logs-a#x", INVALID), ("_cat/indices", INVALID), ("_search", INVALID), ("_cat", INVALID), ("-logs-a", INVALID),
    ("+logs-a", INVALID), ("logs-a,", INVALID), (",logs-a", INVALID), ("logs\\a", INVALID), ('"logs"', INVALID),
    ("<logs-{now/d}>/x", INVALID), ("logs-a%2F_delete_by_query", INVALID), ("_all/_search", INVALID),
    ("logs|x", INVALID), ("logs-a\nb", INVALID), ("logs-a\x00", INVALID), ("logs-a,-", INVALID),
    ("<logs-{now/d}*>", INVALID), ("<logs-{now/d>", INVALID), ("logs-(a)", INVALID), ("logs-*,-logs-a/x", INVALID),
    ("<secrets-{now/d}>", UNKNOWN), ("<none-{now/d}>", UNKNOWN),  # date math resolves to a hidden / no index
    ("secret*", NO_MATCH), ("nothing-*", NO_MATCH), ("logs-*,-logs-*", NO_MATCH), ("*secret*", NO_MATCH),
]
LEGIT_TARGETS = [
    ("logs-a", ["logs-a"]), ("logs-*", ["logs-a", "logs-b"]), ("*", ["logs-a", "logs-b", "metrics", "events",
                                                                       "events-old"]),
    ("_all", ["logs-a", "logs-b", "metrics", "events", "events-old"]), ("logs-a,metrics", ["logs-a", "metrics"]),
    ("logs-*,-logs-b", ["logs-a"]), ("events*", ["events", "events-old"]), ("lo*-a", ["logs-a"]),
    ("metrics,metrics", ["metrics"]), ("logs-*,events", ["logs-a", "logs-b", "events"]), (".*", [".alerts-1"]),
    (".alerts-1", [".alerts-1"]), ("<logs-{now/d}>", ["logs-a"]), ("<logs-{now/d{yyyy.MM.dd|+12:00}}>", ["logs-b"]),
    ("*,-events*", ["logs-a", "logs-b", "metrics"]), ("logs-b,logs-*", ["logs-b", "logs-a"]),
    (" logs-a , metrics\n", ["logs-a", "metrics"]),
    ("logs-nonexistent", ["logs-nonexistent"]),  # allowed by name: the cluster answers whether it exists
]


def _script(body: dict) -> tuple[dict, str]:
    return body, "scripts are not allowed"


def _nest(depth: int) -> dict:
    return {"bool": {"must": [_nest(depth - 1)]}} if depth else {"match_all": {}}


SCRIPT = {"source": "doc['a'].value > 1"}
HOSTILE_BODIES = [_script(b) for b in [
    {"query": {"script": {"script": SCRIPT}}}, {"query": {"bool": {"filter": [{"script": {"script": "1"}}]}}},
    {"query": {"bool": {"should": [{"match_all": {}}, {"script": {"script": "1"}}]}}},
    {"query": {"function_score": {"query": {"match_all": {}}, "script_score": {"script": SCRIPT}}}},
    {"query": {"function_score": {"functions": [{"script_score": {"script": "1"}}]}}},
    {"query": {"script_score": {"query": {"match_all": {}}, "script": SCRIPT}}},
    {"query": {"terms_set": {"tags": {"terms": ["a"], "minimum_should_match_script": SCRIPT}}}},
    {"query": {"nested": {"path": "a", "query": {"script": {"script": "1"}}}}},
    {"query": {"has_child": {"type": "c", "query": {"script": {"script": "1"}}}}},
    {"query": {"constant_score": {"filter": {"script": {"script": {"id": "stored"}}}}}},
    {"script_fields": {"x": {"script": SCRIPT}}}, {"runtime_mappings": {"d": {"type": "keyword"}}},
    {"sort": [{"_script": {"type": "number", "script": "1", "order": "asc"}}]},
    {"aggs": {"x": {"scripted_metric": {"init_script": "1", "map_script": "1", "combine_script": "1",
                                         "reduce_script": "1"}}}},
    {"aggs": {"x": {"terms": {"script": {"source": "1"}}}}}, {"aggs": {"x": {"avg": {"field": "a", "script": "1"}}}},
    {"aggs": {"t": {"date_histogram": {"field": "d", "calendar_interval": "day"},
                    "aggs": {"b": {"bucket_script": {"buckets_path": {}, "script": "1"}}}}}},
    {"aggs": {"t": {"terms": {"field": "a"}, "aggs": {"s": {"bucket_selector": {"buckets_path": {}, "script": "1"}}}}}},
    {"aggs": {"s": {"significant_terms": {"field": "a", "script_heuristic": {"script": "1"}}}}},
    {"aggs": {"m": {"moving_fn": {"buckets_path": "x", "window": 5, "script": "MovingFunctions.max(values)"}}}},
    {"rescore": {"query": {"rescore_query": {"script_score": {"script": "1"}}}}},
    {"post_filter": {"script": {"script": "1"}}}, {"query": {"match_all": {}}, "sort": [{"_script": {}}]},
]] + [
    ({"query": {"terms": {"user": {"index": "secrets", "id": "1", "path": "followers"}}}}, UNKNOWN),
    ({"query": {"more_like_this": {"fields": ["t"], "like": [{"_index": "secrets", "_id": "1"}]}}}, UNKNOWN),
    ({"query": {"more_like_this": {"like": [{"_index": ".kibana", "_id": "1"}], "unlike": []}}}, UNKNOWN),
    ({"query": {"percolate": {"field": "q", "index": "secrets", "id": "1"}}}, UNKNOWN),
    ({"query": {"pinned": {"docs": [{"_index": "logs-secret-1", "_id": "1"}], "organic": {"match_all": {}}}}}, UNKNOWN),
    ({"query": {"geo_shape": {"loc": {"indexed_shape": {"id": "x", "path": "shape"}}}}}, UNKNOWN),  # `shapes`
    ({"query": {"geo_shape": {"loc": {"indexed_shape": {"index": "secrets", "id": "x"}}}}}, UNKNOWN),
    ({"query": {"terms": {"user": {"index": "logs-*", "id": "1", "path": "f"}}}}, "one named index"),
    ({"query": {"terms": {"user": {"index": "remote:logs-a", "id": "1", "path": "f"}}}}, REMOTE),
    ({"query": {"terms": {"user": {"index": "..", "id": "1", "path": "f"}}}}, INVALID),
    ({"query": {"wrapper": {"query": "eyJzY3JpcHQiOiB7fX0="}}}, "wrapper queries"),
    ({"query": {"bool": {"filter": [{"wrapper": {"query": "e30="}}]}}}, "wrapper queries"),
    ({"pit": {"id": "x"}}, "'pit'"), ({"indices_boost": [{"secrets": 1}]}, "'indices_boost'"),
    ({"stats": ["x"]}, "'stats'"), ({"slice": {"id": 0, "max": 2}}, "'slice'"), ({"profile": True}, "'profile'"),
    ({"ext": {}}, "'ext'"), ({"retriever": {"standard": {}}}, "'retriever'"), ({"suggest": {}}, "'suggest'"),
    ("query", "JSON object"), ([{"query": {}}], "JSON object"), ({"query": _nest(120)}, "nested deeper"),
]
LOOKUP_WITH_SCRIPTS = [  # allow_scripts lets scripts run, never reads outside the allowlist
    ({"runtime_mappings": {"u": {"type": "lookup", "target_index": "secrets", "input_field": "a",
                                 "target_field": "b", "fetch_fields": ["c"]}}}, UNKNOWN),
]
LEGIT_BODIES = [
    {}, {"query": {"match_all": {}}}, {"query": {"term": {"level": "error"}}, "size": 5},
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
    {"query": {"term": {"_index": "anything"}}}, {"query": {"term": {"index": "a field called index"}}},
    {"query": {"match": {"wrapper": "a field called wrapper"}}},
    {"query": {"prefix": {"_index": "logs"}}}, {"query": {"terms": {"_index": ["logs-a", "secrets"]}}},
    {"query": {"terms": {"user": {"index": "metrics", "id": "1", "path": "followers"}}}},
    {"query": {"more_like_this": {"fields": ["t"], "like": [{"_index": "logs-a", "_id": "1"}, "free text"]}}},
    {"query": {"match": {"transcript": "a field whose name contains script"}}},
    {"fields": ["@timestamp"], "docvalue_fields": ["n"], "stored_fields": ["_none_"], "min_score": 0.5},
    {"rescore": {"window_size": 10, "query": {"rescore_query": {"match": {"msg": "x"}}}}},
    {"terminate_after": 1000, "track_scores": True, "aggregations": {"m": {"max": {"field": "n"}}}},
]
SCRIPTED_BUT_ALLOWED = [b for b, reason in HOSTILE_BODIES if reason == "scripts are not allowed"]


def test_corpus_is_large_enough():
    hostile = len(HOSTILE_TARGETS) + len(HOSTILE_BODIES) + len(LOOKUP_WITH_SCRIPTS) + len(HOSTILE_ESQL)
    legit = len(LEGIT_TARGETS) + len(LEGIT_BODIES) + len(LEGIT_ESQL)
    assert hostile >= 60 and legit >= 25, (hostile, legit)


@pytest.mark.parametrize(("expression", "reason"), HOSTILE_TARGETS)
async def test_hostile_targets(expression, reason):
    calls.clear()
    with pytest.raises(ToolError) as e:
        await resolve(expression, POLICY, resolver)
    assert reason in e.value.message, e.value.message
    if reason != NO_MATCH and "<" not in expression:
        assert calls == [], calls  # refused before the cluster was asked anything


@pytest.mark.parametrize(("expression", "names"), LEGIT_TARGETS)
async def test_targets_are_narrowed_to_allowed_names(expression, names):
    assert await resolve(expression, POLICY, resolver) == names


async def test_hidden_and_unknown_read_alike():
    with pytest.raises(Refused) as hidden:
        await resolve("secrets", POLICY, resolver)
    with pytest.raises(ToolError) as missing:
        await resolve("<none-{now/d}>", POLICY, resolver)
    assert hidden.value.message == "unknown index 'secrets' in database 'logs'; see list_objects"
    assert missing.value.message == "unknown index '<none-{now/d}>' in database 'logs'; see list_objects"


@pytest.mark.parametrize(("body", "reason"), HOSTILE_BODIES)
def test_hostile_bodies(body, reason):
    with pytest.raises(ToolError) as e:
        check_body(body, POLICY)
    assert reason in e.value.message, e.value.message
    if reason == "scripts are not allowed":
        assert isinstance(e.value, Refused) and e.value.message == "refused: scripts are not allowed (allow_scripts is off)"


@pytest.mark.parametrize("body", SCRIPTED_BUT_ALLOWED)
def test_scripts_pass_when_allowed(body):
    check_body(body, SCRIPTS_OK)


@pytest.mark.parametrize(("body", "reason"), LOOKUP_WITH_SCRIPTS)
def test_allow_scripts_never_opens_other_indices(body, reason):
    with pytest.raises(ToolError, match=reason):
        check_body(body, SCRIPTS_OK)


@pytest.mark.parametrize("body", LEGIT_BODIES)
def test_legitimate_bodies(body):
    check_body(body, POLICY)


ENRICH, SUBQUERY, NOT_ALLOWED = "ENRICH is not allowed", "subqueries", "is not allowed"
HOSTILE_ESQL = [
    ("FROM secrets", UNKNOWN), ("from secrets | limit 1", UNKNOWN), ("FROM logs-a, secrets", UNKNOWN),
    ('FROM "logs-a,secrets"', UNKNOWN), ('FROM """secrets"""', UNKNOWN), ("FROM .kibana", UNKNOWN),
    ("FROM logs-a,logs-secret-1 METADATA _id", UNKNOWN), ("FROM <secrets-{now/d}>", UNKNOWN),
    ("FROM/* hi */secrets", UNKNOWN), ("FROM logs-a // x\n, secrets", UNKNOWN),
    ("FROM remote:logs-a", REMOTE), ("FROM logs-a::failures", REMOTE), ('FROM "remote:logs-a"', REMOTE),
    ("FROM logs-a, c2:secrets", REMOTE), ("FROM logs-a | ENRICH p ON x", ENRICH), ("from logs-a | enrich p", ENRICH),
    ("FROM logs-a\n| ENRICH p", ENRICH), ("FROM logs-a | /* c */ ENRICH p", ENRICH),
    ("FROM logs-a // c\n| ENRICH p ON x", ENRICH), ("FROM logs-a | eNrIcH p", ENRICH),
    ("FROM logs-a | LOOKUP JOIN secrets ON id", UNKNOWN), ("FROM logs-a | LOOKUP /* */ JOIN secrets ON id", UNKNOWN),
    ('FROM logs-a | lookup join "secrets" ON id', UNKNOWN), ("FROM logs-a | LOOKUP JOIN logs-* ON id", "one named"),
    ("FROM logs-a | LOOKUP JOIN remote:x ON id", REMOTE), ("FROM logs-a | LOOKUP JOIN .kibana ON id", UNKNOWN),
    ("FROM logs-a | LOOKUP t ON id", "LOOKUP JOIN"), ("FROM logs-a | LEFT JOIN secrets ON id", NOT_ALLOWED),
    ("FROM logs-a | WHERE x IN (FROM secrets | KEEP x)", SUBQUERY), ("FROM logs-a, (FROM secrets)", SUBQUERY),
    ("FROM logs-a | FORK (WHERE a > 1) (WHERE b > 1)", NOT_ALLOWED), ("FROM logs-a | FORK ( LIMIT 1 )", NOT_ALLOWED),
    ("FROM logs-a | COMPLETION r = msg WITH ep", NOT_ALLOWED), ("FROM logs-a | RERANK \"q\" ON msg", NOT_ALLOWED),
    ("EXPLAIN (FROM secrets)", SUBQUERY), ("SET a = 1; FROM logs-a", "starts with FROM"), ("DROP x", "starts with"),
    ("SELECT * FROM logs-a", "starts with"), ("METRICS logs-a", "starts with"), ("PROMQL up", "starts with"),
    ("", "required"), ("   ", "required"), ("FROM ../secrets", INVALID), ("FROM logs-a/_delete_by_query", INVALID),
    ('FROM logs-a | WHERE msg == "unterminated', "unterminated"), ("FROM logs-a /* open", "unterminated"),
    ("FROM logs-a | | LIMIT 1", "empty command"), ("FROM logs-a |", "empty command"),
    ("FROM logs-a` | ENRICH p ON x | `x", "unexpected"), ("FROM logs-a METADATA _id` | ENRICH p ON x | `y", "unexpected"),
    ("FROM logs-a [METADATA _id]", "unexpected"), ("FROM logs-a secrets", "unexpected"), ("FROM", "needs index names"),
    ("FROM logs-a | ROW a = 1", NOT_ALLOWED), ("FROM logs-a | FROM secrets", NOT_ALLOWED),
]
LEGIT_ESQL = [
    ("FROM logs-a | LIMIT 5", "FROM logs-a\n| LIMIT 5"),
    ("FROM logs-* | STATS c = COUNT(*) BY level", "FROM logs-a,logs-b\n| STATS c = COUNT(*) BY level"),
    ("FROM logs-a METADATA _index, _id | KEEP _index, msg", "FROM logs-a METADATA _index, _id\n| KEEP _index, msg"),
    ("ROW a = 1", "ROW a = 1"), ("SHOW INFO", "SHOW INFO"), ("from * | limit 1", "FROM logs-a,logs-b,metrics,events,"
                                                                              "events-old\n| limit 1"),
    ('FROM logs-a | WHERE msg == "has ENRICH | and FROM secrets"', 'FROM logs-a\n| WHERE msg == "has ENRICH | and '
                                                                   'FROM secrets"'),
    ("FROM logs-a | LOOKUP JOIN metrics ON id", "FROM logs-a\n| LOOKUP JOIN metrics ON id"),
    ('FROM logs-a | lookup join "metrics" on id', "FROM logs-a\n| LOOKUP JOIN metrics on id"),
    ("FROM logs-a | WHERE `weird|name` > 1", "FROM logs-a\n| WHERE `weird|name` > 1"),
    ("FROM logs-a // drop this | ENRICH\n| LIMIT 1", "FROM logs-a\n| LIMIT 1"),
    ("FROM logs-a /* | ENRICH p /* nested */ | x */ | LIMIT 1", "FROM logs-a\n| LIMIT 1"),
    ('FROM "logs-a", metrics', "FROM logs-a,metrics"), ("FROM logs-*, -logs-b", "FROM logs-a"),
    ("TS metrics | LIMIT 1", "TS metrics\n| LIMIT 1"), ("FROM logs-a | WHERE x IN (1, 2)", None),
    ('FROM logs-a | EVAL s = """a|b""" | KEEP s', 'FROM logs-a\n| EVAL s = """a|b"""\n| KEEP s'),
    ("FROM <logs-{now/d}>", "FROM logs-a"), ('FROM logs-a | DISSECT msg "%{a} %{b}"', None),
    ("FROM logs-a | SORT @timestamp DESC | LIMIT 10", None), ("FROM .alerts-* | LIMIT 1", "FROM .alerts-1\n| LIMIT 1"),
    ("FROM logs-a | EVAL from_date = (from_x + 1)", None), ("FROM logs-a | MV_EXPAND tags | DROP msg", None),
    ("FROM logs-a | GROK msg \"%{IP:ip}\" | RENAME ip AS addr", None), ("FROM logs-a | INLINESTATS m = MAX(n)", None),
]


@pytest.mark.parametrize(("query", "reason"), HOSTILE_ESQL)
async def test_hostile_esql(query, reason):
    calls.clear()
    with pytest.raises(ToolError) as e:
        await check_esql(query, POLICY, resolver)
    assert reason in e.value.message, e.value.message
    if reason in (ENRICH, SUBQUERY, REMOTE) or (reason == UNKNOWN and "<" not in query and "*" not in query):
        assert calls == [], calls


@pytest.mark.parametrize(("query", "sent"), LEGIT_ESQL)
async def test_legitimate_esql(query, sent):
    checked = await check_esql(query, POLICY, resolver)
    if sent is not None:
        assert checked == sent, checked
    assert "//" not in checked and "/*" not in checked
    assert await check_esql(checked, POLICY, resolver) == checked  # what is sent reads the same when checked again
