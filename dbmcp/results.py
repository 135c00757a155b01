"""Bounded results: JSON-safe values, row and byte caps, and an exact `truncated`.

Values JSON lacks are strings in a documented form (README "Value types"):
numeric/Decimal -> "123.45" exactly as the database prints it; timestamps/dates/times -> ISO 8601;
intervals -> ISO 8601 durations ("P1DT2H"); uuid -> "8-4-4-4-12" hex; bytes -> base64;
NaN/±Infinity floats -> "NaN", "Infinity", "-Infinity"; json/jsonb -> JSON as is; arrays -> lists;
anything else (inet, ranges, geometric types, money) -> its text form.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any

import orjson

_std_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of JSON-safe values (orjson; the standard library for integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _std_dumps(value).encode()


def dumps(value: Any) -> str:
    """Compact JSON (the form counted against max_bytes and sent as the text copy)."""
    return dumps_bytes(value).decode()


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


def _duration(td: datetime.timedelta) -> str:
    sign = "-" if td < datetime.timedelta(0) else ""
    td = abs(td)
    hours, rem = divmod(td.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    secs = f"{seconds}.{td.microseconds:06d}".rstrip("0").rstrip(".") if td.microseconds else str(seconds)
    return f"{sign}P{td.days}DT{hours}H{minutes}M{secs}S"


class RowBudget:
    """Collects rows until `max_rows` or `max_bytes` would be exceeded; `truncated` says whether any was cut.

    Feed it every row the source yields up to max_rows + 1: the extra row is how a cap is told apart
    from a result that fits exactly.
    """

    def __init__(self, max_rows: int, max_bytes: int):
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows: list[Any] = []
        self._encoded = bytearray(b"[")  # the rows as one JSON array, built as they come (orjson's own
        # output objects are over-allocated: keeping one per row would cost ~4 KB a row)
        self.size = 2  # the enclosing brackets
        self.truncated = False

    def add(self, row: Any) -> bool:
        """Keep `row` if it fits; return False (and mark truncated) once a cap is reached."""
        if self.truncated:
            return False
        if len(self.rows) >= self.max_rows:
            self.truncated = True
            return False
        encoded = dumps_bytes(row)
        if self.size + len(encoded) + 1 > self.max_bytes:
            self.truncated = True
            return False
        if self.rows:
            self._encoded += b","
        self._encoded += encoded
        self.rows.append(row)
        self.size += len(encoded) + 1
        return True

    def json_rows(self) -> str:
        return (self._encoded + b"]").decode()


def table(columns: list[dict[str, Any]], budget: RowBudget) -> tuple[dict[str, Any], str]:
    """A {columns, rows, row_count, truncated} answer and its compact JSON, the rows spliced in as encoded once."""
    n, truncated = len(budget.rows), budget.truncated
    text = (f'{{"columns":{dumps(columns)},"rows":{budget.json_rows()},"row_count":{n},'
            f'"truncated":{"true" if truncated else "false"}}}')
    return {"columns": columns, "rows": budget.rows, "row_count": n, "truncated": truncated}, text
