"""permissions.py: scopes -> {database: level}, the one place that decides access."""

from __future__ import annotations

from dbmcp import permissions
from dbmcp.config import Config


def config() -> Config:
    return Config.model_validate({"databases": {
        "sales": {"engine": "postgres", "url": "postgresql://x/s"},
        "logs": {"engine": "postgres", "url": "postgresql://x/l",
                 "scopes": {"schema": ["logs-schema", "analyst"], "read": "logs-read"}},
    }})


def test_levels_from_scopes():
    c = config()
    assert permissions.grant(c, {"sales:read"}).levels == {"sales": "read"}
    assert permissions.grant(c, {"sales:schema", "analyst"}).levels == {"sales": "schema", "logs": "schema"}
    assert permissions.grant(c, {"sales:schema", "sales:read"}).levels == {"sales": "read"}  # the highest wins
    assert permissions.grant(c, {"logs:read", "unrelated"}).levels == {}  # custom scopes replace the defaults


def test_holds_orders_levels():
    caller = permissions.grant(config(), {"sales:read", "logs-schema"})
    assert caller.holds("sales", "schema") and caller.holds("sales", "read")
    assert caller.holds("logs", "schema") and not caller.holds("logs", "read")
    assert not caller.holds("nope", "schema")


def test_anonymous_reads_everything_and_scope_for_names_the_first_scope():
    c = config()
    assert permissions.anonymous(c).levels == {"sales": "read", "logs": "read"}
    assert permissions.scope_for(c, "logs", "schema") == "logs-schema"
