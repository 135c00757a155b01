"""Object allowlists: `include` / `exclude` glob patterns from a database's config."""

from __future__ import annotations

from fnmatch import fnmatchcase


class Allowlist:
    def __init__(self, include: list[str], exclude: list[str]):
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, p) for p in self.include) and not any(fnmatchcase(name, p) for p in self.exclude)


def matches(name: str, pattern: str | None) -> bool:
    """The `pattern` argument of list_objects: a case-sensitive glob; None matches everything."""
    return pattern is None or fnmatchcase(name, pattern)
