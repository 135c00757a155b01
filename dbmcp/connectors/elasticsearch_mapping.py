"""Elasticsearch answers: search windows and caps, hits, listings from the resolve API, flattened mappings.

Pure functions over the cluster's JSON, so the connector keeps only the requests.
"""

from __future__ import annotations

from typing import Any

from dbmcp.allowlist import matches
from dbmcp.errors import ToolError
from dbmcp.results import RowBudget, dumps, dumps_bytes, table

MAX_WINDOW = 10_000  # Elasticsearch's index.max_result_window: `from + size` beyond it is refused by the cluster
MAX_TRACK_TOTAL = 10_000
HIT_KEYS = ("_index", "_id", "_score", "_source")
HIT_EXTRAS = ("sort", "fields", "highlight", "inner_hits", "matched_queries")  # when the caller asked for them
KINDS = (("indices", "index"), ("aliases", "alias"), ("data_streams", "data stream"))


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError(f"invalid arguments: body.{what} must be an integer")
    return value


def window(body: dict[str, Any], max_rows: int) -> tuple[int, int, bool]:
    """(hits to return at most, hits to ask for, whether max_rows capped the caller's size).

    When max_rows caps, one more hit is asked for, so that `truncated` tells a cap from an exact fit.
    """
    start = _integer(body.get("from", 0), "from")
    if not 0 <= start <= MAX_WINDOW:
        raise ToolError(f"invalid arguments: body.from must be between 0 and {MAX_WINDOW} (use search_after)")
    size = body.get("size")
    if size is None or _integer(size, "size") > max_rows:
        return max_rows, min(max_rows + 1, MAX_WINDOW - start), True
    if size < 1:
        raise ToolError("invalid arguments: body.size must be at least 1 (absent means max_rows)")
    return size, size, False


def track_total(value: Any) -> int | bool:
    """track_total_hits, bounded: exact counting stops at 10,000 unless the caller asked for less."""
    if value is None or value is True:
        return MAX_TRACK_TOTAL
    if value is False:
        return False
    return max(0, min(_integer(value, "track_total_hits"), MAX_TRACK_TOTAL))


def search_answer(response: dict, keep: int, max_bytes: int) -> tuple[dict[str, Any], str]:
    """{hits, total, aggregations?, row_count, truncated} and its JSON text."""
    hits = response.get("hits") or {}
    total = hits.get("total")
    aggregations = response.get("aggregations")
    fixed = dumps_bytes(total) + (dumps_bytes(aggregations) if aggregations is not None else b"")
    room = max_bytes - len(fixed) - 80
    if room < 2:
        raise ToolError(f"the aggregations alone exceed max_bytes ({max_bytes}): ask for fewer buckets")
    budget = RowBudget(keep, room)  # asked for keep + 1 when max_rows capped: the extra hit marks truncation
    for hit in hits.get("hits") or []:
        entry = {k: hit.get(k) for k in HIT_KEYS}
        entry.update({k: hit[k] for k in HIT_EXTRAS if k in hit})
        if not budget.add(entry):
            break
    n, truncated = len(budget.rows), budget.truncated
    data: dict[str, Any] = {"hits": budget.rows, "total": total}
    text = f'{{"hits":{budget.json_rows()},"total":{dumps(total)}'
    if aggregations is not None:
        data["aggregations"] = aggregations
        text += f',"aggregations":{dumps(aggregations)}'
    data.update(row_count=n, truncated=truncated)
    return data, text + f',"row_count":{n},"truncated":{"true" if truncated else "false"}}}'


def esql_answer(response: dict, max_rows: int, max_bytes: int) -> tuple[dict[str, Any], str]:
    columns = [{"name": c.get("name"), "type": c.get("type")} for c in response.get("columns") or []]
    budget = RowBudget(max_rows, max_bytes - len(dumps_bytes(columns)) - 60)
    for row in response.get("values") or []:
        if not budget.add(row):
            break
    return table(columns, budget)


# ---- list_objects ---------------------------------------------------------------------------------
def listing(resolved: dict, visible: Any, pattern: str | None, max_rows: int) -> tuple[list, bool]:
    """Indices, aliases and data streams the caller may see (the connector adds document counts)."""
    found: dict[str, dict[str, Any]] = {}
    for key, kind in KINDS:
        for item in resolved.get(key) or []:
            name = item.get("name")
            if isinstance(name, str) and visible(name) and matches(name, pattern):
                found.setdefault(name, {"name": name, "kind": kind, "rows": None})
    objects = [found[name] for name in sorted(found)]
    return objects[:max_rows], len(objects) > max_rows


# ---- describe_object ------------------------------------------------------------------------------
def kind_of(resolved: dict, name: str) -> tuple[str, dict] | None:
    for key, kind in KINDS:
        for item in resolved.get(key) or []:
            if item.get("name") == name:
                return kind, item
    return None


def flatten(mappings: dict, max_fields: int) -> tuple[list[dict[str, Any]], bool]:
    """Every concrete index's mapping merged into field paths with types; multi-fields, nested, object and runtime
    fields marked. A path typed differently in two backing indices lists both types (`"keyword|text"`)."""
    fields: dict[str, dict[str, Any]] = {}
    for index_mapping in mappings.values():
        mapping = (index_mapping or {}).get("mappings") or {}
        _properties(mapping.get("properties") or {}, "", fields)
        for name, spec in (mapping.get("runtime") or {}).items():
            _add(fields, name, {"type": (spec or {}).get("type", "unknown"), "runtime": True})
    ordered = [fields[p] for p in sorted(fields)]
    return ordered[:max_fields], len(ordered) > max_fields


def _properties(properties: dict, prefix: str, fields: dict[str, dict[str, Any]]) -> None:
    for name, spec in properties.items():
        spec = spec or {}
        path = f"{prefix}{name}"
        kind = spec.get("type", "object")
        extra: dict[str, Any] = {"type": kind}
        if kind == "alias" and "path" in spec:
            extra["alias_of"] = spec["path"]
        _add(fields, path, extra)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            _add(fields, f"{path}.{sub}", {"type": (sub_spec or {}).get("type", "unknown"), "multi_field": True})
        if "properties" in spec:
            _properties(spec["properties"] or {}, f"{path}.", fields)


def _add(fields: dict[str, dict[str, Any]], path: str, entry: dict[str, Any]) -> None:
    seen = fields.get(path)
    if seen is None:
        fields[path] = {"path": path, **entry}
    elif entry["type"] not in seen["type"].split("|"):
        seen["type"] = "|".join(sorted({*seen["type"].split("|"), entry["type"]}))
