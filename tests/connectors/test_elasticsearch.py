"""The Elasticsearch connector: the real async client against an HTTP fake (tests/fakes/es_server.py) that records
every request, so these tests check what was sent, not only what came back."""

from __future__ import annotations

import pytest
from mcp import Client

from dbmcp.config import ElasticsearchDatabase, Limits
from dbmcp.connectors.elasticsearch import ElasticsearchConnector
from dbmcp.errors import Refused, ToolError
from tests.fakes.es_server import FakeElasticsearch
from tests.helpers import ServeProcess, write_config

ALLOWED_PATHS = ("/", "/_resolve/index/", "/_search", "/_count", "/_mapping", "/_query")


@pytest.fixture(scope="module")
def fake():
    es = FakeElasticsearch()
    es.indices = {
        "logs-2026.01": [{"id": i, "level": "error" if i % 4 == 0 else "info", "msg": f"m{i}"} for i in range(30)],
        "logs-2026.02": [{"id": 100 + i, "level": "info", "msg": f"n{i}"} for i in range(5)],
        "secrets": [{"id": 1, "token": "do-not-show"}],
        ".internal": [{"id": 1}],
    }
    es.aliases = {"logs": ["logs-2026.01", "logs-2026.02"], "all-data": ["logs-2026.01", "secrets"]}
    es.mappings = {"logs-2026.01": {"properties": {
        "level": {"type": "keyword"}, "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "user": {"type": "nested", "properties": {"name": {"type": "keyword"}}},
        "geo": {"properties": {"lat": {"type": "float"}}}},
        "runtime": {"day": {"type": "keyword"}}}}
    es.start()
    yield es
    es.stop()


@pytest.fixture
async def logs(fake):
    connector = ElasticsearchConnector("logs", ElasticsearchDatabase(
        engine="elasticsearch", url=fake.url, include=["logs*"], exclude=[]), Limits(max_rows=10))
    await connector.start()
    fake.requests.clear()
    yield connector
    await connector.close()
    for seen in fake.requests:
        assert seen.path == "/" or any(seen.path.endswith(p) or seen.path.startswith(p) for p in ALLOWED_PATHS[1:])
        assert "secrets" not in seen.path and "script" not in str(seen.body)


async def test_search_caps_and_shape(logs, fake):
    answer = await logs.search("logs-2026.01", {"query": {"match_all": {}}})
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    assert set(answer.data["hits"][0]) == {"_index", "_id", "_score", "_source"}
    assert answer.data["total"] == {"value": 30, "relation": "eq"}
    sent = fake.requests[-1].body
    assert sent["size"] == 11 and sent["track_total_hits"] == 10000
    own = await logs.search("logs-2026.01", {"size": 3})
    assert own.data["row_count"] == 3 and own.data["truncated"] is False


async def test_wildcards_are_narrowed_before_the_request(logs, fake):
    answer = await logs.search("*", {"size": 50})
    assert {h["_index"] for h in answer.data["hits"]} == {"logs-2026.01"}
    search = [r.path for r in fake.requests if r.path.endswith("/_search")]
    assert search == ["/logs,logs-2026.01,logs-2026.02/_search"]  # only allowed names, never `*`
    await logs.search("logs-*,-logs-2026.02", None)
    assert fake.requests[-1].path == "/logs-2026.01/_search"


