"""The ES|QL guard: every source a query reads is named, allowed and resolved before the query is sent.

The query is split into commands the way Elasticsearch's lexer does (strings, triple-quoted strings, backquoted
identifiers, nested block comments and line comments are honoured; every `|` outside them ends a command), then
rebuilt from the checked commands without comments, so what is sent is exactly what was checked.

- The first command must be FROM or TS (sources resolved like es_search's `index`: wildcards narrowed to the
  allowed names and replaced by that explicit list) or ROW / SHOW (no index).
- Processing commands come from a fixed list; LOOKUP JOIN must name one allowed index; ENRICH is refused (its
  policy reads an index the query does not name), and so is every command not on the list (FORK, COMPLETION,
  RERANK, ...), and subqueries (`IN (FROM ...)`).
- Remote `cluster:index` sources and `::` selectors are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbmcp.errors import Refused, ToolError
from dbmcp.guards.es import EsPolicy, Resolver, check_lookup, exists, resolve

PROCESSING = frozenset({
    "where", "eval", "stats", "inlinestats", "keep", "drop", "rename", "sort", "limit", "dissect", "grok",
    "mv_expand", "change_point", "sample", "lookup",
})
ENRICH_REFUSED = "refused: ES|QL ENRICH is not allowed (its policy reads an index that the query does not name)"
_WORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(?=\s|$)")
_SUBQUERY = re.compile(r"[(\[]\s*(from|ts|row|show|promql|metrics|explain|fork)\b", re.IGNORECASE)
_UNQUOTED_SOURCE = re.compile(r"[^:\"=|,\[\]\s]+")
_METADATA = re.compile(r"metadata\s+[A-Za-z_@][\w@.]*(?:\s*,\s*[A-Za-z_@][\w@.]*)*", re.IGNORECASE)
_LOOKUP_JOIN = re.compile(r"\s*lookup\s+join\s+", re.IGNORECASE)
_JOIN_ON = re.compile(r"\s+(?:as\s+[A-Za-z_]\w*\s+)?on\s", re.IGNORECASE)
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Command:
    text: str  # without comments; strings and quoted identifiers as written
    masked: str  # the same with strings and quoted identifiers emptied: what keywords are looked for in

    @property
    def word(self) -> str:
        m = _WORD.match(self.masked)
        if m is None:
            raise ToolError(f"ES|QL: cannot read the command {self.text.strip()[:60]!r}")
        return m.group(1).lower()


async def check_esql(query: object, policy: EsPolicy, resolver: Resolver) -> str:
    """The query to send: sources narrowed to explicit allowed names, comments dropped. Refuses what may not run."""
    if not isinstance(query, str) or not query.strip():
        raise ToolError("ES|QL: a query is required (FROM index | ...)")
    commands = split_commands(query)
    for command in commands:
        if _SUBQUERY.search(command.masked):
            raise Refused("refused: ES|QL subqueries are not allowed")
    checked = [_processing(command, policy) for command in commands[1:]]  # policy first: nothing sent yet
    out = [await _source(commands[0], policy, resolver)]
    for text, lookup in checked:
        if lookup is not None:  # a missing lookup index reads like a hidden one
            await exists(lookup, policy, resolver)
        out.append(text)
    return "\n| ".join(out)


async def _source(command: Command, policy: EsPolicy, resolver: Resolver) -> str:
    word = command.word
    if word in ("row", "show"):
        return command.text.strip()
    if word not in ("from", "ts"):
        raise Refused("refused: an ES|QL query starts with FROM, TS, ROW or SHOW")
    body = command.text.lstrip()[len(word):]
    sources, metadata = parse_sources(body)
    names = await resolve(",".join(sources), policy, resolver, verify=True)
    return f"{word.upper()} {','.join(names)}" + (f" {metadata}" if metadata else "")


def _processing(command: Command, policy: EsPolicy) -> tuple[str, str | None]:
    """The command as it will be sent, and the index it reads (LOOKUP JOIN), if any."""
    word = command.word
    if word == "enrich":
        raise Refused(ENRICH_REFUSED)
    if word not in PROCESSING:
        raise Refused(f"refused: ES|QL command {word.upper()} is not allowed")
    if word == "lookup":
        return _lookup_join(command.text, policy)
    return command.text.strip(), None


def _lookup_join(text: str, policy: EsPolicy) -> tuple[str, str]:
    m = _LOOKUP_JOIN.match(text)
    if m is None:
        raise Refused("refused: ES|QL LOOKUP is allowed only as LOOKUP JOIN")
    rest = text[m.end():]
    if rest.startswith('"'):
        end = string_end(rest, 0)
        target, after = unquote(rest[:end]), rest[end:]
    else:
        found = _UNQUOTED_SOURCE.match(rest)
        if found is None:
            raise ToolError("ES|QL: LOOKUP JOIN needs an index name")
        target, after = found.group(), rest[found.end():]
    if after.lstrip().startswith(":"):
        raise Refused(f"refused: remote clusters and '::' selectors are not allowed ({target + after.lstrip()[:1]!r})")
    if _JOIN_ON.match(after) is None:
        raise ToolError("ES|QL: expected LOOKUP JOIN <index> ON <fields>")
    return f"LOOKUP JOIN {check_lookup(target, policy)}{after.rstrip()}", target


def parse_sources(body: str) -> tuple[list[str], str]:
    """FROM's index patterns (quoted ones unquoted; each may be a comma list) and its METADATA clause."""
    sources, i, n = [], 0, len(body)
    while True:
        i = _skip_spaces(body, i)
        if i < n and body[i] == '"':
            end = string_end(body, i)
            sources.append(unquote(body[i:end]))
            i = end
        else:
            found = _UNQUOTED_SOURCE.match(body, i)
            if found is None:
                raise ToolError("ES|QL: FROM needs index names")
            sources.append(found.group())
            i = found.end()
        i = _skip_spaces(body, i)
        if i < n and body[i] == ":":
            raise Refused(f"refused: remote clusters and '::' selectors are not allowed ({sources[-1] + ':'!r})")
        if i < n and body[i] == ",":
            i += 1
            continue
        break
    tail = body[i:].strip()
    if tail and _METADATA.fullmatch(tail) is None:
        raise ToolError(f"ES|QL: unexpected {tail[:40]!r} after the FROM sources")
    return sources, tail


