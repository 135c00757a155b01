"""The connector seam: what every engine provides to the server.

A connector owns one configured database: its driver client or pool, its allowlist, its limits. The server
knows connectors only through this interface (like httpx's transports), so an engine is one module plus a
registry entry in `dbmcp/connectors/__init__.py`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from dbmcp.allowlist import Allowlist
from dbmcp.config import Limits
from dbmcp.errors import ToolError

Level = Literal["schema", "read"]


class Args(BaseModel):
    """Base of every tool's arguments: unknown keys are errors; the JSON schema is derived from the fields."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field(description="Database name from list_databases")


class ListObjectsArgs(Args):
    pattern: str | None = Field(None, description="Glob filter on object names, e.g. 'public.order*'")


class DescribeObjectArgs(Args):
    object: str = Field(description="Object name as list_objects returns it")


@dataclass(frozen=True)
class ToolSpec:
    """An MCP tool: its name, a short precise description, its arguments and the level it needs."""

    name: str
    description: str
    args: type[Args]
    level: Level


@dataclass
class Answer:
    """A tool's structured result plus what the audit line records about it."""

    data: dict[str, Any]
    object: str | None = None
    statement: str | None = None
    row_count: int | None = None
    truncated: bool | None = None
    text: str | None = field(default=None, repr=False)  # the data pre-serialized as compact JSON, when cheaper


class Connector(abc.ABC):
    """One configured database of one engine."""

    engine: ClassVar[str]
    tools: ClassVar[tuple[ToolSpec, ...]]  # the engine's own tools, beyond list_objects / describe_object

    def __init__(self, name: str, config: Any, limits: Limits):
        self.name = name
        self.config = config
        self.limits = limits
        self.allowlist = Allowlist(config.include, config.exclude)

    @abc.abstractmethod
    async def start(self) -> None:
        """Prepare the client or pool. Must not fail when the database is down: it is reached lazily."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise ToolError unless the database answers now."""

    @abc.abstractmethod
    async def list_objects(self, pattern: str | None) -> Answer: ...

    @abc.abstractmethod
    async def describe_object(self, name: str) -> Answer: ...

    @abc.abstractmethod
    async def call(self, tool: str, args: Args) -> Answer:
        """Run one of this engine's own `tools`."""

    def timed_out(self) -> ToolError:
        """The one wording, for every engine, of a call that ran past limits.timeout_s."""
        return ToolError(f"query timed out after {self.limits.timeout_s:g} s (limits.timeout_s)")

    def unreachable(self) -> ToolError:
        """The one wording, for every engine, of a database that cannot be reached (never the URL)."""
        return ToolError(f"database {self.name!r} is unreachable")

    def unknown_object(self, name: str) -> ToolError:
        """describe_object's answer for a name that does not exist or is outside the allowlist (read alike)."""
        return ToolError(f"unknown object {name!r} in database {self.name!r}; see list_objects")

    async def check(self) -> list[str]:
        """Warnings for `dbmcp check` (e.g. a too-powerful role); empty when all is well."""
        return []
