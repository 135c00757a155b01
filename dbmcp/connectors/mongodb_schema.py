"""A collection's shape inferred from sampled documents: field paths, BSON types and how often each appears.

Paths use dots for nested documents (`address.city`) and `[]` for array elements (`tags[]`, `items[].sku`).
Documents are fed one at a time, so a large sample never sits in memory.
"""

from __future__ import annotations

import datetime
import uuid
from collections import Counter, defaultdict
from typing import Any

import bson

MAX_DEPTH = 20  # deeper paths are not followed (their parent still counts as an object or array)
MAX_FIELDS = 500  # paths reported at most; `fields_truncated` says when more existed

_TYPE_NAMES: list[tuple[type, str]] = [
    (float, "double"), (str, "string"), (datetime.datetime, "date"),
    (bson.ObjectId, "objectId"), (bson.decimal128.Decimal128, "decimal"), (bson.binary.Binary, "binData"),
    (bytes, "binData"), (uuid.UUID, "binData"), (bson.timestamp.Timestamp, "timestamp"), (bson.regex.Regex, "regex"),
    (bson.code.Code, "javascript"), (bson.dbref.DBRef, "object"), (bson.min_key.MinKey, "minKey"),
    (bson.max_key.MaxKey, "maxKey"), (dict, "object"), (list, "array"), (type(None), "null"),
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


class Shape:
    """Field statistics over the documents added so far."""

    def __init__(self) -> None:
        self.documents = 0
        self.types: dict[str, Counter] = defaultdict(Counter)
        self.present: Counter = Counter()

    def add(self, document: dict) -> None:
        seen: set[str] = set()
        self._visit(document, "", seen, 0)
        self.present.update(seen)
        self.documents += 1

    def _visit(self, value: Any, path: str, seen: set[str], depth: int) -> None:
        if depth >= MAX_DEPTH:
            return
        if isinstance(value, dict):
            children = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
        elif isinstance(value, list):
            children = ((f"{path}[]", item) for item in value)
        else:
            return
        for child, item in children:
            self.types[child][bson_type(item)] += 1
            seen.add(child)
            self._visit(item, child, seen, depth + 1)

    def fields(self) -> tuple[list[dict[str, Any]], bool]:
        """([{path, types: {bsonType: count}, present: fraction of documents}] sorted by path, truncated)."""
        total = max(self.documents, 1)
        paths = sorted(self.types)
        fields = [
            {"path": p, "types": dict(self.types[p].most_common()), "present": round(self.present[p] / total, 4)}
            for p in paths[:MAX_FIELDS]
        ]
        return fields, len(paths) > MAX_FIELDS
