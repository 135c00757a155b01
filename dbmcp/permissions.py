"""Who may do what: a caller's scopes -> {database: level}. The one place that decides access."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbmcp.config import Config

LEVELS = ("schema", "read")  # ordered: read includes schema


@dataclass(frozen=True)
class Caller:
    """An authenticated (or, with auth off, anonymous) caller and the level it holds on each database."""

    subject: str | None
    client_id: str | None
    levels: dict[str, str] = field(default_factory=dict)

    def level(self, database: str) -> str | None:
        return self.levels.get(database)

    def holds(self, database: str, needed: str) -> bool:
        held = self.levels.get(database)
        return held is not None and LEVELS.index(held) >= LEVELS.index(needed)


def grant(config: Config, scopes: set[str], subject: str | None = None, client_id: str | None = None) -> Caller:
    """The levels a set of scopes grants on each configured database."""
    levels: dict[str, str] = {}
    for name in config.databases:
        by_level = config.scopes_for(name)
        for level in reversed(LEVELS):  # the highest level wins
            if scopes.intersection(by_level[level]):
                levels[name] = level
                break
    return Caller(subject, client_id, levels)


def anonymous(config: Config) -> Caller:
    """auth.mode none: every caller holds read on every database."""
    return Caller(None, None, {name: "read" for name in config.databases})


def nobody() -> Caller:
    """A request the auth gate did not mark (never expected: the gate marks every one) holds nothing."""
    return Caller(None, None, {})


def scope_for(config: Config, database: str, level: str) -> str:
    """The scope to name in an error when a caller lacks `level` on `database`."""
    return config.scopes_for(database)[level][0]
