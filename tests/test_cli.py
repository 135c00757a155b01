"""`dbmcp check`: per-database status, tools and warnings; exit 0 / 1 / 2."""

from __future__ import annotations

from dbmcp.cli import main
from dbmcp.demo.launcher import DATABASE
from tests.helpers import write_config


def test_check_all_good(store_url, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          store: {{engine: postgres, url: "{store_url}"}}
    """)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "store (postgres): ok; tools: list_objects, describe_object, sql_query, sql_explain"


def test_check_reports_unreachable_and_superuser(pg, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          admin: {{engine: postgres, url: "{pg.dsn(DATABASE)}"}}
          gone: {{engine: postgres, url: "postgresql://u:hunter2@127.0.0.1:1/x", connect_timeout_s: 1}}
    """)
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "admin (postgres): ok" in out and "warning: connects as superuser 'postgres'" in out
    assert "gone (postgres): database 'gone' is unreachable" in out
    assert "hunter2" not in out