@pytest.mark.parametrize(("index", "reason"), [
    ("secrets", "no such index [secrets]"), ("logs,secrets", "no such index [secrets]"),
    ("all-data", "no such index [all-data]"), ("remote:logs", "cross-cluster"),
    ("logs/_delete_by_query", "invalid index name"), ("..", "invalid index name"), (".", "invalid index name"),
    ("", "required"), ("logs?x=1", "invalid index name"), ("_cat", "invalid index name"),
])
async def test_forbidden_targets_send_nothing(logs, fake, index, reason):
    with pytest.raises(ToolError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        await logs.search(index, None)
    assert not any(r.path.endswith("/_search") for r in fake.requests)


@pytest.mark.parametrize("body", [
    {"query": {"script": {"script": "true"}}}, {"script_fields": {"x": {"script": "1"}}},
    {"runtime_mappings": {"x": {"type": "long"}}}, {"sort": [{"_script": {"script": "1"}}]},
    {"aggs": {"x": {"scripted_metric": {}}}}, {"query": {"function_score": {"script_score": {"script": "1"}}}},
    {"aggs": {"t": {"terms": {"field": "a"}, "aggs": {"b": {"bucket_script": {"script": "1"}}}}}},
    {"indices_boost": [{"secrets": 2}]}, {"pit": {"id": "x"}},
])
async def test_scripts_and_unknown_keys_are_refused(logs, fake, body):
    with pytest.raises(Refused):
        await logs.search("logs", body)
    assert fake.requests == []


async def test_size_and_from_rules(logs):
    for body in ({"size": 0}, {"size": -1}, {"size": "5"}):
        with pytest.raises(ToolError, match="size must be"):
            await logs.search("logs", body)
    with pytest.raises(ToolError, match="from must be between 0 and 10000"):
        await logs.search("logs", {"from": 10001})


async def test_aggregations_pass_through(logs):
    answer = await logs.search("logs-2026.01", {"size": 1, "aggs": {"levels": {"terms": {"field": "level"}}}})
    assert answer.data["aggregations"]["levels"]["buckets"] == [{"key": "error", "doc_count": 8},
                                                                {"key": "info", "doc_count": 22}]


async def test_esql(logs, fake):
    answer = await logs.esql("FROM logs-* | WHERE level == \"error\"")
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    sent = fake.requests[-1].body["query"]
    assert sent.startswith("FROM logs-2026.01, logs-2026.02 | WHERE") and sent.endswith("| LIMIT 11")
    for query, reason in (("FROM secrets", "no such index"), ("FROM logs | ENRICH p ON x", "ENRICH"),
                          ("FROM logs | LOOKUP JOIN secrets ON id", "no such index"),
                          ("FROM remote:logs", "cross-cluster"), ("DROP x", "must start with FROM")):
        fake.requests.clear()
        with pytest.raises(Refused, match=reason):
            await logs.esql(query)
        assert fake.requests == []


async def test_list_and_describe(logs):
    objects = {o["name"]: o for o in (await logs.list_objects(None)).data["objects"]}
    assert objects == {"logs": {"name": "logs", "kind": "alias", "rows": 35},
                       "logs-2026.01": {"name": "logs-2026.01", "kind": "index", "rows": 30},
                       "logs-2026.02": {"name": "logs-2026.02", "kind": "index", "rows": 5}}
    d = (await logs.describe_object("logs-2026.01")).data
    fields = {f["path"]: f for f in d["fields"]}
    assert fields["msg.raw"] == {"path": "msg.raw", "type": "keyword", "multi_field": True}
    assert fields["user"]["nested"] is True and fields["user.name"]["type"] == "keyword"
    assert fields["geo.lat"]["type"] == "float" and fields["day"]["runtime"] is True
    assert d["aliases"] == ["all-data", "logs"] or d["aliases"] == ["logs"]
    for name in ("secrets", "nope", "logs-*"):
        with pytest.raises(ToolError, match="unknown object"):
            await logs.describe_object(name)


async def test_unreachable_without_secrets():
    down = ElasticsearchConnector("logs", ElasticsearchDatabase(
        engine="elasticsearch", url="http://127.0.0.1:1", username="elastic", password="hunter2"), Limits(timeout_s=2))
    await down.start()
    try:
        with pytest.raises(ToolError) as e:
            await down.ping()
        assert e.value.message == "database 'logs' is unreachable"
    finally:
        await down.close()


async def test_through_the_server(fake, tmp_path):
    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          logs: {{engine: elasticsearch, url: "{fake.url}", include: ["logs*"]}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config)
    try:
        async with Client(proc.url + "/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"es_search", "es_esql"} <= names and "sql_query" not in names
            result = await client.call_tool("es_search", {"database": "logs", "index": "logs*",
                                                          "body": {"query": {"term": {"level": "error"}}, "size": 5}})
            assert not result.is_error and result.structured_content["row_count"] == 5
    finally:
        proc.stop()
