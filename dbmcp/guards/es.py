"""The Elasticsearch guard: index expressions resolved against the allowlist, request bodies without scripts,
ES|QL sources checked the same way. Nothing is sent before the target is known to be allowed.

Per the contract: a wildcard (`logs-*`, `*`, `_all`) or date math is narrowed to the allowed names it matches
(the caller resolves it with the cluster's resolve API); an explicitly named index, alias or data stream outside
the allowlist reads exactly like one that does not exist; remote `cluster:index` targets, names that are really
paths (`x/_delete_by_query`, `.`, `..`) and ENRICH are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from dbmcp.errors import Refused, ToolError

SEARCH_KEYS = frozenset({
    "query", "aggs", "aggregations", "sort", "_source", "size", "from", "search_after", "track_total_hits",
    "fields", "docvalue_fields", "stored_fields", "highlight", "post_filter", "collapse", "min_score", "knn",
    "suggest", "rescore", "explain", "version", "seq_no_primary_term", "terminate_after", "timeout",
    "track_scores", "profile", "script_fields", "runtime_mappings",  # script keys: refused unless allow_scripts
})
SCRIPT_KEYS = frozenset({"script", "_script", "script_fields", "runtime_mappings", "scripted_metric", "script_score",
                         "bucket_script", "bucket_selector"})
MAX_DEPTH = 64
MAX_FROM = 10_000
_BAD_NAME = re.compile(r"[\\/?#%\s\"<>|,]|^\.\.?$|^$|^[-_+]")


def not_found(name: str) -> Refused:
    """Elasticsearch's own words for a missing index: a hidden one must read the same."""
    return Refused(f"no such index [{name}]")


@dataclass(frozen=True)
class Target:
    """One part of an index expression."""

    name: str
    pattern: bool  # a wildcard, _all or date math: narrowed, never refused for what it also matches
    exclude: bool = False


def parse_expression(expression: str) -> list[Target]:
    """Split and validate an index expression (comma list, wildcards, -exclusions, date math)."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("invalid index: an index, alias or data stream name (or pattern) is required")
    targets: list[Target] = []
    for raw in _split(expression):
        part = raw.strip()
        exclude = part.startswith("-") and bool(targets)
        name = part[1:] if exclude else part
        if ":" in name:
            raise Refused(f"refused: cross-cluster target {name!r} is not allowed")
        date_math = name.startswith("<") and name.endswith(">")
        plain = re.sub(r"\{[^{}]*(\{[^{}]*\}[^{}]*)*\}", "", name[1:-1]) if date_math else name  # braces may hold '/'
        if name != "_all" and (_BAD_NAME.search(plain) or (date_math and not plain)):
            raise ToolError(f"invalid index name {name!r}")
        pattern = date_math or name == "_all" or "*" in name
        targets.append(Target(name, pattern, exclude))
    return targets


def _split(expression: str) -> list[str]:
    """Commas separate targets, except inside date math (`<logs-{now/d{yyyy.MM.dd|+12:00}}>`)."""
    parts, depth, current = [], 0, ""
    for ch in expression:
        if ch in "<{":
            depth += 1
        elif ch in ">}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def narrow(targets: list[Target], allows: Callable[[str], bool], resolve: Callable[[str], list[str]]) -> list[str]:
    """The concrete, allowed names an expression denotes. `resolve(pattern)` lists what the cluster matches."""
    names: list[str] = []
    for target in targets:
        if target.exclude:
            names = [n for n in names if not fnmatchcase(n, target.name)]
            continue
        if target.pattern:
            dotted = target.name.startswith(".")  # hidden (dot) indices only when the pattern asks for them
            for name in resolve(target.name):
                if allows(name) and (dotted or not name.startswith(".")) and name not in names:
                    names.append(name)
        elif not allows(target.name):
            raise not_found(target.name)
        elif target.name not in names:
            names.append(target.name)
    return names


def check_body(body: Any, allow_scripts: bool) -> dict:
    """A search body with known keys only, no scripts (unless allowed), bounded nesting."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ToolError("invalid body: expected a JSON object")
    unknown = sorted(set(body) - SEARCH_KEYS)
    if unknown:
        raise Refused(f"refused: search body key {unknown[0]!r} is not allowed (allowed: query, aggs, sort, _source, "
                      "size, from, search_after, ...)")
    _walk(body, allow_scripts, 0)
    return body


def _walk(value: Any, allow_scripts: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ToolError(f"invalid body: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SCRIPT_KEYS and not allow_scripts:
                raise Refused(f"refused: scripts are not allowed ({key}; allow_scripts is off)")
            if key == "indices_boost":
                raise Refused("refused: indices_boost names indices; it is not allowed")
            _walk(item, allow_scripts, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, allow_scripts, depth + 1)


# ---- ES|QL ----------------------------------------------------------------------------------------
_SOURCE = re.compile(r"^\s*(FROM|TS)\s+(.+?)(\s+METADATA\s+[^|]*)?(?=\||$)", re.IGNORECASE | re.DOTALL)
_OTHER_SOURCE = re.compile(r"^\s*(ROW|SHOW)\b", re.IGNORECASE)
_LOOKUP = re.compile(r"\|\s*LOOKUP\s+JOIN\s+([^\s|]+)", re.IGNORECASE)
_ENRICH = re.compile(r"\|\s*ENRICH\b", re.IGNORECASE)


def esql_sources(query: str) -> tuple[str, list[Target], list[str]]:
    """(the FROM expression, its targets, LOOKUP JOIN indices); refuse ENRICH and unknown source commands."""
    if not isinstance(query, str) or not query.strip():
        raise ToolError("invalid query: an ES|QL query is required")
    if _ENRICH.search(_strip_strings(query)):
        raise Refused("refused: ENRICH is not allowed (its policy reads an index the query does not name)")
    lookups = _LOOKUP.findall(_strip_strings(query))
    match = _SOURCE.match(query)
    if match is None:
        if _OTHER_SOURCE.match(query):
            return "", [], lookups
        raise Refused("refused: an ES|QL query must start with FROM (or ROW / SHOW)")
    expression = match.group(2).strip()
    return expression, parse_expression(expression.replace('"', "").replace(" ", "")), lookups


def replace_sources(query: str, names: list[str]) -> str:
    """The query with its FROM expression replaced by the narrowed, explicit list."""
    match = _SOURCE.match(query)
    assert match is not None
    original = match.group(2)
    trailing = original[len(original.rstrip()):]
    return query[:match.start(2)] + ", ".join(names) + trailing + query[match.end(2):]


def _strip_strings(query: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
