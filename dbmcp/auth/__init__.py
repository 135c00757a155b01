"""Who is calling: bearer-token verifiers (API keys, JWT via JWKS, RFC 7662 introspection) and the HTTP gate.

A verifier turns a bearer token into an `Identity` (subject, client, scopes) or raises `AuthError`;
`permissions.grant` turns the scopes into levels per database.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class AuthError(Exception):
    """The token is missing, malformed, forged, expired or otherwise unacceptable. The message is safe to show."""


class Identity(NamedTuple):
    """Immutable and hashable in C (the gate looks up a caller's permissions by identity on every request)."""

    subject: str | None
    client_id: str | None
    scopes: frozenset[str] = frozenset()


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
