"""The Elasticsearch connector when things go wrong (bad credentials, cluster errors, a cluster that is down, slow or
comes back), and end to end through `dbmcp serve` with the SDK's client."""

from __future__ import annotations

import logging

import httpx
import pytest
from mcp import Client

from dbmcp.config import ElasticsearchDatabase, Limits
from dbmcp.connectors.elasticsearch import ElasticsearchConnector
from dbmcp.demo.pg import free_port
from dbmcp.errors import ToolError
from tests.connectors.test_elasticsearch import connector_for, sample_cluster
from tests.fakes.es_server import FakeElasticsearch
from tests.helpers import ServeProcess, write_config


@pytest.fixture(scope="module")
def fake():
    es = sample_cluster()
    yield es
    es.stop()


async def test_errors_are_one_line_without_secrets(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.api_key = "the-right-key"
    wrong = connector_for(fake, api_key="hunter2-wrong-key")
    right = connector_for(fake, api_key="the-right-key")
    await wrong.start()
    await right.start()
    try:
        with pytest.raises(ToolError, match="^database 'logs' refused dbmcp's credentials$"):
            await wrong.search("logs", None)
        with pytest.raises(ToolError, match="refused dbmcp's credentials"):
            await wrong.ping()
        await right.ping()
        assert fake.requests[-1].headers["authorization"] == "ApiKey the-right-key"
        for status, kind, expected in ((400, "parsing_exception", "database 'logs': parsing_exception: bad [x]"),
                                       (429, "es_rejected_execution_exception", "busy"),
                                       (500, "search_phase_execution_exception", "search_phase_execution_exception")):
            fake.fail = (status, {"error": {"type": kind, "reason": "bad\n[x]"}, "status": status})
            for call in (right.search("logs", None), right.esql("FROM logs")):
                with pytest.raises(ToolError) as e:
                    await call
                assert expected in e.value.message and "\n" not in e.value.message
        fake.fail = (200, {"is_partial": True, "columns": [], "values": []})
        with pytest.raises(ToolError, match="partial results"):
            await right.esql("FROM logs")
    finally:
        fake.api_key, fake.fail = None, None
        await wrong.close()
        await right.close()
    assert "hunter2" not in caplog.text


async def test_unreachable_and_timeouts(caplog):
    caplog.set_level(logging.DEBUG)
    down = ElasticsearchConnector("logs", ElasticsearchDatabase(
        engine="elasticsearch", url="http://elastic:hunter2@127.0.0.1:1", password="hunter2-too"), Limits(timeout_s=2))
    await down.start()
    try:
        for call in (down.ping(), down.search("logs", None), down.list_objects(None)):
            with pytest.raises(ToolError) as e:
                await call
            assert e.value.message == "database 'logs' is unreachable"
    finally:
        await down.close()
    slow = FakeElasticsearch(indices={"logs": []}, hang=True).start()
    quick = ElasticsearchConnector("logs", ElasticsearchDatabase(engine="elasticsearch", url=slow.url),
                                   Limits(timeout_s=0.3))
    await quick.start()
    try:
        with pytest.raises(ToolError, match=r"^query timed out after 0.3 s \(limits.timeout_s\)$"):
            await quick.search("logs", None)
    finally:
        slow.stop()
        await quick.close()
    invalid = ElasticsearchConnector("logs", ElasticsearchDatabase(
        engine="elasticsearch", url="es.internal:hunter2@:-1"), Limits())
    await invalid.start()
    with pytest.raises(ToolError, match="^database 'logs': invalid Elasticsearch URL"):
        await invalid.ping()
    await invalid.close()
    tls = ElasticsearchConnector("logs", ElasticsearchDatabase(engine="elasticsearch", url="https://u:hunter2@h:9200",
                                                               ca_certs="/nonexistent/ca.pem"), Limits())
    await tls.start()
    with pytest.raises(ToolError, match="^database 'logs': ca_certs is not a readable file$"):
        await tls.search("logs", None)
    await tls.close()
    assert "hunter2" not in caplog.text


async def test_check_warns_about_tls_and_scripts(fake, caplog):
    risky = connector_for(fake, url=fake.url, verify_certs=False, allow_scripts=True)
    await risky.start()
    try:
        await risky.ping()
        assert [w.split(" ")[0] for w in await risky.check()] == ["TLS", "the", "allow_scripts"]
        assert "verification is off" in caplog.text
        assert (await risky.search("logs", {"size": 1, "runtime_mappings": {"x": {"type": "long"}}})).data
    finally:
        await risky.close()


async def test_reconnects_lazily_when_the_cluster_comes_up():
    port = free_port()
    connector = ElasticsearchConnector("logs", ElasticsearchDatabase(engine="elasticsearch",
                                                                     url=f"http://127.0.0.1:{port}"), Limits())
    await connector.start()  # the cluster is down: starting does not fail
    up = None
    try:
        with pytest.raises(ToolError, match="^database 'logs' is unreachable$"):
            await connector.ping()
        up = FakeElasticsearch(indices={"logs": [{"_id": "1", "n": 1}]}, port=port).start()
        await connector.ping()
        assert (await connector.search("logs", None)).data["row_count"] == 1
    finally:
        if up is not None:
            up.stop()
        await connector.close()


async def test_through_the_server(fake, tmp_path):
    config = write_config(tmp_path / "c.yaml", f"""
        limits: {{max_rows: 4}}
        databases:
          logs: {{engine: elasticsearch, url: "{fake.url}", include: ["logs*"], exclude: ["logs-debug"]}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config)
    try:
        async with Client(proc.url + "/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"es_search", "es_esql"} <= names and "sql_query" not in names and "mongo_find" not in names
            result = await client.call_tool("es_search", {"database": "logs", "index": "logs*",
                                                          "body": {"query": {"term": {"level": "error"}}}})
            assert not result.is_error, result.content[0].text
            assert result.structured_content["row_count"] == 4 and result.structured_content["truncated"] is True
            assert result.structured_content["total"] == {"value": 10, "relation": "eq"}
            rows = await client.call_tool("es_esql", {"database": "logs", "query": "FROM logs-2026.02 | KEEP n"})
            assert rows.structured_content["rows"] == [[0], [1], [2], [3]]
            refused = await client.call_tool("es_search", {"database": "logs", "index": "secrets"})
            assert refused.is_error and refused.content[0].text == ("unknown index 'secrets' in database 'logs'; "
                                                                    "see list_objects")
        async with httpx.AsyncClient(base_url=proc.url) as http:
            assert (await http.get("/readyz")).json()["databases"] == {"logs": "ok"}
    finally:
        proc.stop()
