"""The YAML config: typed models, `${VAR}` interpolation, and errors that point at a file line.

Every user mistake becomes a `ConfigError` whose lines read
`config error: <file>:<line>: <dotted.path>: <what is wrong>`; the CLI prints them and exits 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENGINES = ("postgres", "mongodb", "elasticsearch")
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


class ConfigError(Exception):
    """One or more config problems, each already formatted as a `config error: ...` line."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Limits(_Model):
    max_rows: int = Field(1000, ge=1, le=10_000_000)
    max_bytes: int = Field(1_000_000, ge=1024, le=1_000_000_000)
    timeout_s: float = Field(30, gt=0, le=3600)


class LimitsOverride(_Model):
    max_rows: int | None = Field(None, ge=1, le=10_000_000)
    max_bytes: int | None = Field(None, ge=1024, le=1_000_000_000)
    timeout_s: float | None = Field(None, gt=0, le=3600)

    def over(self, base: Limits) -> Limits:
        return base.model_copy(update=self.model_dump(exclude_none=True))


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    path: str = "/mcp"
    stateless: bool = True
    public_url: str | None = None
    allowed_hosts: list[str] = []
    shutdown_timeout_s: float = Field(30, gt=0, le=3600)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v == "/" or v.endswith("/"):
            raise ValueError("must start with '/' and name a path, e.g. /mcp")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an absolute http(s) URL")
        return v


class ApiKey(_Model):
    name: str = Field(min_length=1)
    key_sha256: str | None = None
    key: str | None = Field(None, repr=False)
    scopes: list[str] = []

    @model_validator(mode="after")
    def _one_form(self) -> ApiKey:
        if (self.key_sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of key_sha256 or key")
        if self.key_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.key_sha256):
            raise ValueError("key_sha256 must be 64 hex characters")
        if self.key is not None and len(self.key) < 16:
            raise ValueError("key must be at least 16 characters")
        return self


class Introspection(_Model):
    url: str
    client_id: str
    client_secret: str = Field(repr=False)


class AuthConfig(_Model):
    mode: Literal["none", "api_keys", "oauth"] = "none"
    api_keys: list[ApiKey] = []
    issuer: str | None = None
    jwks_uri: str | None = None
    audience: str | None = None
    introspection: Introspection | None = None

    @model_validator(mode="after")
    def _mode_keys(self) -> AuthConfig:
        if self.mode == "api_keys" and not self.api_keys:
            raise ValueError("mode api_keys needs at least one entry in api_keys")
        if self.mode == "oauth" and not self.issuer:
            raise ValueError("mode oauth needs issuer")
        return self


ScopeList = Annotated[list[str], Field(min_length=1)]


class Scopes(_Model):
    schema_: str | ScopeList | None = Field(None, alias="schema")
    read: str | ScopeList | None = None


class _Database(_Model):
    url: str = Field(min_length=1, repr=False)
    description: str = ""
    scopes: Scopes = Scopes()
    include: list[str] = ["*"]
    exclude: list[str] = []
    limits: LimitsOverride = LimitsOverride()


class PostgresDatabase(_Database):
    engine: Literal["postgres"]
    pool_min_size: int = Field(0, ge=0, le=100)
    pool_max_size: int = Field(10, ge=1, le=100)
    connect_timeout_s: float = Field(10, gt=0, le=300)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    ssl_ca_file: str | None = None
    allow_functions: list[str] = []


class MongoDatabase(_Database):
    engine: Literal["mongodb"]
    database: str = Field(min_length=1)
    read_preference: Literal["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"] = (
        "primaryPreferred"
    )
    sample_size: int = Field(1000, ge=1, le=100_000)


class ElasticsearchDatabase(_Database):
    engine: Literal["elasticsearch"]
    api_key: str | None = Field(None, repr=False)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    allow_scripts: bool = False


Database = Annotated[PostgresDatabase | MongoDatabase | ElasticsearchDatabase, Field(discriminator="engine")]


class AuditConfig(_Model):
    path: str = "-"
    max_bytes: int = Field(100_000_000, ge=1024)
    backups: int = Field(5, ge=0, le=1000)


