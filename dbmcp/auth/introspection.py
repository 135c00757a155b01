"""Opaque access tokens through RFC 7662 token introspection (client credentials), with a short cache.

A positive answer is cached for at most `CACHE_S` and never past the token's own `exp` (auth.VerifiedTokens:
a negative one is not cached, and no token is kept in memory in the clear).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from dbmcp.auth import AuthError, Identity, VerifiedTokens, scopes_from_claims
from dbmcp.config import Introspection

log = logging.getLogger("dbmcp.auth")
CACHE_S = 60.0


class IntrospectionVerifier:
    def __init__(self, config: Introspection, issuer: str | None, audience: str | None,
                 http: httpx.AsyncClient | None = None):
        self.config = config
        self.issuer = issuer
        self.audience = audience
        self.http = http or httpx.AsyncClient(timeout=5.0)
        self._verified = VerifiedTokens(CACHE_S)

    async def verify(self, token: str) -> Identity:
        now = time.time()
        key, identity = self._verified.get(token, now)
        if identity is not None:
            return identity
        claims = await self._introspect(token)
        identity = self._accept(claims, now)
        exp = claims.get("exp")
        self._verified.put(key, identity, now, exp if isinstance(exp, int | float) else None)
        return identity

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self.http.post(
                self.config.url, data={"token": token, "token_type_hint": "access_token"},
                auth=(self.config.client_id, self.config.client_secret),
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx.HTTPError, ValueError) as e:
            log.warning("token introspection failed: %s", type(e).__name__)
            raise AuthError("token introspection is unavailable") from None
        if not isinstance(claims, dict):
            raise AuthError("token introspection answered nonsense")
        return claims

    def _accept(self, claims: dict[str, Any], now: float) -> Identity:
        if claims.get("active") is not True:
            raise AuthError("token is not active")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp < now:
            raise AuthError("token expired")
        if self.issuer and claims.get("iss") not in (None, self.issuer):
            raise AuthError("token issuer is not accepted")
        aud = claims.get("aud")
        if self.audience and aud is not None and self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise AuthError("token audience does not include this server")
        sub, client = claims.get("sub"), claims.get("client_id")
        return Identity(subject=sub if isinstance(sub, str) else None,
                        client_id=client if isinstance(client, str) else None, scopes=scopes_from_claims(claims))

    async def close(self) -> None:
        await self.http.aclose()
