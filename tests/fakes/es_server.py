"""An Elasticsearch HTTP fake for tests: the real async client talks to it on loopback (Starlette on uvicorn in a
background thread). It answers the endpoints dbmcp may call from in-memory indices, with Elasticsearch's shapes,
headers and errors, and records every request (method, raw path, query, headers, body), so tests can assert that
nothing else was called, no index outside the allowlist was named and no script left dbmcp."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import threading
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, unquote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dbmcp.demo.pg import free_port
from tests.fakes.es_query import aggregate, esql, matches, select_source, sort_key

HEADERS = {"X-Elastic-Product": "Elasticsearch"}
# method, path pattern: the endpoints dbmcp may call, and nothing else
ALLOWED = [("HEAD", r"/"), ("GET", r"/_resolve/index/[^/]+"),
           ("POST", r"/[^/_][^/]*/_count"), ("GET", r"/[^/_][^/]*/_mapping"), ("POST", r"/[^/_][^/]*/_search"),
           ("POST", r"/_query")]


@dataclass
class Seen:
    method: str
    path: str  # raw, still percent-encoded
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def allowed(self) -> bool:
        return any(self.method == m and re.fullmatch(p, self.path) for m, p in ALLOWED)

    @property
    def target(self) -> list[str]:
        """The index names in the path (decoded)."""
        parts = self.path.split("/")
        if self.path.startswith("/_resolve/index/"):
            return unquote(parts[3]).split(",")
        return unquote(parts[1]).split(",") if len(parts) > 2 and not parts[1].startswith("_") else []


@dataclass
class FakeElasticsearch:
    indices: dict[str, list[dict]] = field(default_factory=dict)  # index -> documents (each with an "_id")
    mappings: dict[str, dict] = field(default_factory=dict)  # index -> mapping ({"properties": ...})
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias -> indices
    data_streams: dict[str, list[str]] = field(default_factory=dict)  # stream -> backing indices
    hidden: set[str] = field(default_factory=set)  # index.hidden indices (names starting with '.' are too)
    api_key: str | None = None  # when set, every request needs `Authorization: ApiKey <api_key>`
    fail: tuple[int, dict] | None = None  # answer every search and ES|QL request with this error
    hang: bool = False  # never answer searches (for timeouts)
    port: int = 0  # 0: a free one
    requests: list[Seen] = field(default_factory=list)

    def start(self) -> FakeElasticsearch:
        routes = [Route("/", self.info, methods=["GET", "HEAD"]),
                  Route("/_resolve/index/{expr:path}", self.resolve, methods=["GET"]),
                  Route("/_query", self.esql, methods=["POST"]),
                  Route("/{index}/_search", self.search, methods=["GET", "POST"]),
                  Route("/{index}/_count", self.count, methods=["GET", "POST"]),
                  Route("/{index}/_mapping", self.mapping, methods=["GET"]),
                  Route("/{rest:path}", self.other, methods=["GET", "POST", "PUT", "DELETE", "HEAD"])]
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._release = threading.Event()
        self.server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=self.port,
                                                    log_config=None, access_log=False, lifespan="off"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.should_exit = True

    def searches(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/_search") or r.path == "/_query"]

    # ---- plumbing -----------------------------------------------------------------------------------
    async def _seen(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = request.scope.get("raw_path", b"").decode() or request.url.path
        self.requests.append(Seen(request.method, path.split("?")[0], dict(parse_qsl(request.url.query)),
                                  dict(request.headers), body))
        return body

    def _denied(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"ApiKey {self.api_key}":
            return None
        return _error(401, "security_exception", "missing authentication credentials for REST request")

    def _is_hidden(self, name: str) -> bool:
        return name.startswith(".") or name in self.hidden

    def _names(self) -> dict[str, str]:
        return {**{n: "indices" for n in self.indices}, **{n: "aliases" for n in self.aliases},
                **{n: "data_streams" for n in self.data_streams}}

    def _concrete(self, name: str) -> list[str]:
        if name in self.aliases:
            return [c for a in self.aliases[name] for c in self._concrete(a)]
        return self.data_streams.get(name) or ([name] if name in self.indices else [])

    def expand(self, expression: str, wildcards: str = "open", ignore_unavailable: bool = False) -> list[str]:
        """Elasticsearch's expression resolution: comma lists, `*`, `-` exclusions, `_all`, date math."""
        out: list[str] = []
        hidden = "hidden" in wildcards or "all" in wildcards
        for part in expression.split(","):
            if part.startswith("-") and out:
                out = [n for n in out if not fnmatchcase(n, part[1:])]
                continue
            part = _date_math(part)
            if part == "_all" or "*" in part:
                pattern = "*" if part == "_all" else part
                out += [n for n in self._names() if fnmatchcase(n, pattern) and n not in out and (
                    hidden or not self._is_hidden(n) or (pattern.startswith(".") and n.startswith(".")))]
            elif part in self._names():
                out += [part] if part not in out else []
            elif not ignore_unavailable:
                raise LookupError(part)
        return out

    # ---- endpoints ----------------------------------------------------------------------------------
    async def info(self, request: Request) -> Response:
        await self._seen(request)
        denied = self._denied(request)
        if denied is not None or request.method == "HEAD":
            return denied or Response(status_code=200, headers=HEADERS)
        return JSONResponse({"name": "fake", "version": {"number": "8.15.0"}}, headers=HEADERS)

    async def resolve(self, request: Request) -> Response:
        await self._seen(request)
        q = request.query_params
        try:
            names = self.expand(request.path_params["expr"], q.get("expand_wildcards", "open"),
                                q.get("ignore_unavailable") == "true")
        except LookupError as e:
            return _error(404, "index_not_found_exception", f"no such index [{e}]", index=str(e))
        out: dict[str, list[dict]] = {"indices": [], "aliases": [], "data_streams": []}
        for name in names:
            kind = self._names()[name]
            entry: dict[str, Any] = {"name": name}
            if kind == "indices":
                entry |= {"aliases": [a for a, idx in self.aliases.items() if name in idx], "attributes": ["open"]}
            elif kind == "aliases":
                entry["indices"] = self.aliases[name]
            else:
                entry |= {"backing_indices": self.data_streams[name], "timestamp_field": "@timestamp"}
            out[kind].append(entry)
        return JSONResponse(out, headers=HEADERS)

    def concrete(self, expression: str) -> list[str]:
        """The concrete indices an expression reaches, each once (as Elasticsearch searches them)."""
        return list(dict.fromkeys(c for name in self.expand(expression) for c in self._concrete(name)))

    def _documents(self, index: str) -> list[tuple[str, dict]]:
        return [(c, d) for c in self.concrete(index) for d in self.indices[c]]

    async def search(self, request: Request) -> Response:
        body = await self._seen(request) or {}
        if (denied := self._denied(request)) or (failed := self._failed()):
            return denied or failed
        if self.hang:
            await asyncio.to_thread(self._release.wait, 30)
        try:
            docs = [(i, d) for i, d in self._documents(request.path_params["index"]) if matches(d, body.get("query"))]
        except LookupError as e:
            return _error(404, "index_not_found_exception", f"no such index [{e}]", index=str(e))
        except ValueError as e:
            return _error(400, "parsing_exception", str(e))
        sort = body.get("sort") or []
        fields = [next(iter(s)) if isinstance(s, dict) else s for s in (sort if isinstance(sort, list) else [sort])]
        docs.sort(key=lambda x: tuple(sort_key(x[1].get(f)) for f in fields))
        if body.get("search_after") is not None:
            after = tuple(sort_key(v) for v in body["search_after"])
            docs = [x for x in docs if tuple(sort_key(x[1].get(f)) for f in fields) > after]
        start, size = body.get("from", 0), body.get("size", 10)
        hits = [{"_index": i, "_id": str(d.get("_id")), "_score": 1.0,
                 "_source": select_source({k: v for k, v in d.items() if k != "_id"}, body.get("_source")),
                 **({"sort": [d.get(f) for f in fields]} if fields else {})} for i, d in docs[start:start + size]]
        track = body.get("track_total_hits", 10_000)
        answer: dict[str, Any] = {"took": 1, "timed_out": False, "hits": {"hits": hits}}
        if track is not False:
            limit = len(docs) if track is True else track
            answer["hits"]["total"] = {"value": min(len(docs), limit), "relation": "gte" if len(docs) > limit else "eq"}
        if body.get("aggs") or body.get("aggregations"):
            try:
                answer["aggregations"] = aggregate(body.get("aggs") or body["aggregations"], [d for _, d in docs])
            except ValueError as e:
                return _error(400, "parsing_exception", str(e))
        return JSONResponse(answer, headers=HEADERS)

    def _failed(self) -> Response | None:
        return JSONResponse(self.fail[1], status_code=self.fail[0], headers=HEADERS) if self.fail else None

    async def count(self, request: Request) -> Response:
        await self._seen(request)
        return JSONResponse({"count": len(self._documents(request.path_params["index"]))}, headers=HEADERS)

    async def mapping(self, request: Request) -> Response:
        await self._seen(request)
        try:
            concrete = self.concrete(request.path_params["index"])
        except LookupError as e:
            return _error(404, "index_not_found_exception", f"no such index [{e}]", index=str(e))
        return JSONResponse({i: {"mappings": self.mappings.get(i, {})} for i in concrete}, headers=HEADERS)

    async def esql(self, request: Request) -> Response:
        body = await self._seen(request)
        if (denied := self._denied(request)) or (failed := self._failed()):
            return denied or failed
        try:
            return JSONResponse(esql(body["query"], self), headers=HEADERS)
        except LookupError as e:
            return _error(400, "verification_exception", f"Unknown index [{e}]")
        except ValueError as e:
            return _error(400, "parsing_exception", str(e))

    async def other(self, request: Request) -> Response:
        await self._seen(request)
        return _error(400, "illegal_argument_exception", "not an endpoint dbmcp may call")


def _error(status: int, kind: str, reason: str, **extra: Any) -> Response:
    error = {"root_cause": [{"type": kind, "reason": reason, **extra}], "type": kind, "reason": reason, **extra}
    return JSONResponse({"error": error, "status": status}, status_code=status, headers=HEADERS)


def _date_math(part: str) -> str:
    """`<logs-{now/d}>` -> `logs-2026.11.25` (UTC), the default format only; other parts unchanged."""
    if not (part.startswith("<") and part.endswith(">")):
        return part
    today = datetime.datetime.now(datetime.UTC).strftime("%Y.%m.%d")
    return re.sub(r"\{now/d\}", today, part[1:-1])
