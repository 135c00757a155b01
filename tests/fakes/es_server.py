"""An Elasticsearch HTTP fake for tests: the real async client talks to it on loopback. It answers the few
endpoints dbmcp may call from in-memory indices and records every request (method, path, body), so tests can
assert that nothing else was called, no hidden index was named and no script left dbmcp."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dbmcp.demo.pg import free_port

HEADERS = {"X-Elastic-Product": "Elasticsearch"}


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class FakeElasticsearch:
    indices: dict[str, list[dict]] = field(default_factory=dict)  # index -> documents
    mappings: dict[str, dict] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias -> indices
    data_streams: dict[str, list[str]] = field(default_factory=dict)  # stream -> backing indices
    requests: list[Seen] = field(default_factory=list)

    def start(self) -> FakeElasticsearch:
        routes = [Route("/", self.info, methods=["GET", "HEAD"]),
                  Route("/_resolve/index/{expr}", self.resolve, methods=["GET"]),
                  Route("/_query", self.esql, methods=["POST"]),
                  Route("/{index}/_search", self.search, methods=["GET", "POST"]),
                  Route("/{index}/_count", self.count, methods=["GET", "POST"]),
                  Route("/{index}/_mapping", self.mapping, methods=["GET"]),
                  Route("/{rest:path}", self.other, methods=["GET", "POST", "PUT", "DELETE", "HEAD"])]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), port=self.port, log_config=None,
                                                    access_log=False, lifespan="off"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # ---- endpoints ----------------------------------------------------------------------------------
    async def _seen(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.requests.append(Seen(request.method, request.url.path, body))
        return body

    async def info(self, request: Request) -> Response:
        await self._seen(request)
        return JSONResponse({"name": "fake", "cluster_name": "fake", "version": {"number": "8.15.0"},
                             "tagline": "You Know, for Search"}, headers=HEADERS)

    def _names(self) -> dict[str, str]:
        return {**{n: "indices" for n in self.indices}, **{n: "aliases" for n in self.aliases},
                **{n: "data_streams" for n in self.data_streams}}

    def _concrete(self, name: str) -> list[str]:
        return self.aliases.get(name) or self.data_streams.get(name) or ([name] if name in self.indices else [])

    async def resolve(self, request: Request) -> Response:
        await self._seen(request)
        matched: dict[str, list[dict]] = {"indices": [], "aliases": [], "data_streams": []}
        for part in request.path_params["expr"].split(","):
            part = "*" if part == "_all" else part
            for name, kind in self._names().items():
                if fnmatchcase(name, part) and (not name.startswith(".") or part.startswith(".")):
                    entry = {"name": name, "attributes": ["open"]}
                    if kind == "indices":
                        entry["aliases"] = [a for a, idx in self.aliases.items() if name in idx]
                    if entry not in matched[kind]:
                        matched[kind].append(entry)
        return JSONResponse(matched, headers=HEADERS)

    def _documents(self, index: str) -> list[tuple[str, dict]]:
        docs = []
        for name in index.split(","):
            for concrete in self._concrete(name):
                docs += [(concrete, d) for d in self.indices[concrete]]
        return docs

    async def search(self, request: Request) -> Response:
        body = await self._seen(request) or {}
        index = request.path_params["index"]
        if any(not self._concrete(n) for n in index.split(",")):
            return JSONResponse({"error": {"type": "index_not_found_exception", "reason": f"no such index [{index}]"},
                                 "status": 404}, status_code=404, headers=HEADERS)
        docs = [(i, d) for i, d in self._documents(index) if _matches(d, body.get("query"))]
        if body.get("sort"):
            key = next(iter(body["sort"][0])) if isinstance(body["sort"], list) else next(iter(body["sort"]))
            docs.sort(key=lambda x: x[1].get(key))
        start, size = body.get("from", 0), body.get("size", 10)
        hits = [{"_index": i, "_id": str(d.get("id")), "_score": 1.0, "_source": d} for i, d in docs[start:start + size]]
        answer = {"took": 1, "timed_out": False, "hits": {"total": {"value": len(docs), "relation": "eq"}, "hits": hits}}
        if body.get("aggs") or body.get("aggregations"):
            answer["aggregations"] = _aggregations(body.get("aggs") or body["aggregations"], [d for _, d in docs])
        return JSONResponse(answer, headers=HEADERS)

    async def count(self, request: Request) -> Response:
        await self._seen(request)
        return JSONResponse({"count": len(self._documents(request.path_params["index"]))}, headers=HEADERS)

    async def mapping(self, request: Request) -> Response:
        await self._seen(request)
        concrete = self._concrete(request.path_params["index"])
        if not concrete:
            return JSONResponse({"error": {"type": "index_not_found_exception", "reason": "no such index"},
                                 "status": 404}, status_code=404, headers=HEADERS)
        return JSONResponse({i: {"mappings": self.mappings.get(i, {})} for i in concrete}, headers=HEADERS)

    async def esql(self, request: Request) -> Response:
        body = await self._seen(request)
        query = body["query"]
        source = query.split("|")[0].strip()[len("FROM"):].strip()
        limit = int(query.rsplit("LIMIT", 1)[1].strip()) if "LIMIT" in query else 1000
        docs = [d for _, d in self._documents(",".join(s.strip() for s in source.split(",")))][:limit]
        keys = sorted({k for d in docs for k in d})
        return JSONResponse({"columns": [{"name": k, "type": "keyword"} for k in keys],
                             "values": [[d.get(k) for k in keys] for d in docs]}, headers=HEADERS)

    async def other(self, request: Request) -> Response:
        await self._seen(request)
        return JSONResponse({"error": "not a path dbmcp may call"}, status_code=400, headers=HEADERS)


def _matches(doc: dict, query: Any) -> bool:
    if not query or "match_all" in query:
        return True
    for kind in ("term", "match"):
        if kind in query:
            (fieldname, value), = query[kind].items()
            value = value.get("value", value.get("query")) if isinstance(value, dict) else value
            return doc.get(fieldname) == value
    return True


def _aggregations(aggs: dict, docs: list[dict]) -> dict:
    out = {}
    for name, spec in aggs.items():
        if "terms" in spec:
            counts: dict[Any, int] = {}
            for d in docs:
                counts[d.get(spec["terms"]["field"])] = counts.get(d.get(spec["terms"]["field"]), 0) + 1
            out[name] = {"buckets": [{"key": k, "doc_count": v} for k, v in sorted(counts.items(), key=str)]}
    return out
