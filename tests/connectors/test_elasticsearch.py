"""The Elasticsearch connector: the real async client against an HTTP fake (tests/fakes/es_server.py) that records
every request, so these tests check what was sent, not only what came back."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from dbmcp.config import ElasticsearchDatabase, Limits
from dbmcp.connectors.elasticsearch import ElasticsearchConnector, EsqlArgs, SearchArgs
from dbmcp.errors import Refused, ToolError
from dbmcp.tools import input_schema
from tests.fakes.es_server import FakeElasticsearch

INCLUDE = ["logs*", "metrics-*", "products", "users", "all-data", ".alerts-*"]
EXCLUDE = ["logs-debug"]
HIDDEN = ("secrets", "logs-debug", ".internal", "secret-users")


def _docs(prefix: str, n: int, **extra) -> list[dict]:
    return [{"_id": f"{prefix}{i}", "n": i, "level": "error" if i % 4 == 0 else "info", "msg": f"{prefix} {i}",
             **extra} for i in range(n)]


def sample_cluster() -> FakeElasticsearch:
    """Indices, aliases, a data stream and hidden names around the allowlist INCLUDE / EXCLUDE."""
    es = FakeElasticsearch()
    es.indices = {
        "logs-2026.01": _docs("a", 30), "logs-2026.02": _docs("b", 5), "logs-debug": _docs("d", 3),
        "secrets": [{"_id": "s", "token": "do-not-show", "user_id": 1}], ".internal": [{"_id": "i", "x": 1}],
        ".alerts-1": [{"_id": "al", "rule": "r"}], ".ds-metrics-web-2026.01.01-000001": _docs("m", 4),
        "products": [{"_id": "p1", "title": "lamp"}], "users": [{"_id": "u1", "n": 1, "user": "ann"}],
        "secret-users": [{"_id": "su", "n": 1, "password": "hunter2"}],
    }
    es.aliases = {"logs": ["logs-2026.01", "logs-2026.02"], "all-data": ["logs-2026.02", "secrets"]}
    es.data_streams = {"metrics-web": [".ds-metrics-web-2026.01.01-000001"]}
    es.mappings = {
        "products": {"properties": {
            "title": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "comments": {"type": "nested", "properties": {"author": {"type": "keyword"}, "at": {"type": "date"}}},
            "address": {"properties": {"city": {"type": "keyword"}}}, "name": {"type": "alias", "path": "title"}},
            "runtime": {"day": {"type": "keyword", "script": {"source": "emit('x')"}}}},
        "logs-2026.02": {"properties": {"n": {"type": "long"}, "msg": {"type": "text"}}},
        "secrets": {"properties": {"n": {"type": "keyword"}, "token": {"type": "keyword"}}},
    }
    return es.start()


@pytest.fixture(scope="module")
def fake():
    es = sample_cluster()
    yield es
    es.stop()


def connector_for(fake, **overrides) -> ElasticsearchConnector:
    limits = overrides.pop("limits", Limits(max_rows=10))
    config = {"engine": "elasticsearch", "url": fake.url, "include": INCLUDE, "exclude": EXCLUDE, **overrides}
    return ElasticsearchConnector("logs", ElasticsearchDatabase(**config), limits)


@pytest.fixture
async def logs(fake):
    connector = connector_for(fake)
    await connector.start()
    fake.requests.clear()
    yield connector
    await connector.close()
    for seen in fake.requests:  # only the allowed endpoints, only allowed names, never a script
        assert seen.allowed, (seen.method, seen.path)
        assert "compatible-with=8" in seen.headers.get("accept", ""), seen.headers
        assert not any(h in seen.target for h in HIDDEN), seen.path
        assert "script" not in json.dumps(seen.body), seen.body
        if seen.path == "/_query":
            assert not any(h in seen.body["query"] for h in ("secret", ".internal", "logs-debug")), seen.body


def search_bodies(fake) -> list[dict]:
    return [r.body for r in fake.requests if r.path.endswith("/_search")]


async def test_search_caps_and_shape(logs, fake):
    answer = await logs.search("logs-2026.01", {"query": {"match_all": {}}})
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    assert set(answer.data["hits"][0]) == {"_index", "_id", "_score", "_source"}
    assert answer.data["hits"][0]["_index"] == "logs-2026.01"
    assert answer.data["total"] == {"value": 30, "relation": "eq"}
    assert json.loads(answer.text) == answer.data and "aggregations" not in answer.data
    seen = fake.requests[-1]
    assert seen.path == "/logs-2026.01/_search" and seen.method == "POST"
    assert seen.body["size"] == 11 and seen.body["track_total_hits"] == 10_000  # max_rows + 1, bounded counting
    assert seen.query["allow_partial_search_results"] == "false"


async def test_size_from_and_total_rules(logs, fake):
    own = await logs.search("logs-2026.01", {"size": 3})
    assert own.data["row_count"] == 3 and own.data["truncated"] is False  # the caller's size is not truncation
    assert search_bodies(fake)[-1]["size"] == 3
    above = await logs.search("logs-2026.01", {"size": 500})
    assert above.data["row_count"] == 10 and above.data["truncated"] is True and search_bodies(fake)[-1]["size"] == 11
    exact = await logs.search("logs", {"query": {"range": {"n": {"gte": 20}}}})  # 10 hits: fits max_rows exactly
    assert exact.data["row_count"] == 10 and exact.data["truncated"] is False
    edge = await logs.search("logs-2026.01", {"from": 9995})  # asks only what the 10,000 window allows
    assert search_bodies(fake)[-1]["size"] == 5 and edge.data["truncated"] is False
    for body, reason in (({"size": 0}, "at least 1"), ({"size": -1}, "at least 1"), ({"size": "5"}, "integer"),
                         ({"size": True}, "integer"), ({"from": 10_001}, "at most|between"),
                         ({"from": -1}, "between"), ({"track_total_hits": "all"}, "integer")):
        fake.requests.clear()
        with pytest.raises(ToolError, match=reason):
            await logs.search("logs", body)
        assert fake.requests == []
    for asked, sent in ((True, 10_000), (50, 50), (20_000, 10_000)):
        await logs.search("logs", {"track_total_hits": asked, "size": 1})
        assert search_bodies(fake)[-1]["track_total_hits"] == sent
    uncounted = await logs.search("logs", {"track_total_hits": False, "size": 1})
    assert uncounted.data["total"] is None
    capped = await logs.search("logs", {"track_total_hits": 7, "size": 1})
    assert capped.data["total"] == {"value": 7, "relation": "gte"}


async def test_sort_values_page_with_search_after(logs):
    first = await logs.search("logs-2026.01", {"sort": [{"n": "asc"}], "size": 3})
    assert [h["sort"] for h in first.data["hits"]] == [[0], [1], [2]]
    page = await logs.search("logs-2026.01", {"sort": [{"n": "asc"}], "size": 3,
                                              "search_after": first.data["hits"][-1]["sort"]})
    assert [h["_source"]["n"] for h in page.data["hits"]] == [3, 4, 5]
    picked = await logs.search("logs-2026.01", {"_source": ["msg"], "size": 1})
    assert picked.data["hits"][0]["_source"] == {"msg": "a 0"}


async def test_wildcards_are_narrowed_before_the_search(logs, fake):
    answer = await logs.search("*", {"track_total_hits": True})
    assert answer.data["total"]["value"] == 30 + 5 + 4 + 1 + 1 + 1  # all-data (visible by name) adds `secrets`
    resolves = [r for r in fake.requests if r.path.startswith("/_resolve/index/")]
    assert [r.path for r in resolves] == ["/_resolve/index/*"] and resolves[0].query["expand_wildcards"] == "open"
    assert fake.requests[-1].path == "/logs-2026.01,logs-2026.02,products,users,logs,all-data,metrics-web/_search"
    await logs.search("logs-*,-logs-2026.02", None)
    assert fake.requests[-1].path == "/logs-2026.01/_search"
    hidden = await logs.search(".*", {"size": 5})  # dot names only through an include that starts with '.'
    assert fake.requests[-1].path == "/.alerts-1/_search" and hidden.data["row_count"] == 1


async def test_date_math_is_resolved_then_named(logs, fake):
    today = datetime.datetime.now(datetime.UTC).strftime("%Y.%m.%d")
    fake.indices[f"logs-{today}"] = _docs("t", 2)
    try:
        answer = await logs.search("<logs-{now/d}>", None)
        assert answer.data["row_count"] == 2
        resolved, searched = fake.requests[-2:]
        assert resolved.path == "/_resolve/index/%3Clogs-%7Bnow%2Fd%7D%3E"
        assert searched.path == f"/logs-{today}/_search"  # the concrete name, never the expression
        with pytest.raises(ToolError, match=re.escape("unknown index '<logs-x-{now/d}>'")):
            await logs.search("<logs-x-{now/d}>", None)
    finally:
        del fake.indices[f"logs-{today}"]


@pytest.mark.parametrize(("index", "reason"), [
    ("secrets", "unknown index 'secrets'"), ("logs,secrets", "unknown index 'secrets'"),
    ("logs-debug", "unknown index 'logs-debug'"), (".internal", "unknown index '.internal'"),
    ("remote:logs", "remote clusters"), ("logs/_delete_by_query", "invalid index name"), ("..", "invalid index name"),
    (".", "invalid index name"), ("", "name an index"), ("logs?x=1", "invalid index name"),
    ("_cat", "invalid index name"), ("logs%2F..", "invalid index name"), ("logs-2026.01 x", "invalid index name"),
])
async def test_forbidden_targets_send_nothing(logs, fake, index, reason):
    with pytest.raises(ToolError, match=reason):
        await logs.search(index, None)
    assert fake.requests == []


async def test_hidden_and_missing_indices_read_alike(logs, fake):
    with pytest.raises(Refused) as hidden:
        await logs.search("secrets", None)
    with pytest.raises(ToolError) as missing:
        await logs.search("logs-nope", None)  # allowed by name, absent from the cluster: its 404, reworded
    assert missing.value.message == hidden.value.message.replace("secrets", "logs-nope")
    assert hidden.value.message == "unknown index 'secrets' in database 'logs'; see list_objects"
    with pytest.raises(ToolError, match="no index in database 'logs' matches 'secret\\*'"):
        await logs.search("secret*", None)  # a wildcard narrowed to nothing allowed is never sent


@pytest.mark.parametrize("body", [
    {"query": {"script": {"script": "true"}}}, {"script_fields": {"x": {"script": "1"}}},
    {"runtime_mappings": {"x": {"type": "long"}}}, {"sort": [{"_script": {"script": "1"}}]},
    {"aggs": {"x": {"scripted_metric": {}}}}, {"query": {"function_score": {"script_score": {"script": "1"}}}},
    {"query": {"terms": {"n": {"index": "secrets", "id": "s", "path": "n"}}}},
    {"query": {"more_like_this": {"like": [{"_index": "secret-users", "_id": "su"}]}}},
    {"query": {"wrapper": {"query": "e30="}}},
])
async def test_scripts_and_foreign_lookups_never_leave(logs, fake, body):
    with pytest.raises(Refused):
        await logs.search("logs", body)
    assert fake.requests == []


async def test_unsupported_body_keys(logs, fake):
    for key in ("pit", "indices_boost", "suggest", "profile"):
        with pytest.raises(ToolError, match=f"unsupported key '{key}'"):
            await logs.search("logs", {key: {}})
    assert fake.requests == []


async def test_aggregations_pass_through(logs):
    answer = await logs.search("logs-2026.01", {"size": 1, "aggs": {"levels": {"terms": {"field": "level"}},
                                                                     "top": {"max": {"field": "n"}}}})
    levels = answer.data["aggregations"]["levels"]["buckets"]
    assert levels == [{"key": "info", "doc_count": 22}, {"key": "error", "doc_count": 8}]
    assert answer.data["aggregations"]["top"] == {"value": 29}
    assert json.loads(answer.text) == answer.data and answer.data["truncated"] is False


async def test_max_bytes_cuts_hits(fake):
    small = connector_for(fake, limits=Limits(max_rows=50, max_bytes=2048))
    await small.start()
    try:
        answer = await small.search("logs-2026.01", {"size": 50})
        assert 0 < answer.data["row_count"] < 30 and answer.data["truncated"] is True
        assert len(answer.text.encode()) <= 2048 and json.loads(answer.text) == answer.data
        with pytest.raises(ToolError, match="aggregations alone exceed max_bytes"):
            await small.search("logs-2026.01", {"size": 1, "aggs": {
                name: {"terms": {"field": "msg", "size": 100}} for name in ("a", "b", "c")}})
    finally:
        await small.close()


async def test_esql(logs, fake):
    answer = await logs.esql('FROM logs-* | WHERE level == "info" | KEEP n, level')
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    assert answer.data["columns"] == [{"name": "n", "type": "long"}, {"name": "level", "type": "keyword"}]
    assert json.loads(answer.text) == answer.data
    sent = fake.requests[-1].body["query"]
    assert sent == 'FROM logs-2026.01,logs-2026.02\n| WHERE level == "info"\n| KEEP n, level\n| LIMIT 11'
    exact = await logs.esql("FROM logs-2026.02 // five rows\n| KEEP n")
    assert exact.data["row_count"] == 5 and exact.data["truncated"] is False
    own = await logs.esql("FROM logs-2026.01 | LIMIT 3")
    assert own.data["row_count"] == 3 and own.data["truncated"] is False
    joined = await logs.esql("FROM logs-2026.02 | LOOKUP JOIN users ON n | KEEP n, user | SORT n")
    assert joined.data["rows"][:2] == [[0, None], [1, "ann"]]
    assert (await logs.esql("ROW a = 1")).data == {"columns": [{"name": "a", "type": "long"}], "rows": [[1]],
                                                  "row_count": 1, "truncated": False}


async def test_esql_hidden_and_missing_read_alike(logs, fake):
    messages = []
    for query in ("FROM secrets", "FROM logs-nope", "FROM logs | LOOKUP JOIN secret-users ON n",
                  "FROM logs | LOOKUP JOIN logs-nope ON n"):
        with pytest.raises(ToolError) as e:
            await logs.esql(query)
        messages.append(e.value.message.replace("secret-users", "X").replace("secrets", "X").replace("logs-nope", "X"))
    assert set(messages) == {"unknown index 'X' in database 'logs'; see list_objects"}
    assert not any(r.path == "/_query" for r in fake.requests)


@pytest.mark.parametrize(("query", "reason"), [
    ("FROM secrets", "unknown index 'secrets'"), ("FROM logs | ENRICH p ON x", "ENRICH is not allowed"),
    ("FROM logs | LOOKUP JOIN secret-users ON n", "unknown index 'secret-users'"),
    ("FROM logs | LOOKUP /* x */ JOIN secret-users ON n", "unknown index 'secret-users'"),
    ("FROM remote:logs", "remote clusters"), ("DROP x", "starts with FROM"),
    ("FROM logs | WHERE n IN (FROM secrets | KEEP n)", "subqueries"), ('FROM "logs,secrets"', "unknown index"),
])
async def test_esql_refusals_send_nothing(logs, fake, query, reason):
    with pytest.raises(Refused, match=reason):
        await logs.esql(query)
    assert fake.requests == []


async def test_list_objects(logs, fake):
    answer = await logs.list_objects(None)
    objects = {o["name"]: o for o in answer.data["objects"]}
    assert list(objects) == sorted(objects) and answer.data["truncated"] is False
    assert objects["logs-2026.01"] == {"name": "logs-2026.01", "kind": "index", "rows": 30}
    assert objects["logs"] == {"name": "logs", "kind": "alias", "rows": 35}
    assert objects["all-data"]["rows"] == 6  # an alias is visible by its own name (operator's choice)
    assert objects["metrics-web"] == {"name": "metrics-web", "kind": "data stream", "rows": 4}
    assert ".alerts-1" in objects  # a dot name, explicitly included by a pattern that starts with '.'
    assert not set(objects) & {*HIDDEN, ".ds-metrics-web-2026.01.01-000001"}
    assert fake.requests[0].query["expand_wildcards"] == "open,closed,hidden"
    only = await logs.list_objects("logs-*")
    assert [o["name"] for o in only.data["objects"]] == ["logs-2026.01", "logs-2026.02"]


async def test_list_objects_truncates_exactly(fake):
    two = connector_for(fake, limits=Limits(max_rows=2))
    await two.start()
    try:
        assert (await two.list_objects("logs-*")).data["truncated"] is False
        cut = await two.list_objects("logs*")
        assert [o["name"] for o in cut.data["objects"]] == ["logs", "logs-2026.01"] and cut.data["truncated"] is True
    finally:
        await two.close()


async def test_describe_object(logs, fake):
    d = (await logs.describe_object("products")).data
    fields = {f["path"]: f for f in d["fields"]}
    assert d["kind"] == "index" and d["aliases"] == [] and d["truncated"] is False
    assert fields["title"] == {"path": "title", "type": "text"}
    assert fields["title.keyword"] == {"path": "title.keyword", "type": "keyword", "multi_field": True}
    assert fields["comments"]["type"] == "nested" and fields["comments.author"]["type"] == "keyword"
    assert fields["address"]["type"] == "object" and fields["address.city"]["type"] == "keyword"
    assert fields["day"] == {"path": "day", "type": "keyword", "runtime": True}
    assert fields["name"] == {"path": "name", "type": "alias", "alias_of": "title"}
    alias = (await logs.describe_object("all-data")).data
    assert alias["kind"] == "alias" and alias["indices"] == ["logs-2026.02"]  # never the hidden index's name
    assert {f["path"]: f["type"] for f in alias["fields"]}["n"] == "keyword|long"  # merged across indices
    stream = (await logs.describe_object("metrics-web")).data
    assert stream["kind"] == "data stream" and stream["timestamp_field"] == "@timestamp"
    assert ".ds-" not in json.dumps(stream)
    assert (await logs.describe_object("logs-2026.01")).data["aliases"] == ["logs"]
    fake.requests.clear()
    for name in ("secrets", ".internal", "logs-*", ".", "logs,secrets", "_all"):
        with pytest.raises(ToolError, match=re.escape(f"unknown object {name!r} in database 'logs'")):
            await logs.describe_object(name)
    assert fake.requests == []
    with pytest.raises(ToolError, match="unknown object 'logs-nope'"):
        await logs.describe_object("logs-nope")


def test_args_schemas_are_small():
    for model in (SearchArgs, EsqlArgs):
        assert len(json.dumps(input_schema(model))) < 700
