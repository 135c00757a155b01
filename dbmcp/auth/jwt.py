"""`auth.mode: oauth` with JWT access tokens: signature against the issuer's JWKS, then iss, aud, exp, nbf.

Only asymmetric algorithms are accepted (never `none`, never HMAC: a public key must not double as a shared
secret). The JWKS is discovered from the issuer's metadata when `jwks_uri` is not configured, cached, and
refetched when a token names an unknown `kid`, at most once per `REFRESH_INTERVAL_S`. A verified token is
remembered for at most `CACHE_S` (never past its exp; keyed by its sha256, see auth.VerifiedTokens), so a
client's requests after the first skip the signature check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from dbmcp.auth import AuthError, Identity, VerifiedTokens, scopes_from_claims

log = logging.getLogger("dbmcp.auth")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 30
REFRESH_INTERVAL_S = 30.0
CACHE_S = 60.0
_HTTP_TIMEOUT_S = 5.0


class JwksCache:
    """The issuer's signing keys, fetched lazily and refreshed (rate-limited) when an unknown kid shows up."""

    def __init__(self, issuer: str, jwks_uri: str | None, http: httpx.AsyncClient):
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.http = http
        self.keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None) -> KeySet:
        if self.keys is not None and (kid is None or self._has(kid)):
            return self.keys
        async with self._lock:
            fresh = time.monotonic() - self._fetched_at < REFRESH_INTERVAL_S
            if self.keys is None or (not self._has(kid) and not fresh):
                await self._fetch()
        if self.keys is None or (kid is not None and not self._has(kid)):
            raise AuthError("token signed with an unknown key")
        return self.keys

    def _has(self, kid: str | None) -> bool:
        return self.keys is not None and any(k.kid == kid for k in self.keys.keys)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            uri = self.jwks_uri or await self._discover()
            response = await self.http.get(uri)
            response.raise_for_status()
            self.keys = KeySet.import_key_set(response.json())
            self.jwks_uri = uri
        except (httpx.HTTPError, ValueError, JoseError, KeyError) as e:
            log.warning("cannot fetch the issuer's signing keys: %s", type(e).__name__)
            if self.keys is None:
                raise AuthError("the token issuer's signing keys are unavailable") from None

    async def _discover(self) -> str:
        base = self.issuer.rstrip("/")
        for suffix in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            try:
                response = await self.http.get(base + suffix)
                if response.status_code == 200 and isinstance(response.json().get("jwks_uri"), str):
                    return response.json()["jwks_uri"]
            except (httpx.HTTPError, ValueError):
                continue
        raise ValueError("no jwks_uri in the issuer's metadata")


class JwtVerifier:
    def __init__(self, issuer: str, audience: str, jwks_uri: str | None = None,
                 http: httpx.AsyncClient | None = None):
        self.issuer = issuer
        self.audience = audience
        self.http = http or httpx.AsyncClient(timeout=_HTTP_TIMEOUT_S)
        self.jwks = JwksCache(issuer, jwks_uri, self.http)
        self._verified = VerifiedTokens(CACHE_S)

    async def verify(self, token: str) -> Identity:
        """A token verified in the last CACHE_S seconds is not verified again (its signature costs ~40 µs of
        CPU): the cache holds it no longer than its exp allows, and a rotated-out key's tokens at most CACHE_S."""
        now = time.time()
        key, identity = self._verified.get(token, now)
        if identity is not None:
            return identity
        identity, exp = await self._verify(token)
        self._verified.put(key, identity, now, exp + LEEWAY_S)
        return identity

    async def _verify(self, token: str) -> tuple[Identity, float]:
        header = _header(token)
        if header.get("alg") not in ALGORITHMS:
            raise AuthError("token algorithm not accepted")
        keys = await self.jwks.get(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError):
            raise AuthError("token signature is invalid") from None
        claims = decoded.claims
        self._check_claims(claims)
        client = claims.get("client_id") or claims.get("azp") or claims.get("appid")
        identity = Identity(subject=_str(claims.get("sub")), client_id=_str(client), scopes=scopes_from_claims(claims))
        return identity, claims["exp"]  # a number: _check_claims made sure

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = time.time()
        if claims.get("iss") != self.issuer:
            raise AuthError("token issuer is not accepted")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise AuthError("token audience does not include this server")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + LEEWAY_S < now:
            raise AuthError("token expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf - LEEWAY_S > now):
            raise AuthError("token not yet valid")

    async def close(self) -> None:
        await self.http.aclose()


def _header(token: str) -> dict[str, Any]:
    import base64

    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError):
        raise AuthError("token is malformed") from None
    if not isinstance(header, dict):
        raise AuthError("token is malformed")
    return header


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
