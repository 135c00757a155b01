"""Auth end to end: a real `dbmcp serve` with two databases, tokens from a loopback IdP, the SDK client."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from dbmcp.auth.api_keys import digest
from tests.auth.idp import LoopbackIdP
from tests.helpers import ServeProcess, audit_record, write_config

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture(scope="module")
def idp():
    server = LoopbackIdP()
    server.opaque["opaque-ops-token"] = {"active": True, "sub": "bob", "client_id": "cli", "scope": "ops:read",
                                         "iss": server.issuer, "aud": "https://dbmcp.test/mcp"}
    yield server
    server.close()


@pytest.fixture(scope="module")
def oauth_server(store_url, idp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oauth")
    config = write_config(tmp / "config.yaml", f"""
        server:
          public_url: https://dbmcp.test/mcp
        auth:
          mode: oauth
          issuer: {idp.issuer}
          introspection: {{url: "{idp.url}/introspect", client_id: dbmcp, client_secret: "${{INTRO_SECRET}}"}}
        databases:
          sales: {{engine: postgres, url: "{store_url}", include: ["store.*"]}}
          ops: {{engine: postgres, url: "{store_url}", include: ["lab.*"], exclude: ["lab.hidden"]}}
        audit: {{path: "{tmp / 'audit.jsonl'}"}}
    """)
    proc = ServeProcess(config, env={"INTRO_SECRET": "introspection-secret"})
    proc.audit = tmp / "audit.jsonl"
    yield proc
    proc.stop()


def client(server: ServeProcess, token: str) -> Client:
    """The SDK client with a bearer header, as a gateway such as mcp-remote sends it."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(server.url + "/mcp", http_client=http))


async def test_each_caller_sees_exactly_what_its_scopes_grant(oauth_server, idp):
    async with client(oauth_server, idp.token("sales:read ops:schema")) as c:
        dbs = (await c.call_tool("list_databases", {})).structured_content["databases"]
        assert {d["name"]: d["access"] for d in dbs} == {"sales": "read", "ops": "schema"}
        ok = await c.call_tool("sql_query", {"database": "sales", "sql": "select 1"})
        assert not ok.is_error
        denied = await c.call_tool("sql_query", {"database": "ops", "sql": "select 1"})
        assert denied.is_error
        assert denied.content[0].text == "sql_query on 'ops' needs the read level: scope 'ops:read' grants it"
    async with client(oauth_server, idp.token("sales:schema")) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        assert names == ["list_databases", "list_objects", "describe_object"]  # no query tools without read
        dbs = (await c.call_tool("list_databases", {})).structured_content["databases"]
        assert [d["name"] for d in dbs] == ["sales"]
        hidden = await c.call_tool("list_objects", {"database": "ops"})
        assert hidden.content[0].text == "unknown database 'ops'; available: sales"  # reads like an unknown one


async def test_opaque_tokens_through_introspection(oauth_server):
    async with client(oauth_server, "opaque-ops-token") as c:
        dbs = (await c.call_tool("list_databases", {})).structured_content["databases"]
        assert [(d["name"], d["access"]) for d in dbs] == [("ops", "read")]


async def test_challenges(oauth_server, idp):
    metadata = 'resource_metadata="https://dbmcp.test/.well-known/oauth-protected-resource/mcp"'
    async with httpx.AsyncClient(base_url=oauth_server.url) as http:
        r = await http.post("/mcp", json=LIST, headers=ACCEPT)
        assert r.status_code == 401 and r.headers["www-authenticate"] == f"Bearer {metadata}"
        for bad in (idp.token(exp=0), "garbage", idp.token(audience="https://elsewhere/mcp")):
            r = await http.post("/mcp", json=LIST, headers={**ACCEPT, "Authorization": f"Bearer {bad}"})
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
            assert metadata in r.headers["www-authenticate"]
        r = await http.post(f"/mcp?access_token={idp.token()}", json=LIST, headers=ACCEPT)
        assert r.status_code == 401  # a token in the query string is not read
        r = await http.post("/mcp", json=LIST, headers={**ACCEPT, "Authorization": f"Bearer {idp.token('x:read')}"})
        assert r.status_code == 403
        assert r.headers["www-authenticate"].startswith(
            'Bearer error="insufficient_scope", error_description="the token grants no database", '
            'scope="sales:schema sales:read ops:schema ops:read"')


async def test_protected_resource_metadata_at_both_forms(oauth_server, idp):
    async with httpx.AsyncClient(base_url=oauth_server.url) as http:
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            body = (await http.get(path)).json()
            assert body["resource"] == "https://dbmcp.test/mcp"
            assert body["authorization_servers"] == [idp.issuer]
            assert body["scopes_supported"] == ["sales:schema", "sales:read", "ops:schema", "ops:read"]
        assert (await http.get("/healthz")).status_code == 200  # health needs no token


async def test_audit_names_the_caller_never_the_token(oauth_server, idp):
    token = idp.token("sales:read", sub="carol")
    async with client(oauth_server, token) as c:
        await c.call_tool("sql_query", {"database": "sales", "sql": "select 'x'"})
    record, text = await audit_record(oauth_server.audit, subject="carol", tool="sql_query")
    assert record["client_id"] == "test-client" and record["outcome"] == "ok"
    assert token not in text and token.split(".")[2] not in text


def test_api_keys_mode(store_url, tmp_path):
    key = "dbmcp_test_key_0123456789abcdef"
    config = write_config(tmp_path / "c.yaml", f"""
        auth:
          mode: api_keys
          api_keys:
            - {{name: analyst, key_sha256: "{digest(key)}", scopes: [sales:read]}}
            - {{name: ops-bot, key: "${{OPS_KEY}}", scopes: [ops:schema]}}
        databases:
          sales: {{engine: postgres, url: "{store_url}", include: ["store.*"]}}
          ops: {{engine: postgres, url: "{store_url}", include: ["lab.*"]}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config, env={"OPS_KEY": "ops-key-from-the-environment"})
    try:
        def tools(token: str | None) -> httpx.Response:
            headers = {**ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
            return httpx.post(proc.url + "/mcp", json=LIST, headers=headers)

        assert [t["name"] for t in tools(key).json()["result"]["tools"]][-1] == "sql_explain"
        assert [t["name"] for t in tools("ops-key-from-the-environment").json()["result"]["tools"]] == [
            "list_databases", "list_objects", "describe_object"]
        r = tools("wrong-key")
        assert r.status_code == 401 and r.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="unknown API key", realm="dbmcp"')
        assert tools(None).status_code == 401
    finally:
        proc.stop()
