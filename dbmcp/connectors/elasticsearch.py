"""Elasticsearch through the official async client: indices, mappings, bounded search and ES|QL.

Every target passes the guard (guards/es.py, guards/esql.py) before a request is built: wildcards, `_all` and
date math are expanded by the resolve API and narrowed to the allowed names, so searches and ES|QL queries name
only allowed indices. Endpoints called: `HEAD /` (ping), `_resolve/index` and `_count` (listing),
`_mapping`, `_search`, `_query` (ES|QL); nothing else. Sizes are capped at max_rows (one more hit is asked for
so that `truncated` is exact), `track_total_hits` is bounded, answers are cut at max_bytes, and every request
has the limits.timeout_s deadline. The 8.x client speaks to 8.x and 9.x servers (REST compatibility 8).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, AsyncElasticsearch, UnsupportedProductError
from pydantic import Field

from dbmcp.config import ElasticsearchDatabase, Limits
from dbmcp.connectors.base import Answer, Args, Connector, ToolSpec
from dbmcp.connectors.elasticsearch_mapping import (
    KINDS,
    esql_answer,
    flatten,
    kind_of,
    listing,
    search_answer,
    track_total,
    window,
)
from dbmcp.errors import ToolError
from dbmcp.guards import es as guard
from dbmcp.guards.esql import check_esql
from dbmcp.results import dumps

log = logging.getLogger("dbmcp.elasticsearch")
logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # it logs every request (with its URL) at INFO
_MAX_TARGET = 3000  # characters of explicit index names in a search path (the cluster caps the request line)
_COUNTED = 50  # list_objects counts the documents of this many objects (one count request each)


class SearchArgs(Args):
    index: str = Field(description="Index, alias or data stream; comma lists, * wildcards and -exclusions allowed")
    body: dict[str, Any] | None = Field(
        None, description="Search body: query, aggs, sort, _source, size (default and cap: max_rows), "
        "from (at most 10000), search_after, track_total_hits, highlight, fields")


class EsqlArgs(Args):
    query: str = Field(description="ES|QL query, e.g. FROM logs-* | WHERE level == \"error\" | STATS n = COUNT(*)")


class ElasticsearchConnector(Connector):
    engine = "elasticsearch"
    tools = (
        ToolSpec("es_search", "Search Elasticsearch indices with a query DSL body. Hits (`_index`, `_id`, `_score`, "
                 "`_source`; `sort` values for search_after) are capped at max_rows; `truncated` says when hits were "
                 "left out. Aggregations are returned as Elasticsearch computes them.", SearchArgs, "read"),
        ToolSpec("es_esql", "Run a read-only ES|QL query (FROM index | ...) and return columns and rows, capped at "
                 "max_rows (`truncated` says when rows were left out). ENRICH is not available.", EsqlArgs, "read"),
    )
    config: ElasticsearchDatabase

    def __init__(self, name: str, config: ElasticsearchDatabase, limits: Limits):
        super().__init__(name, config, limits)
        self.policy = guard.EsPolicy(self.allowlist.allows, tuple(config.include), name, config.allow_scripts)
        self._client: AsyncElasticsearch | None = None
        self._invalid = "invalid Elasticsearch URL"

    # ---- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Build the client; nothing connects until the first request (a cluster that is down does not stop us)."""
        c = self.config
        if not c.verify_certs:
            log.warning("database %s: TLS certificate verification is off (verify_certs: false); "
                        "set ca_certs instead", self.name)
        auth: dict[str, Any] = {}
        if c.api_key:
            auth["api_key"] = c.api_key
        elif c.username is not None:
            auth["basic_auth"] = (c.username, c.password or "")
        try:
            self._client = AsyncElasticsearch(
                hosts=[c.url], ca_certs=c.ca_certs, verify_certs=c.verify_certs, ssl_show_warn=False,
                request_timeout=self.limits.timeout_s, max_retries=1, retry_on_timeout=False, **auth,
            )
        except (ValueError, TypeError, OSError) as e:  # never the message itself: it may quote the URL
            self._invalid = _invalid_options(str(e))
            log.warning("database %s: %s", self.name, self._invalid)
            self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        await self._run(lambda es: es.perform_request("HEAD", "/", headers={"accept": "application/json"}))

    async def check(self) -> list[str]:
        warnings = []
        if not self.config.verify_certs:
            warnings.append("TLS certificate verification is off (verify_certs: false): set ca_certs instead")
        if self.config.url.lower().startswith("http://"):
            warnings.append("the URL is http://: credentials and results cross the network unencrypted")
        if self.config.allow_scripts:
            warnings.append("allow_scripts is on: scripts in requests run on the cluster")
        return warnings

    # ---- requests ---------------------------------------------------------------------------------
    async def _run(self, operation: Callable[[AsyncElasticsearch], Awaitable[Any]], target: str | None = None) -> Any:
        """Run `operation(client)`; errors become one line without the URL or credentials."""
        if self._client is None:
            raise ToolError(f"database {self.name!r}: {self._invalid}")
        try:
            return await operation(self._client)
        except UnsupportedProductError:
            raise ToolError(f"database {self.name!r} did not answer as Elasticsearch") from None
        except ApiError as e:
            raise self._api_error(e, target) from None
        except ConnectionTimeout:
            raise self.timed_out() from None
        except TransportError as e:
            log.warning("database %s unreachable: %s", self.name, type(e).__name__)
            raise self.unreachable() from None

    def _api_error(self, e: ApiError, target: str | None) -> ToolError:
        error = e.body.get("error") if isinstance(e.body, dict) else None
        error = error if isinstance(error, dict) else {}
        kind, reason = error.get("type") or "", error.get("reason") or e.message or type(e).__name__
        status = e.meta.status
        if status == 401:
            return ToolError(f"database {self.name!r} refused dbmcp's credentials")
        if status == 403:
            return ToolError(f"database {self.name!r} refused the request: dbmcp's credentials lack a privilege")
        if kind == "index_not_found_exception":
            index = error.get("index") or error.get("resource.id")
            shown = index if isinstance(index, str) and self.policy.visible(index) else target
            return self.policy.unknown(shown or "?", ToolError)
        if status == 429:
            return ToolError(f"database {self.name!r} is busy (HTTP 429); try again shortly")
        cause = (error.get("caused_by") or {}).get("reason") if isinstance(error.get("caused_by"), dict) else None
        text = " ".join(f"{kind + ': ' if kind else ''}{reason}{f' ({cause})' if cause else ''}".split())
        return ToolError(f"database {self.name!r}: {text[:400]}")

    def _expand(self, hidden: bool) -> list[str]:
        return ["open", "hidden"] if hidden else ["open"]

    async def _resolve(self, expression: str, hidden: bool) -> list[str]:
        """The names a wildcard or date-math expression matches now (the guard narrows them)."""
        response = await self._run(lambda es: es.indices.resolve_index(
            name=expression, expand_wildcards=self._expand(hidden), ignore_unavailable=True))
        body = response.body if isinstance(response.body, dict) else {}
        return [i["name"] for key, _ in KINDS for i in body.get(key) or [] if isinstance(i.get("name"), str)]

    # ---- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, args: Args) -> Answer:
        if isinstance(args, SearchArgs):
            return await self.search(args.index, args.body)
        if isinstance(args, EsqlArgs):
            return await self.esql(args.query)
        raise ToolError(f"unknown tool {tool!r}")

    async def search(self, index: str, body: dict[str, Any] | None) -> Answer:
        request = dict(body or {})
        guard.check_body(request, self.policy)
        keep, ask, _ = window(request, self.limits.max_rows)
        request["size"] = ask
        request["track_total_hits"] = track_total(request.get("track_total_hits"))
        names = await guard.resolve(index, self.policy, self._resolve)
        target = ",".join(names)
        if len(quote(target, safe=",*")) > _MAX_TARGET:
            raise ToolError(f"index {index!r} matches {len(names)} indices, too many for one search: name fewer")
        response = await self._run(lambda es: es.search(index=target, body=request,
                                                        allow_partial_search_results=False), index)
        data, text = search_answer(response.body, keep, self.limits.max_bytes)
        return Answer(data, object=index, statement=dumps(body or {}), row_count=data["row_count"],
                      truncated=data["truncated"], text=text)

    async def esql(self, query: str) -> Answer:
        checked = await check_esql(query, self.policy, self._resolve)
        bounded = f"{checked}\n| LIMIT {self.limits.max_rows + 1}"  # max_rows + 1: the extra row marks truncation
        response = await self._run(lambda es: es.esql.query(query=bounded, format="json"))
        body = response.body if isinstance(response.body, dict) else {}
        if body.get("is_partial"):
            raise ToolError(f"database {self.name!r}: ES|QL returned partial results (some shards or clusters "
                            "failed); try again")
        data, text = esql_answer(body, self.limits.max_rows, self.limits.max_bytes)
        return Answer(data, statement=query, row_count=data["row_count"], truncated=data["truncated"], text=text)

    async def list_objects(self, pattern: str | None) -> Answer:
        expand = ["open", "closed"] + (["hidden"] if any(p.startswith(".") for p in self.policy.include) else [])
        resolved = await self._run(lambda es: es.indices.resolve_index(name="*", expand_wildcards=expand))
        objects, truncated = listing(resolved.body, self.policy.visible, pattern, self.limits.max_rows)
        # document counts through the count endpoint only (no _cat/_stats: dbmcp calls search, count, mapping,
        # resolve and ES|QL and nothing else), for the first objects listed
        for obj in objects[:_COUNTED]:
            try:  # best effort: a closed index cannot be counted, and that is no reason to fail the listing
                counted = await self._run(lambda es, n=obj["name"]: es.count(index=n), obj["name"])
                obj["rows"] = counted.body.get("count")
            except ToolError:
                obj["rows"] = None
        return Answer({"objects": objects, "truncated": truncated}, row_count=len(objects), truncated=truncated)

    async def describe_object(self, name: str) -> Answer:
        if not guard.valid_name(name) or not self.policy.visible(name):
            raise self.unknown_object(name)
        expand = self._expand(name.startswith("."))
        resolved = await self._run(lambda es: es.indices.resolve_index(name=name, expand_wildcards=expand,
                                                                      ignore_unavailable=True))
        found = kind_of(resolved.body, name)
        if found is None:
            raise self.unknown_object(name)
        kind, item = found
        mappings = await self._run(lambda es: es.indices.get_mapping(index=name), name)
        fields, truncated = flatten(mappings.body, self.limits.max_rows)
        data: dict[str, Any] = {"name": name, "kind": kind, "fields": fields, "truncated": truncated}
        if kind == "index":
            data["aliases"] = sorted(a for a in item.get("aliases") or [] if self.policy.visible(a))
        elif kind == "alias":
            data["indices"] = sorted(i for i in item.get("indices") or [] if self.policy.visible(i))
        else:
            data["timestamp_field"] = item.get("timestamp_field")
        return Answer(data, object=name)



def _invalid_options(message: str) -> str:
    """What is wrong with the URL or TLS options, in words that never repeat the URL."""
    if "ca_certs" in message:
        return "ca_certs is not a readable file"
    if "TLS options require" in message:
        return "ca_certs / verify_certs need an https:// URL"
    return "invalid Elasticsearch URL (expected e.g. https://es.internal:9200)"
