"""The Elasticsearch guard: index expressions resolved against the allowlist, search bodies without scripts.

Index expressions (`logs-*`, `a,b`, `logs-*,-logs-debug`, `<logs-{now/d}>`, `_all`) are resolved here, before
any search is sent: explicit names outside the allowlist are refused exactly like unknown ones; wildcards,
`_all` and date math are expanded by the cluster's resolve API (the `resolver` callback) and narrowed to the
allowed names; the search then goes to that explicit list. Remote `cluster:index` and `::` selectors are
refused. Names that are really paths (`.`, `..`, `x/_delete_by_query`, `?`, `#`, whitespace) are refused before
the client could build a URL from them: elasticsearch-py turns an index `.` into a search over every index.

Hidden and system indices (names starting with `.`) are visible only when an `include` pattern that itself
starts with `.` names them; `*` never reaches them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from dbmcp.errors import Refused, ToolError

MAX_DEPTH = 100
SCRIPTS_REFUSED = "refused: scripts are not allowed (allow_scripts is off)"
SEARCH_KEYS = frozenset({
    "query", "aggs", "aggregations", "sort", "_source", "size", "from", "search_after", "track_total_hits",
    "post_filter", "highlight", "fields", "docvalue_fields", "stored_fields", "collapse", "min_score", "rescore",
    "knn", "track_scores", "terminate_after", "script_fields", "runtime_mappings",
})
# Queries whose object keys are field names: `{"term": {"_index": "logs-1"}}` filters on a field, reads nothing.
FIELD_QUERIES = frozenset({
    "term", "match", "match_phrase", "match_phrase_prefix", "match_bool_prefix", "prefix", "wildcard", "regexp",
    "fuzzy", "range", "span_term", "intervals", "distance_feature", "geo_distance", "geo_bounding_box",
})
# Keys that name another index to read a document from: terms lookup, more_like_this/pinned docs, percolate,
# indexed shapes, lookup runtime fields.
LOOKUP_KEYS = frozenset({"index", "_index", "target_index"})
_SCRIPT_KEYS = frozenset({"script", "runtime_mappings", "scripted_metric"})
_FORBIDDEN = re.compile(r"[\\/?\"<>|,#:%\s\x00-\x1f\x7f()\[\]{}=`]")
_MATH = r"[A-Za-z0-9/+\-.|:_ ]*"  # inside date math braces: now/d, yyyy.MM.dd, |+12:00
_DATE_MATH = re.compile(rf"<([^<>{{}}]*)((?:\{{{_MATH}(?:\{{{_MATH}\}})?{_MATH}\}})+)([^<>{{}}]*)>")

Resolver = Callable[[str, bool], Awaitable[list[str]]]
"""`resolver(expression, hidden)`: the names (indices, aliases, data streams) a wildcard or date-math expression
matches in the cluster right now; `hidden` asks for hidden indices too (a pattern starting with `.`)."""


@dataclass(frozen=True)
class EsPolicy:
    allows: Callable[[str], bool]
    include: tuple[str, ...]
    database: str  # the name clients use, for messages
    allow_scripts: bool = False

    def visible(self, name: str) -> bool:
        """Inside include/exclude; a `.` name only through an include pattern that starts with `.`."""
        if not self.allows(name):
            return False
        return not name.startswith(".") or any(p.startswith(".") and fnmatchcase(name, p) for p in self.include)

    def unknown(self, name: str, cls: type[ToolError] = Refused) -> ToolError:
        """The one wording for an index that is hidden by the allowlist and for one that does not exist."""
        return cls(f"unknown index {name!r} in database {self.database!r}; see list_objects")


@dataclass(frozen=True)
class Target:
    text: str  # as written, without a leading '-'
    kind: Literal["name", "wildcard", "date_math"]
    exclude: bool = False


def valid_name(name: str) -> bool:
    """A single concrete name that cannot turn into another path or API once put in a URL."""
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and "*" not in name
            and not name.startswith(("_", "-", "+")) and _FORBIDDEN.search(name) is None and len(name.encode()) <= 255)


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ToolError(f"invalid index name {name!r}")
    if ":" in name and not (name.startswith("<") and name.endswith(">")):
        raise Refused(f"refused: remote clusters and '::' selectors are not allowed ({name!r})")
    if not valid_name(name.replace("*", "x") if name != "*" else "x"):
        raise ToolError(f"invalid index name {name!r}")
    return name


def parse_targets(expression: Any) -> list[Target]:
    """Split an index expression into names, wildcards, date math and exclusions; refuse paths and remotes."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("index: name an index, alias or data stream (a pattern such as 'logs-*' works too)")
    targets: list[Target] = []
    for part in (p.strip() for p in _split(expression)):  # "a, b" as agents often write it
        exclude = part.startswith("-") and bool(targets)
        text = part[1:] if exclude else part
        if text == "_all":
            text = "*"
        if text.startswith("<") and text.endswith(">") and "{" in text:
            _check_date_math(text)
            targets.append(Target(text, "date_math", exclude))
            continue
        check_name(text)
        targets.append(Target(text, "wildcard" if "*" in text else "name", exclude))
    if not any(not t.exclude for t in targets):
        raise ToolError("index: an exclusion ('-name') needs a name or pattern before it")
    return targets


