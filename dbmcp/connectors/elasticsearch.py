"""Elasticsearch through the official async client: indices, mappings, bounded search and ES|QL.

Only the resolve, count, mapping, search and ES|QL endpoints are ever called, and only with targets the guard
(guards/es.py) resolved against the allowlist: wildcards are narrowed to the allowed names they match before the
request is built, so the request itself names only allowed indices.
"""

from __future__ import annotations

import logging
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, AsyncElasticsearch, AuthenticationException, NotFoundError
from pydantic import Field

from dbmcp.allowlist import matches
from dbmcp.config import ElasticsearchDatabase, Limits
from dbmcp.connectors.base import Answer, Args, Connector, ToolSpec
from dbmcp.errors import ToolError
from dbmcp.guards import es as guard
from dbmcp.results import RowBudget, dumps, dumps_bytes

log = logging.getLogger("dbmcp.elasticsearch")
_COUNTED = 100  # list_objects counts documents of this many objects at most
_MAX_TRACK_TOTAL = 10_000


class SearchArgs(Args):
    index: str = Field(description="Index, alias or data stream; wildcards and comma lists allowed")
    body: dict[str, Any] | None = Field(None, description="query, aggs, sort, _source, size, from, search_after")


class EsqlArgs(Args):
    query: str = Field(description="An ES|QL query starting with FROM")


