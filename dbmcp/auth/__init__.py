"""Who is calling: bearer-token verifiers (API keys, JWT via JWKS, RFC 7662 introspection) and the HTTP gate.

A verifier turns a bearer token into an `Identity` (subject, client, scopes) or raises `AuthError`;
`permissions.grant` turns the scopes into levels per database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class AuthError(Exception):
    """The token is missing, malformed, forged, expired or otherwise unacceptable. The message is safe to show."""


@dataclass(frozen=True)
class Identity:
    subject: str | None
    client_id: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)


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