def _split(expression: str) -> list[str]:
    """Commas separate targets, except inside date math braces."""
    parts, depth, current = [], 0, ""
    for ch in expression:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _check_date_math(text: str) -> None:
    m = _DATE_MATH.fullmatch(text)
    if m is None or "*" in text or not all(valid_name(s) for s in (m.group(1) + "x", "x" + m.group(3))):
        raise ToolError(f"invalid date math index name {text!r}")


def glob(pattern: str) -> str:
    """An Elasticsearch wildcard (only `*` is special) as an fnmatch pattern."""
    return re.sub(r"([?\[\]])", r"[\1]", pattern)


def check_explicit(targets: list[Target], policy: EsPolicy) -> None:
    """Refuse explicitly named objects outside the allowlist, before anything is sent."""
    for t in targets:
        if t.kind == "name" and not t.exclude and not policy.visible(t.text):
            raise policy.unknown(t.text)


async def resolve(expression: Any, policy: EsPolicy, resolver: Resolver, verify: bool = False) -> list[str]:
    """The explicit, allowed names an index expression stands for (in order, without duplicates).

    `verify` also asks the cluster whether explicitly named objects exist, so that a missing one reads like a
    hidden one where the engine's own error would word it differently (ES|QL).
    """
    targets = parse_targets(expression)
    check_explicit(targets, policy)
    names: dict[str, None] = {}
    for t in targets:
        if t.exclude:
            names = {n: None for n in names if not fnmatchcase(n, glob(t.text))}
        elif t.kind == "name":
            if verify:
                await exists(t.text, policy, resolver)
            names[t.text] = None
        elif t.kind == "wildcard":
            for name in await resolver(t.text, t.text.startswith(".")):
                if fnmatchcase(name, glob(t.text)) and valid_name(name) and policy.visible(name):
                    names[name] = None
        else:
            found = await resolver(t.text, False)
            if not found:
                raise policy.unknown(t.text, ToolError)
            if not all(valid_name(n) and policy.visible(n) for n in found):
                raise policy.unknown(t.text)
            names.update(dict.fromkeys(found))
    if not names:
        raise ToolError(f"no index in database {policy.database!r} matches {expression!r}; see list_objects")
    return list(names)


async def exists(name: str, policy: EsPolicy, resolver: Resolver) -> str:
    """An allowed name, once the cluster confirmed it is there (else: the unknown-index error)."""
    if name not in await resolver(name, name.startswith(".")):
        raise policy.unknown(name, ToolError)
    return name


def check_body(body: Any, policy: EsPolicy) -> None:
    """A search body: known top-level keys only; no script anywhere (unless allowed); lookups stay inside."""
    if not isinstance(body, dict):
        raise ToolError("body: expected a JSON object (query, aggs, sort, _source, size, from, search_after ...)")
    unknown = sorted(set(body) - SEARCH_KEYS)
    if unknown:
        raise ToolError(f"body: unsupported key {unknown[0]!r} (supported: {', '.join(sorted(SEARCH_KEYS))})")
    _walk(body, policy, None, 0)


def is_script_key(key: str) -> bool:
    return key in _SCRIPT_KEYS or key.startswith("script_") or key.endswith("_script")


def _walk(node: Any, policy: EsPolicy, parent: str | None, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ToolError(f"body: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if not policy.allow_scripts and is_script_key(key):
                raise Refused(SCRIPTS_REFUSED)
            if key == "wrapper" and parent not in FIELD_QUERIES:
                raise Refused("refused: wrapper queries are not allowed (their base64 content cannot be checked)")
            if key in LOOKUP_KEYS and isinstance(value, str) and parent not in FIELD_QUERIES:
                check_lookup(value, policy)
            _walk(value, policy, key, depth + 1)
        if parent == "indexed_shape" and "index" not in node:
            check_lookup("shapes", policy)  # Elasticsearch's default index for indexed shapes
    elif isinstance(node, list):
        for item in node:
            _walk(item, policy, parent, depth + 1)


def check_lookup(name: str, policy: EsPolicy) -> str:
    """An index a query reads a document from: one explicit, allowed name."""
    if "," in name or "*" in name or name == "_all":
        raise ToolError(f"a lookup reads one named index, not {name!r}")
    check_name(name)
    if not policy.visible(name):
        raise policy.unknown(name)
    return name
