"""The engine registry: engine name -> connector class, imported only when a database uses it."""

from __future__ import annotations

import importlib

from dbmcp.connectors.base import Connector

_REGISTRY: dict[str, str] = {
    "postgres": "dbmcp.connectors.postgres:PostgresConnector",
    "mongodb": "dbmcp.connectors.mongodb:MongoConnector",
    "elasticsearch": "dbmcp.connectors.elasticsearch:ElasticsearchConnector",
}


def available_engines() -> list[str]:
    return list(_REGISTRY)


def connector_class(engine: str) -> type[Connector]:
    module, _, cls = _REGISTRY[engine].partition(":")
    return getattr(importlib.import_module(module), cls)