class ElasticsearchConnector(Connector):
    engine = "elasticsearch"
    tools = (
        ToolSpec("es_search", "Search an Elasticsearch index (read-only, capped: `size` at most max_rows, `truncated` "
                 "says when hits were left out; scripts are refused).", SearchArgs, "read"),
        ToolSpec("es_esql", "Run a read-only ES|QL query (FROM ... | ...); answered as columns and rows, capped.",
                 EsqlArgs, "read"),
    )
    config: ElasticsearchDatabase

    def __init__(self, name: str, config: ElasticsearchDatabase, limits: Limits):
        super().__init__(name, config, limits)
        self._client: AsyncElasticsearch | None = None

    async def start(self) -> None:
        c = self.config
        auth: dict[str, Any] = {}
        if c.api_key:
            auth["api_key"] = c.api_key
        elif c.username:
            auth["basic_auth"] = (c.username, c.password or "")
        if not c.verify_certs:
            log.warning("database %s: TLS certificate verification is off (verify_certs: false); prefer ca_certs",
                        self.name)
        try:
            self._client = AsyncElasticsearch(
                hosts=[c.url], ca_certs=c.ca_certs, verify_certs=c.verify_certs, request_timeout=self.limits.timeout_s,
                max_retries=1, retry_on_timeout=False, **auth,
            )
        except (ValueError, TypeError) as e:
            log.warning("database %s: invalid Elasticsearch URL or options (%s)", self.name, type(e).__name__)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        await self._run(lambda es: es.info())

    async def _run(self, operation: Any) -> Any:
        """Run `operation(client)`; driver errors become one line without the URL or credentials."""
        if self._client is None:
            raise ToolError(f"database {self.name!r} has an invalid Elasticsearch URL or options")
        try:
            return await operation(self._client)
        except NotFoundError as e:
            raise ToolError(f"database {self.name!r}: {_reason(e)}") from None
        except AuthenticationException:
            raise ToolError(f"database {self.name!r} refused dbmcp's credentials") from None
        except ApiError as e:
            raise ToolError(f"database {self.name!r}: {_reason(e)}") from None
        except ConnectionTimeout:
            raise ToolError(f"query timed out after {self.limits.timeout_s:g} s (limits.timeout_s)") from None
        except (TransportConnectionError, TransportError) as e:
            log.warning("database %s unreachable: %s", self.name, type(e).__name__)
            raise ToolError(f"database {self.name!r} is unreachable") from None

    async def _resolve(self, pattern: str) -> list[str]:
        answer = await self._run(lambda es: es.indices.resolve_index(name=pattern))
        body = answer.body
        return sorted({i["name"] for kind in ("indices", "aliases", "data_streams") for i in body.get(kind, [])})

    async def _narrow(self, expression: str) -> list[str]:
        targets = guard.parse_expression(expression)
        resolved = {t.name: await self._resolve(t.name) for t in targets if t.pattern and not t.exclude}
        return guard.narrow(targets, self.allowlist.allows, lambda pattern: resolved.get(pattern, []))

    # ---- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, args: Args) -> Answer:
        if isinstance(args, SearchArgs):
            return await self.search(args.index, args.body)
        if isinstance(args, EsqlArgs):
            return await self.esql(args.query)
        raise ToolError(f"unknown tool {tool!r}")

    async def search(self, index: str, body: dict[str, Any] | None) -> Answer:
        request = dict(guard.check_body(body, self.config.allow_scripts))
        size, capped = self._size(request.get("size"))
        if not 0 <= int(request.get("from", 0) or 0) <= guard.MAX_FROM:
            raise ToolError(f"invalid arguments: from must be between 0 and {guard.MAX_FROM} (use search_after)")
        names = await self._narrow(index)
        request["size"] = size + 1 if capped else size
        request["track_total_hits"] = _track_total(request.get("track_total_hits"))
        request.setdefault("timeout", f"{self.limits.timeout_s:g}s")
        if not names:  # a pattern that matches nothing allowed: what Elasticsearch answers for no match
            response: dict = {"hits": {"hits": [], "total": {"value": 0, "relation": "eq"}}}
        else:
            response = (await self._run(lambda es: es.search(index=",".join(names), body=request))).body
        return self._search_answer(response, size, capped, ",".join(names), dumps(body or {}))

    def _size(self, size: Any) -> tuple[int, bool]:
        if size is None or (isinstance(size, int) and size > self.limits.max_rows):
            return self.limits.max_rows, True
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ToolError("invalid arguments: size must be an integer of at least 1")
        return size, False

    def _search_answer(self, response: dict, size: int, capped: bool, index: str, statement: str) -> Answer:
        aggregations = response.get("aggregations")
        budget = RowBudget(size, self.limits.max_bytes - (len(dumps_bytes(aggregations)) if aggregations else 0))
        if budget.max_bytes <= 0:
            raise ToolError("the aggregations alone exceed max_bytes; narrow them (fewer buckets, smaller size)")
        for hit in response.get("hits", {}).get("hits", []):
            if not budget.add({k: hit.get(k) for k in ("_index", "_id", "_score", "_source")}):
                break
        n, truncated = len(budget.rows), budget.truncated
        total = response.get("hits", {}).get("total") or {"value": 0, "relation": "eq"}
        data: dict[str, Any] = {"hits": budget.rows, "total": total, "row_count": n, "truncated": truncated}
        if aggregations is not None:
            data["aggregations"] = aggregations
        text = dumps(data) if aggregations is not None else (
            f'{{"hits":{budget.json_rows()},"total":{dumps(total)},"row_count":{n},'
            f'"truncated":{"true" if truncated else "false"}}}')
        return Answer(data, object=index, statement=statement, row_count=n, truncated=truncated, text=text)

    async def esql(self, query: str) -> Answer:
        expression, targets, lookups = guard.esql_sources(query)
        for name in lookups:
            if ":" in name or not self.allowlist.allows(name):
                raise guard.not_found(name)
        if targets:
            resolved = {t.name: await self._resolve(t.name) for t in targets if t.pattern and not t.exclude}
            names = guard.narrow(targets, self.allowlist.allows, lambda p: resolved.get(p, []))
            if not names:
                raise guard.not_found(expression)
            query = guard.replace_sources(query, names)
        bounded = f"{query.rstrip().rstrip(';')}\n| LIMIT {self.limits.max_rows + 1}"
        response = (await self._run(lambda es: es.esql.query(query=bounded, format="json"))).body
        columns = [{"name": c["name"], "type": c["type"]} for c in response.get("columns", [])]
        budget = RowBudget(self.limits.max_rows, self.limits.max_bytes)
        for row in response.get("values", []):
            if not budget.add(row):
                break
        n, truncated = len(budget.rows), budget.truncated
        text = (f'{{"columns":{dumps(columns)},"rows":{budget.json_rows()},"row_count":{n},'
                f'"truncated":{"true" if truncated else "false"}}}')
        return Answer({"columns": columns, "rows": budget.rows, "row_count": n, "truncated": truncated},
                      statement=query, row_count=n, truncated=truncated, text=text)

    async def list_objects(self, pattern: str | None) -> Answer:
        body = (await self._run(lambda es: es.indices.resolve_index(name="*"))).body
        found = [(i["name"], kind) for key, kind in (("indices", "index"), ("aliases", "alias"),
                                                     ("data_streams", "data stream"))
                 for i in body.get(key, []) if "hidden" not in i.get("attributes", [])]
        objects, truncated = [], False
        for name, kind in sorted(found):
            if name.startswith(".") or not self.allowlist.allows(name) or not matches(name, pattern):
                continue
            if len(objects) >= self.limits.max_rows:
                truncated = True
                break
            objects.append({"name": name, "kind": kind, "rows": None})
        for obj in objects[:_COUNTED]:
            obj["rows"] = (await self._run(lambda es, n=obj["name"]: es.count(index=n))).body.get("count")
        return Answer({"objects": objects, "truncated": truncated}, row_count=len(objects), truncated=truncated)

    async def describe_object(self, name: str) -> Answer:
        try:
            targets = guard.parse_expression(name)
        except ToolError:
            raise self._unknown(name) from None
        if len(targets) != 1 or targets[0].pattern or not self.allowlist.allows(name):
            raise self._unknown(name)
        try:
            mappings = (await self._run(lambda es: es.indices.get_mapping(index=name))).body
        except ToolError as e:
            if "no such index" in e.message or "index_not_found" in e.message:
                raise self._unknown(name) from None
            raise
        resolved = (await self._run(lambda es: es.indices.resolve_index(name=name))).body
        aliases = sorted({a for i in resolved.get("indices", []) for a in i.get("aliases", [])})
        fields: dict[str, dict] = {}
        for index_mapping in mappings.values():
            _flatten(index_mapping.get("mappings", {}), fields)
        return Answer({"name": name, "indices": sorted(mappings), "aliases": aliases,
                       "fields": [fields[p] for p in sorted(fields)]}, object=name)

    def _unknown(self, name: str) -> ToolError:
        return ToolError(f"unknown object {name!r} in database {self.name!r}; see list_objects")