def split_commands(query: str) -> list[Command]:
    """The query's commands (split at every `|` outside strings, quoted identifiers and comments)."""
    commands: list[Command] = []
    text: list[str] = []
    masked: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch == '"' or ch == "`":
            end = string_end(query, i) if ch == '"' else _identifier_end(query, i)
            text.append(query[i:end])
            masked.append(ch * 2)
            i = end
        elif query.startswith("//", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
            text.append(" ")
            masked.append(" ")
        elif query.startswith("/*", i):
            i = _comment_end(query, i)
            text.append(" ")
            masked.append(" ")
        elif ch == "|":
            commands.append(_command(text, masked))
            text, masked = [], []
            i += 1
        else:
            text.append(ch)
            masked.append(ch)
            i += 1
    commands.append(_command(text, masked))
    return commands


def _command(text: list[str], masked: list[str]) -> Command:
    command = Command("".join(text), "".join(masked))
    if not command.masked.strip():
        raise ToolError("ES|QL: empty command (two '|' in a row, or a '|' at the end)")
    return command


def string_end(query: str, i: int) -> int:
    """The end of the string literal starting at i (`"..."` with escapes, or `\"\"\"...\"\"\"`); one line only."""
    n = len(query)
    if query.startswith('"""', i):
        close = query.find('"""', i + 3)
        if close < 0 or any(c in query[i:close] for c in "\r\n"):
            raise ToolError("ES|QL: unterminated string")
        end = close + 3
        while end < n and end < close + 5 and query[end] == '"':
            end += 1
        return end
    j = i + 1
    while j < n and query[j] not in "\r\n":
        if query[j] == "\\":
            j += 2
            continue
        if query[j] == '"':
            return j + 1
        j += 1
    raise ToolError("ES|QL: unterminated string")


def unquote(literal: str) -> str:
    if literal.startswith('"""'):
        return literal[3:].removesuffix('"""')
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), literal[1:-1])


def _identifier_end(query: str, i: int) -> int:
    j = i + 1
    while j < len(query):
        if query[j] == "`":
            if query.startswith("``", j):
                j += 2
                continue
            return j + 1
        j += 1
    raise ToolError("ES|QL: unterminated quoted identifier")


def _comment_end(query: str, i: int) -> int:
    """Block comments nest in ES|QL, as in its lexer."""
    depth, j = 0, i
    while j < len(query):
        if query.startswith("/*", j):
            depth += 1
            j += 2
        elif query.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise ToolError("ES|QL: unterminated comment")


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i
