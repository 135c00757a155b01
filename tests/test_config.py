"""Config loading: the whole schema, interpolation, and one-line errors with file, line and dotted path."""

from __future__ import annotations

import pytest

from dbmcp.cli import main
from dbmcp.config import ConfigError, load
from tests.helpers import write_config

MINIMAL = """
databases:
  sales:
    engine: postgres
    url: postgresql://u@localhost/sales
"""


def errors_of(tmp_path, text: str, **env) -> list[str]:
    path = write_config(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as e:
        load(path)
    return e.value.lines


def test_minimal_config_has_contract_defaults(tmp_path):
    config = load(write_config(tmp_path / "c.yaml", MINIMAL))
    assert config.server.host == "127.0.0.1" and config.server.port == 8765 and config.server.path == "/mcp"
    assert config.server.stateless is True
    assert config.auth.mode == "none"
    assert (config.limits.max_rows, config.limits.max_bytes, config.limits.timeout_s) == (1000, 1_000_000, 30)
    assert config.scopes_for("sales") == {"schema": ["sales:schema"], "read": ["sales:read"]}
    assert config.audit.path == "-"


def test_full_example_parses(monkeypatch):
    for var in ("SALES_DATABASE_URL", "APP_MONGODB_URL", "LOGS_ES_API_KEY", "ANALYST_KEY", "INTROSPECTION_SECRET"):
        monkeypatch.setenv(var, "x" * 20)
    config = load("config/full.yaml")
    assert {db.engine for db in config.databases.values()} == {"postgres", "mongodb", "elasticsearch"}
    assert config.auth.mode == "api_keys" and config.databases["sales"].allow_functions == []


def test_interpolation_and_per_database_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_URL", "postgresql://ro@db/sales")
    monkeypatch.delenv("PORT_UNSET", raising=False)
    config = load(write_config(tmp_path / "c.yaml", """
        server:
          port: ${PORT_UNSET:-9001}
        limits: {max_rows: 50}
        databases:
          sales:
            engine: postgres
            url: ${PG_URL}
            scopes: {schema: [a, b], read: sales-reader}
            limits: {max_rows: 5, timeout_s: 2}
    """))
    assert config.server.port == 9001
    assert config.databases["sales"].url == "postgresql://ro@db/sales"
    assert config.limits_for("sales").max_rows == 5 and config.limits_for("sales").max_bytes == 1_000_000
    assert config.scopes_for("sales") == {"schema": ["a", "b"], "read": ["sales-reader"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 1\n" + MINIMAL, "c.yaml:2: server.prot: unknown key"),
        (MINIMAL + "    colour: red\n", "c.yaml:5: databases.sales.colour: unknown key"),
        (MINIMAL.replace("postgres\n", "oracle\n"), "c.yaml:3: databases.sales.engine: unknown engine 'oracle'"),
        (MINIMAL.replace("    url: postgresql://u@localhost/sales\n", ""), "databases.sales.url: required"),
        ("server:\n  port: many\n" + MINIMAL, "c.yaml:2: server.port: Input should be a valid integer"),
        ("server:\n  path: mcp\n" + MINIMAL, "server.path: must start with '/'"),
        ("server:\n  host: 0.0.0.0\n" + MINIMAL, "c.yaml:2: server.host: auth.mode none is refused on non-loopback"),
        (MINIMAL.replace("${", "").replace("url: p", "url: ${NOPE_NOT_SET}p"),
         "c.yaml:4: databases.sales.url: environment variable NOPE_NOT_SET is not set"),
        (MINIMAL + "  sales:\n    engine: postgres\n", "c.yaml:5: databases.sales: duplicate key"),
        ("databases: [1, 2\n", "c.yaml:2: (top): invalid YAML"),
        ("databases: {}\n", "databases: Dictionary should have at least 1 item"),
        ("- a\n", "(top): the config must be a mapping"),
        ("databases:\n  app:\n    engine: mongodb\n    url: mongodb://x\n", "c.yaml:2: databases.app.database: required"),
        ("limits: {max_rows: 0}\n" + MINIMAL, "c.yaml:1: limits.max_rows: Input should be greater than or equal to 1"),
    ],
)
def test_errors_name_file_line_and_path(tmp_path, monkeypatch, text, expected):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    lines = errors_of(tmp_path, text)
    assert all(line.startswith("config error: ") and "\n" not in line for line in lines)
    assert any(expected in line for line in lines), lines


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "missing.yaml")
    assert "missing.yaml:0: (top): cannot read file" in e.value.lines[0]


def test_cli_prints_config_errors_and_exits_2(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", "server:\n  prot: 1\n" + MINIMAL)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"config error: {path}:2: server.prot: unknown key"
    assert "Traceback" not in err


def test_secrets_do_not_appear_in_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_URL", "postgresql://u:hunter2-secret@db/x")
    text = MINIMAL.replace("url: postgresql://u@localhost/sales", "url: ${SECRET_URL}\n    port: 1")
    lines = errors_of(tmp_path, text)
    assert lines and not any("hunter2" in line for line in lines)
