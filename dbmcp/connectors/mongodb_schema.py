"""A collection's shape inferred from sampled documents: field paths, BSON types and how often each appears."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from typing import Any

import bson

MAX_DEPTH = 20
MAX_FIELDS = 500

_TYPE_NAMES: list[tuple[type, str]] = [
    (float, "double"), (str, "string"), (datetime.datetime, "date"),
    (bson.ObjectId, "objectId"), (bson.decimal128.Decimal128, "decimal"), (bson.binary.Binary, "binData"),
    (bytes, "binData"), (bson.timestamp.Timestamp, "timestamp"), (bson.regex.Regex, "regex"),
    (bson.code.Code, "javascript"), (bson.min_key.MinKey, "minKey"), (bson.max_key.MaxKey, "maxKey"),
    (dict, "object"), (list, "array"), (type(None), "null"),
]


def bson_type(value: Any) -> str:
    """The BSON type name (as MongoDB's $type reports it) of a decoded value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, bson.int64.Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    for cls, name in _TYPE_NAMES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def infer(documents: list[dict]) -> list[dict[str, Any]]:
    """[{path, types: {bsonType: count}, present: fraction of documents}] sorted by path."""
    types: dict[str, Counter] = defaultdict(Counter)
    present: Counter = Counter()
    for doc in documents:
        seen: set[str] = set()
        _visit(doc, "", types, seen, 0)
        present.update(seen)
    total = max(len(documents), 1)
    fields = [
        {"path": path, "types": dict(types[path].most_common()), "present": round(present[path] / total, 4)}
        for path in sorted(types)[:MAX_FIELDS]
    ]
    return fields


def _visit(value: Any, path: str, types: dict[str, Counter], seen: set[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            types[child][bson_type(item)] += 1
            seen.add(child)
            _visit(item, child, types, seen, depth + 1)
    elif isinstance(value, list):
        element = f"{path}[]"
        for item in value:
            types[element][bson_type(item)] += 1
            seen.add(element)
            _visit(item, element, types, seen, depth + 1)
