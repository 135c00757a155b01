"""Who is calling: bearer-token verifiers (API keys, JWT via JWKS, RFC 7662 introspection) and the HTTP gate.

A verifier turns a bearer token into an `Identity` (subject, client, scopes) or raises `AuthError`;
`permissions.grant` turns the scopes into levels per database.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Protocol


class AuthError(Exception):
    """The token is missing, malformed, forged, expired or otherwise unacceptable. The message is safe to show."""


class Identity(NamedTuple):
    """Immutable and hashable in C (the gate looks up a caller's permissions by identity on every request)."""

    subject: str | None
    client_id: str | None
    scopes: frozenset[str] = frozenset()


class VerifiedTokens:
    """Identities of tokens verified a moment ago, so that a client's next requests skip the signature check or
    the introspection round trip. An entry lasts at most `seconds` and never past the token's own exp; a refusal
    is never kept (a token that just became valid is not refused for a minute). Entries are keyed by the token's
    sha256, so no token is kept in memory in the clear; past `entries` the whole cache starts over."""

    def __init__(self, seconds: float = 60.0, entries: int = 10_000):
        self.seconds = seconds
        self._entries = entries
        self._kept: dict[bytes, tuple[float, Identity]] = {}

    def get(self, token: str, now: float) -> tuple[bytes, Identity | None]:
        """The token's key, and its identity if it was verified and its entry has not run out."""
        key = hashlib.sha256(token.encode()).digest()
        kept = self._kept.get(key)
        return key, (kept[1] if kept is not None and kept[0] > now else None)

    def put(self, key: bytes, identity: Identity, now: float, expires: float | None) -> None:
        if len(self._kept) >= self._entries:
            self._kept.clear()
        until = now + self.seconds
        self._kept[key] = (until if expires is None else min(until, expires), identity)


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...

    async def close(self) -> None: ...


def scopes_from_claims(claims: dict) -> frozenset[str]:
    """Scopes as the usual IdPs put them: `scope` (space-separated string) or `scp` (string or array)."""
    out: set[str] = set()
    for key in ("scope", "scp"):
        value = claims.get(key)
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list):
            out.update(v for v in value if isinstance(v, str))
    return frozenset(out)