class Config(_Model):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    limits: Limits = Limits()
    databases: dict[str, Database] = Field(min_length=1)
    audit: AuditConfig = AuditConfig()

    @field_validator("databases")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}", name):
                raise ValueError(f"database name {name!r} must be letters, digits, '_', '.', '-' (max 63)")
        return v

    def limits_for(self, name: str) -> Limits:
        return self.databases[name].limits.over(self.limits)

    def scopes_for(self, name: str) -> dict[str, list[str]]:
        """{level: scopes granting it}; defaults `<name>:schema` and `<name>:read`."""
        s = self.databases[name].scopes
        out = {}
        for level, value in (("schema", s.schema_), ("read", s.read)):
            value = f"{name}:{level}" if value is None else value
            out[level] = [value] if isinstance(value, str) else list(value)
        return out


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---- loading ------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Located:
    """Plain data built from a YAML node tree, plus the line of every path in it."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[tuple, int] = {}
        self.errors: list[str] = []
        self._scalars = yaml.SafeLoader("")  # resolves a scalar's YAML type (int, bool, null ...) as safe_load would

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(format_error(self.file, self.line(path), path, message))

    def line(self, path: tuple) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def build(self, node: yaml.Node, path: tuple) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if not isinstance(key_node, yaml.ScalarNode):
                    self.error(path, "keys must be plain strings")
                    continue
                if key in out:
                    self.lines[path + (key,)] = key_node.start_mark.line + 1
                    self.error(path + (key,), "duplicate key")
                    continue
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        value = self._scalars.construct_object(node)
        if isinstance(value, str):
            value = self.interpolate(value, path)
        return value

    def interpolate(self, text: str, path: tuple) -> str:
        def repl(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    self.error(path, f"environment variable {name} is not set")
                    return ""
                return default
            return value

        return _VAR.sub(repl, text)


def format_error(file: str, line: int, path: tuple, message: str) -> str:
    dotted = ".".join(str(p) for p in path) or "(top)"
    return f"config error: {file}:{line}: {dotted}: {message}"


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union tags (databases.x.postgres.url -> databases.x.url)."""
    if len(loc) > 2 and loc[0] == "databases" and loc[2] in ENGINES:
        return loc[:2] + loc[3:]
    return loc


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required"
    if err["type"] == "union_tag_invalid":
        return f"unknown engine {err['ctx']['tag']!r} (expected one of: {', '.join(ENGINES)})"
    if err["type"] == "union_tag_not_found":
        return "engine is required (postgres, mongodb or elasticsearch)"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def load(path: str | Path, *, host: str | None = None, port: int | None = None) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError with every problem found."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([format_error(file, 0, (), f"cannot read file: {e.strerror or e}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([format_error(file, line, (), f"invalid YAML: {problem}")]) from None
    located = _Located(file)
    data = located.build(root, ()) if root is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([format_error(file, 1, (), "the config must be a mapping (server:, databases: ...)")])
    if located.errors:
        raise ConfigError(located.errors)
    server = data.setdefault("server", {}) if isinstance(data.get("server", {}), dict) else {}
    if host is not None:
        server["host"] = host
    if port is not None:
        server["port"] = port
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = _clean_loc(tuple(err["loc"]))
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc += ("engine",)
            lines.append(format_error(file, located.line(loc), loc, _message(err)))
        raise ConfigError(lines) from None
    problems = _semantic_problems(config)
    if problems:
        raise ConfigError([format_error(file, located.line(p), p, m) for p, m in problems])
    return config


def _semantic_problems(config: Config) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    if config.auth.mode == "none" and not is_loopback(config.server.host):
        problems.append(
            (("server", "host"), f"auth.mode none is refused on non-loopback host {config.server.host!r}; "
             "use 127.0.0.1 or set auth.mode to api_keys or oauth")
        )
    if config.auth.mode == "oauth" and not config.server.public_url:
        problems.append((("server", "public_url"), "required when auth.mode is oauth (it is the token audience)"))
    from dbmcp.connectors import available_engines  # late: connectors import drivers

    for name, db in config.databases.items():
        if db.engine not in available_engines():
            problems.append(
                (("databases", name, "engine"),
                 f"engine {db.engine!r} is not available in this dbmcp version "
                 f"(available: {', '.join(available_engines())})")
            )
    return problems
