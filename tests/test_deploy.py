"""Deployment files: docker-compose.yml is well-formed and safe (no Docker engine here), the example configs
load, and the compose seed step works against a real, fresh PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import yaml

from dbmcp.config import load
from dbmcp.demo.pg import EmbeddedPostgres
from dbmcp.demo.seed import seed

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_well_formed_and_loopback_only():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "seed", "mongo", "elasticsearch", "es-seed", "dbmcp"}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert services["seed"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    dependencies = services["dbmcp"]["depends_on"]
    assert dependencies["seed"]["condition"] == dependencies["es-seed"]["condition"] == "service_completed_successfully"
    assert dependencies["mongo"]["condition"] == "service_healthy"
    assert not services["elasticsearch"].get("ports") and not services["mongo"].get("ports")  # compose network only
    assert (ROOT / "Dockerfile").exists()


def test_compose_config_loads_with_its_environment(monkeypatch):
    monkeypatch.setenv("DBMCP_API_KEY", "dbmcp_" + "k" * 40)
    monkeypatch.setenv("STORE_DATABASE_URL", "postgresql://dbmcp_demo:pw@postgres:5432/store")
    monkeypatch.setenv("APP_MONGODB_URL", "mongodb://dbmcp_ro:pw@mongo:27017/app")
    config = load(ROOT / "config/compose.yaml")
    assert config.auth.mode == "api_keys" and config.server.host == "0.0.0.0"
    assert {db.engine for db in config.databases.values()} == {"postgres", "mongodb", "elasticsearch"}


@pytest.mark.parametrize("name", ["postgres.yaml", "demo.yaml", "mongodb.yaml", "elasticsearch.yaml"])
def test_example_configs_load(name, monkeypatch):
    monkeypatch.setenv("SALES_DATABASE_URL", "postgresql://ro@db/sales")
    monkeypatch.setenv("APP_MONGODB_URL", "mongodb://ro@db/app")
    monkeypatch.setenv("LOGS_ES_API_KEY", "k" * 20)
    monkeypatch.setenv("DBMCP_DEMO_URL", "postgresql://ro@127.0.0.1/store")
    assert load(ROOT / "config" / name).databases


async def test_seed_step_is_idempotent_and_creates_a_login_role():
    with EmbeddedPostgres() as pg:
        admin = await asyncpg.connect(pg.dsn())
        await admin.execute("CREATE DATABASE store")
        await admin.close()
        first = await seed(pg.dsn("store"), "reader-pw", scale=0.02)
        assert first.startswith("loaded ")
        assert await seed(pg.dsn("store"), "reader-pw", scale=0.02) == "store schema already present; nothing to do"
        reader = await asyncpg.connect(pg.dsn("store", user="dbmcp_demo", password="reader-pw"))
        try:
            assert await reader.fetchval("SELECT count(*) > 0 FROM store.orders")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch("SELECT * FROM store.customer_secrets")
            assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
        finally:
            await reader.close()


def test_seed_scripts_are_well_formed():
    import subprocess

    assert subprocess.run(["sh", "-n", str(ROOT / "config/compose/es-seed.sh")]).returncode == 0
    mongo_init = (ROOT / "config/compose/mongo-init.js").read_text()
    assert 'roles: [{role: "read", db: "app"}]' in mongo_init  # dbmcp's MongoDB user can only read
