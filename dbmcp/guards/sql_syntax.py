"""How PostgreSQL reads a statement's text, where sqlglot needs help: the guard's first step (sqlglot must
tokenize a statement the way PostgreSQL does, or it is refused), EXPLAIN's options (sqlglot leaves them as raw
text), array literals of names, and how identifiers and type names in the tree fold and qualify.

PostgreSQL's lexer is the reference (src/backend/parser/scan.l): whitespace is ASCII space, tab, newline, carriage
return, form feed and vertical tab; `--` comments end at a newline or carriage return; block comments nest; every
other character, U+00A0 included, is part of a word. sqlglot's tokens carry their exact spans, so whatever lies
between two tokens must be whitespace or comments as PostgreSQL reads them; anything else (a character sqlglot
skipped, a comment it ended early) means the two could see different statements.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokens import Token, TokenType

from dbmcp.errors import Refused

_SPACE = frozenset(" \t\n\r\f\v")  # PostgreSQL's whitespace; anything else (U+00A0 ...) is part of a word to it
_EXPLAIN_OPTIONS = {"VERBOSE", "COSTS", "SETTINGS", "GENERIC_PLAN", "BUFFERS", "WAL", "TIMING", "SUMMARY",
                    "MEMORY", "FORMAT", "SERIALIZE"}
_USER_TYPE = exp.DataType.Type.USERDEFINED
_ARRAY_TYPE = exp.DataType.Type.ARRAY
_COMMANDS = frozenset(Postgres.Tokenizer.COMMANDS)  # statements sqlglot only splits off as a raw string
_NUMBER_TOKENS = frozenset({TokenType.NUMBER, TokenType.HEX_STRING, TokenType.BIT_STRING})
_LITERAL_TOKENS = frozenset({
    TokenType.STRING, TokenType.IDENTIFIER, TokenType.HEREDOC_STRING, TokenType.BYTE_STRING,
    TokenType.UNICODE_STRING, TokenType.NATIONAL_STRING, TokenType.BIT_STRING, TokenType.HEX_STRING,
    TokenType.RAW_STRING, TokenType.NATIONAL_RAW_STRING,
})


def lexical_problem(sql: str, tokens: list[Token]) -> str | None:
    """Where sqlglot's tokens could differ from PostgreSQL's: text between tokens that is not whitespace or a
    comment, non-ASCII whitespace (a letter to PostgreSQL), Unicode-escaped identifiers, and the numbers
    PostgreSQL 16 added (1_000, 0x1F, 0o17, 0b101: sqlglot reads `1 AS _000`, a bit string, `0 AS o17`)."""
    end = 0
    for i, token in enumerate(tokens):
        if token.start > end and not _blank(sql, end, token.start):
            return not_understood(f"unexpected text at character {end + 1}")
        if token.token_type in _NUMBER_TOKENS and _number_differs(sql, token):
            return not_understood(f"the number at character {token.start + 1} is read differently by PostgreSQL "
                                  "16+; write it in plain decimal digits")
        if (token.token_type == TokenType.AMP and 0 < i < len(tokens) - 1 and tokens[i - 1].text in ("U", "u")
                and tokens[i - 1].end + 1 == token.start and tokens[i + 1].start == token.end + 1
                and tokens[i + 1].token_type == TokenType.IDENTIFIER):
            return not_understood('Unicode-escaped identifiers U&"..." are not supported')
        if token.token_type in _COMMANDS and (i == 0 or tokens[i - 1].token_type == TokenType.SEMICOLON):
            return None  # sqlglot keeps the rest as one raw string: EXPLAIN checks it again, anything else is refused
        end = token.end + 1
    if not _blank(sql, end, len(sql)):
        return not_understood(f"unexpected text at character {end + 1}")
    if not sql.isascii():
        for token in tokens:
            if token.token_type not in _LITERAL_TOKENS and any(
                    c.isspace() and c not in _SPACE for c in sql[token.start:token.end + 1]):
                return not_understood("non-ASCII whitespace outside a string; PostgreSQL reads it as a letter")
    return None


def _number_differs(sql: str, token: Token) -> bool:
    """A number joined to a letter or _ (1_000, 1e1_0, 0o17, 1x), or a 0x/0b prefix that sqlglot took for a
    bit-string literal: one number to PostgreSQL 16+ (or an error), two tokens or a string to sqlglot."""
    if token.token_type != TokenType.NUMBER:
        return sql[token.start] == "0"  # 0x1F or 0b101, where x'1F' and b'101' start with the letter
    after = sql[token.end + 1:token.end + 2]
    return after.isalpha() or after == "_" or (after != "" and not after.isascii())


def _blank(sql: str, i: int, stop: int) -> bool:
    """Whether sql[i:stop] is only PostgreSQL whitespace and comments (block comments nest)."""
    return skip_blank(sql, i, stop) == stop


def skip_blank(sql: str, i: int = 0, stop: int | None = None) -> int:
    """The index of the first character from i on that is not whitespace or inside a comment (-1: open comment)."""
    stop = len(sql) if stop is None else stop
    while i < stop:
        if sql[i] in _SPACE:
            i += 1
        elif sql.startswith("--", i, stop):
            while i < stop and sql[i] not in "\r\n":
                i += 1
        elif sql.startswith("/*", i, stop):
            depth = 0
            while i < stop:
                if sql.startswith("/*", i, stop):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i, stop):
                    depth, i = depth - 1, i + 2
                    if depth == 0:
                        break
                else:
                    i += 1
            if depth:
                return -1
        else:
            return i
    return i


def not_understood(why: str) -> str:
    return f"refused: the statement is not understood ({why}); dbmcp runs read-only queries only"


def explained_query(rest: str) -> str:
    """The query after EXPLAIN and its options; refused with ANALYZE (it runs the statement) or unknown options."""
    rest = rest[max(skip_blank(rest), 0):]
    options: list[str] = []
    match = re.match(r"\(([^()]*)\)", rest)
    if match:
        options = [o.strip().split()[0].upper() for o in match.group(1).split(",") if o.strip()]
        rest = rest[match.end():]
    while (word := re.match(r"([A-Za-z_]+)\b", rest)) and word.group(1).upper() in {"VERBOSE", "ANALYZE", "ANALYSE"}:
        options.append(word.group(1).upper())
        rest = rest[word.end():]
        rest = rest[max(skip_blank(rest), 0):]
    if any(o in ("ANALYZE", "ANALYSE") for o in options):
        raise Refused("refused: EXPLAIN ANALYZE runs the statement; use sql_explain (it never executes)")
    if any(o not in _EXPLAIN_OPTIONS for o in options):
        raise Refused("refused: unknown EXPLAIN option; dbmcp runs read-only queries")
    return rest


def array_items(text: str) -> list[str] | None:
    """The elements of an array literal of names ('{a,b}', nested too), or None when they need quoting rules."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")) or '"' in inner or "\\" in inner:
        return None
    items = (i.strip() for i in inner.replace("{", ",").replace("}", ",").split(","))
    return [i for i in items if i and i.upper() != "NULL"]


