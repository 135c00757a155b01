"""The Elasticsearch connector against a real cluster, when DBMCP_TEST_ELASTICSEARCH_URL points at one
(docker-compose.yml starts one); skipped otherwise. The test creates and deletes its own indices."""

from __future__ import annotations

import os

import pytest

URL = os.environ.get("DBMCP_TEST_ELASTICSEARCH_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set DBMCP_TEST_ELASTICSEARCH_URL to run against a real cluster")


@pytest.fixture
async def live():
    from elasticsearch import AsyncElasticsearch

    from dbmcp.config import ElasticsearchDatabase, Limits
    from dbmcp.connectors.elasticsearch import ElasticsearchConnector

    admin = AsyncElasticsearch(URL, verify_certs=False)
    for name in ("dbmcp-live-a", "dbmcp-live-secret"):
        await admin.options(ignore_status=404).indices.delete(index=name)
        await admin.index(index=name, document={"level": "error", "n": 1}, refresh=True)
    connector = ElasticsearchConnector("live", ElasticsearchDatabase(
        engine="elasticsearch", url=URL, verify_certs=False, include=["dbmcp-live-*"],
        exclude=["dbmcp-live-secret"]), Limits(max_rows=10))
    await connector.start()
    yield connector
    await connector.close()
    for name in ("dbmcp-live-a", "dbmcp-live-secret"):
        await admin.options(ignore_status=404).indices.delete(index=name)
    await admin.close()


async def test_live_search_esql_describe(live):
    from dbmcp.errors import ToolError

    await live.ping()
    answer = await live.search("dbmcp-live-*", {"query": {"match_all": {}}})
    assert {h["_index"] for h in answer.data["hits"]} == {"dbmcp-live-a"}
    rows = await live.esql("FROM dbmcp-live-* | STATS c = COUNT(*)")
    assert rows.data["rows"] == [[1]]
    assert "level" in {f["path"] for f in (await live.describe_object("dbmcp-live-a")).data["fields"]}
    with pytest.raises(ToolError, match="no such index"):
        await live.search("dbmcp-live-secret", None)
