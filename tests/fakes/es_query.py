"""The little query engine behind the Elasticsearch fake: a subset of the query DSL, aggregations and ES|QL, enough
for the tests to see real answers. Anything outside the subset is an error, as a real cluster would answer an
unknown query."""

from __future__ import annotations

import operator
import re
from typing import Any


def sort_key(value: Any) -> tuple:
    return (value is None, str(type(value)), value if value is not None else 0)


def matches(doc: dict, query: Any) -> bool:
    if not query:
        return True
    (kind, spec), = query.items()
    if kind == "match_all":
        return True
    if kind in ("term", "match"):
        (name, value), = spec.items()
        value = value.get("value", value.get("query")) if isinstance(value, dict) else value
        return doc.get(name) == value or (kind == "match" and isinstance(doc.get(name), str)
                                          and str(value) in doc[name])
    if kind == "terms":
        (name, values), = spec.items()
        return doc.get(name) in values
    if kind == "range":
        (name, bounds), = spec.items()
        v = doc.get(name)
        checks = {"gt": lambda b: v > b, "gte": lambda b: v >= b, "lt": lambda b: v < b, "lte": lambda b: v <= b}
        return v is not None and all(checks[k](b) for k, b in bounds.items() if k in checks)
    if kind == "exists":
        return doc.get(spec["field"]) is not None
    if kind == "ids":
        return str(doc.get("_id")) in spec["values"]
    if kind == "bool":
        must = [*spec.get("must", []), *spec.get("filter", [])]
        should = spec.get("should", [])
        return (all(matches(doc, q) for q in must) and not any(matches(doc, q) for q in spec.get("must_not", []))
                and (not should or any(matches(doc, q) for q in should)))
    raise ValueError(f"unknown query [{kind}]")


def select_source(doc: dict, source: Any) -> dict | None:
    if source is False:
        return None
    if isinstance(source, list):
        return {k: v for k, v in doc.items() if k in source}
    return doc


def aggregate(aggs: dict, docs: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        (kind, params), = ((k, v) for k, v in spec.items() if k != "aggs")
        values = [d.get(params.get("field")) for d in docs if d.get(params.get("field")) is not None]
        if kind == "terms":
            counts: dict[Any, int] = {}
            for v in values:
                counts[v] = counts.get(v, 0) + 1
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:params.get("size", 10)]
            out[name] = {"doc_count_error_upper_bound": 0, "sum_other_doc_count": len(values) - sum(c for _, c in ordered),
                         "buckets": [{"key": k, "doc_count": c} for k, c in ordered]}
        elif kind in ("min", "max", "sum", "avg", "value_count"):
            result = {"min": min, "max": max, "sum": sum, "value_count": len,
                      "avg": lambda vs: sum(vs) / len(vs)}[kind](values) if values else None
            out[name] = {"value": result}
        else:
            raise ValueError(f"Unknown aggregation type [{kind}]")
    return out


_PIPE = re.compile(r"\|(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)")
_COMPARE = re.compile(r"(\w+)\s*(==|!=|>=|<=|>|<)\s*(\"[^\"]*\"|-?\d+(?:\.\d+)?)")


def esql(query: str, fake: Any) -> dict:
    """FROM/ROW/SHOW INFO, then WHERE (one comparison), KEEP, SORT, LIMIT, STATS COUNT(*) [BY f], LOOKUP JOIN."""
    commands = [c.strip() for c in _PIPE.split(query)]
    rows = _source(commands[0], fake)
    limit = 1000  # ES|QL's default
    for command in commands[1:]:
        word, _, rest = command.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "WHERE" and (m := _COMPARE.fullmatch(rest)):
            name, op, literal = m.groups()
            value = literal[1:-1] if literal.startswith('"') else float(literal)
            compare = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt, ">=": operator.ge,
                       "<=": operator.le}[op]
            rows = [r for r in rows if r.get(name) is not None and compare(r[name], value)]
        elif word == "KEEP":
            keep = [k.strip() for k in rest.split(",")]
            rows = [{k: r.get(k) for k in keep} for r in rows]
        elif word == "SORT":
            name, _, order = rest.partition(" ")
            rows.sort(key=lambda r: sort_key(r.get(name)), reverse=order.strip().upper() == "DESC")
        elif word == "LIMIT":
            limit = min(limit, int(rest))
            rows = rows[:limit]
        elif word == "STATS" and (m := re.fullmatch(r"(\w+)\s*=\s*COUNT\(\*\)(?:\s+BY\s+(\w+))?", rest, re.I)):
            label, by = m.groups()
            groups: dict[Any, int] = {}
            for r in rows:
                groups[r.get(by) if by else None] = groups.get(r.get(by) if by else None, 0) + 1
            rows = [{label: c, **({by: k} if by else {})} for k, c in groups.items()] or [{label: 0}]
        elif word == "LOOKUP" and (m := re.fullmatch(r"JOIN\s+(\S+)\s+ON\s+(\w+)", rest, re.I)):
            lookup = {d.get(m.group(2)): d for c in fake._concrete(m.group(1)) for d in fake.indices[c]}
            rows = [{**r, **{k: v for k, v in lookup.get(r.get(m.group(2)), {}).items() if k != "_id"}} for r in rows]
        else:
            raise ValueError(f"line 1:1: unsupported by the fake: {command[:40]}")
    rows = rows[:limit]
    names = list(dict.fromkeys(k for r in rows for k in r)) or ["_none"]
    return {"columns": [{"name": n, "type": _type(next((r.get(n) for r in rows if r.get(n) is not None), None))}
                        for n in names],
            "values": [[r.get(n) for n in names] for r in rows]}


def _source(command: str, fake: Any) -> list[dict]:
    word, _, rest = command.partition(" ")
    if word.upper() in ("FROM", "TS"):
        target, _, metadata = rest.strip().partition(" ")
        rows = [{"_index": c, **d} if "_index" in metadata else dict(d)
                for c in fake.concrete(target) for d in fake.indices[c]]
        return [{k: v for k, v in r.items() if k != "_id"} for r in rows]
    if word.upper() == "ROW":
        return [{k.strip(): _literal(v.strip()) for k, v in (p.split("=", 1) for p in rest.split(","))}]
    if command.upper() == "SHOW INFO":
        return [{"version": "8.15.0"}]
    raise ValueError(f"unsupported source command: {command[:40]}")


def _literal(text: str) -> Any:
    return text[1:-1] if text.startswith('"') else (float(text) if "." in text else int(text))


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {int: "long", float: "double"}.get(type(value), "keyword")
