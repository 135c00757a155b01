"""The Elasticsearch connector against a real cluster (8.x or 9.x), when DBMCP_TEST_ELASTICSEARCH_URL points at one
(docker-compose.yml starts one); skipped otherwise. The test creates and deletes its own indices."""

from __future__ import annotations

import os

import pytest

URL = os.environ.get("DBMCP_TEST_ELASTICSEARCH_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set DBMCP_TEST_ELASTICSEARCH_URL to run against a real cluster")
INDICES = ("dbmcp-live-a", "dbmcp-live-b", "dbmcp-live-secret")


@pytest.fixture(scope="module")
async def live():
    from elasticsearch import AsyncElasticsearch

    from dbmcp.config import ElasticsearchDatabase, Limits
    from dbmcp.connectors.elasticsearch import ElasticsearchConnector

    admin = AsyncElasticsearch(URL, verify_certs=False, ssl_show_warn=False)
    for name in INDICES:
        await admin.options(ignore_status=404).indices.delete(index=name)
        await admin.indices.create(index=name, mappings={"properties": {
            "level": {"type": "keyword"}, "n": {"type": "long"},
            "msg": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}})
        operations = []
        for i in range(12 if name.endswith("-a") else 3):
            operations += [{"index": {"_index": name}}, {"level": "error" if i % 2 else "info", "n": i, "msg": f"m{i}"}]
        await admin.bulk(operations=operations, refresh=True)
    await admin.indices.put_alias(index="dbmcp-live-a,dbmcp-live-b", name="dbmcp-live-all")
    connector = ElasticsearchConnector("live", ElasticsearchDatabase(
        engine="elasticsearch", url=URL, verify_certs=False, include=["dbmcp-live-*"],
        exclude=["dbmcp-live-secret"]), Limits(max_rows=10))
    await connector.start()
    yield connector
    await connector.close()
    for name in INDICES:
        await admin.options(ignore_status=404).indices.delete(index=name)
    await admin.close()


async def test_live_search(live):
    await live.ping()
    answer = await live.search("dbmcp-live-*", {"query": {"match_all": {}}, "sort": [{"n": "asc"}]})
    assert {h["_index"] for h in answer.data["hits"]} <= {"dbmcp-live-a", "dbmcp-live-b"}
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    assert answer.data["total"] == {"value": 15, "relation": "eq"}
    page = await live.search("dbmcp-live-a", {"sort": [{"n": "asc"}], "size": 5,
                                              "search_after": [4], "aggs": {"m": {"max": {"field": "n"}}}})
    assert [h["_source"]["n"] for h in page.data["hits"]] == [5, 6, 7, 8, 9]
    assert page.data["aggregations"]["m"]["value"] == 11 and page.data["truncated"] is False


async def test_live_esql(live):
    rows = await live.esql("FROM dbmcp-live-* | STATS c = COUNT(*)")
    assert rows.data["rows"] == [[15]] and rows.data["truncated"] is False
    capped = await live.esql("FROM dbmcp-live-a | KEEP n | SORT n")
    assert capped.data["row_count"] == 10 and capped.data["truncated"] is True


async def test_live_schema_and_refusals(live):
    from dbmcp.errors import ToolError

    objects = {o["name"]: o for o in (await live.list_objects(None)).data["objects"]}
    assert set(objects) == {"dbmcp-live-a", "dbmcp-live-b", "dbmcp-live-all"}
    assert objects["dbmcp-live-a"]["rows"] == 12 and objects["dbmcp-live-all"]["rows"] == 15
    fields = {f["path"]: f for f in (await live.describe_object("dbmcp-live-a")).data["fields"]}
    assert fields["msg.raw"]["multi_field"] is True and fields["level"]["type"] == "keyword"
    for call in (live.search("dbmcp-live-secret", None), live.search("dbmcp-live-nope", None)):
        with pytest.raises(ToolError, match="unknown index 'dbmcp-live-"):
            await call
    with pytest.raises(ToolError, match="ENRICH is not allowed"):
        await live.esql("FROM dbmcp-live-a | ENRICH p ON level")