def _flatten(mapping: dict, out: dict[str, dict], prefix: str = "") -> None:
    for name, spec in (mapping.get("properties") or {}).items():
        path = f"{prefix}{name}"
        kind = spec.get("type", "object")
        out.setdefault(path, {"path": path, "type": kind, **({"nested": True} if kind == "nested" else {})})
        for sub, sub_spec in (spec.get("fields") or {}).items():
            out.setdefault(f"{path}.{sub}", {"path": f"{path}.{sub}", "type": sub_spec.get("type"),
                                             "multi_field": True})
        if "properties" in spec:
            _flatten(spec, out, f"{path}.")
    for name, spec in (mapping.get("runtime") or {}).items():
        out.setdefault(f"{prefix}{name}", {"path": f"{prefix}{name}", "type": spec.get("type"), "runtime": True})


def _track_total(value: Any) -> int | bool:
    if value is False:
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, min(value, _MAX_TRACK_TOTAL))
    return _MAX_TRACK_TOTAL


def _reason(e: ApiError) -> str:
    try:
        error = e.body.get("error", {}) if isinstance(e.body, dict) else {}
        reason = error.get("reason") if isinstance(error, dict) else str(error)
    except AttributeError:
        reason = None
    return " ".join(str(reason or e.message or type(e).__name__).split())[:300]