# ---- how PostgreSQL reads names and types in the tree -------------------------------------------------------
def in_type_name(dot: exp.Dot) -> bool:
    """A qualified type name (pg_catalog.regclass) is a Dot too: not an attribute."""
    node: exp.Expression | None = dot
    while isinstance(node, exp.Dot):
        node = node.parent
    return isinstance(node, exp.DataType)


def ident(node: exp.Expression | None) -> str | None:
    """An identifier as PostgreSQL sees it: quoted keeps its case, unquoted folds to lower case."""
    if node is None:
        return None
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.lower()
    return node.name.lower() or None


def type_ref(node: exp.DataType) -> tuple[str | None, str]:
    """(schema or None, name) of a user-defined type in the tree."""
    kind = node.args.get("kind")
    if isinstance(kind, exp.Dot):
        return ident(kind.this.expression if isinstance(kind.this, exp.Dot) else kind.this), ident(kind.expression)
    if isinstance(kind, exp.Identifier):
        return None, ident(kind)
    return None, str(kind or node.this).lower()


def array_depth(node: exp.DataType) -> int:
    """How many array levels wrap a type (x[][] is 2)."""
    depth, parent = 0, node.parent
    while isinstance(parent, exp.DataType) and parent.this == _ARRAY_TYPE:
        depth, parent = depth + 1, parent.parent
    return depth


def reg_type(to: exp.DataType) -> tuple[str | None, bool]:
    """("regclass" | "regtype" | None, is an array) for a cast's target type."""
    array = False
    while to.this == _ARRAY_TYPE and to.expressions:
        to, array = to.expressions[0], True
    if isinstance(to, exp.ObjectIdentifier):
        name = to.name.lower()
    elif to.this == _USER_TYPE and type_ref(to)[0] in (None, "pg_catalog"):
        name = type_ref(to)[1]
    else:
        return None, False
    return (name if name in ("regclass", "regtype") else None), array
