"""The HTTP side of auth: who is calling the MCP endpoint, RFC 9728 metadata, 401/403 challenges.

Only the `Authorization: Bearer` header is read (never a token in the query string). A valid token whose
scopes grant no level on any database is answered 403 `insufficient_scope`, naming the scopes that would.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dbmcp import permissions
from dbmcp.auth import AuthError, Identity, Verifier
from dbmcp.auth.api_keys import ApiKeyVerifier
from dbmcp.config import Config

METADATA_PATH = "/.well-known/oauth-protected-resource"


class OAuthVerifier:
    """JWTs against the issuer's keys; other (opaque) tokens through introspection when it is configured."""

    def __init__(self, config: Config):
        from dbmcp.auth.introspection import IntrospectionVerifier  # JOSE and HTTP client: oauth mode only
        from dbmcp.auth.jwt import JwtVerifier

        auth = config.auth
        audience = auth.audience or config.server.public_url or ""
        self.jwt = JwtVerifier(auth.issuer or "", audience, auth.jwks_uri)
        self.introspection = (
            IntrospectionVerifier(auth.introspection, auth.issuer, audience) if auth.introspection else None
        )

    async def verify(self, token: str) -> Identity:
        if token.count(".") == 2:  # a JWT
            return await self.jwt.verify(token)
        if self.introspection is not None:
            return await self.introspection.verify(token)
        raise AuthError("token is malformed")

    async def close(self) -> None:
        await self.jwt.close()
        if self.introspection is not None:
            await self.introspection.close()


def build_verifier(config: Config) -> Verifier | None:
    if config.auth.mode == "api_keys":
        return ApiKeyVerifier(config.auth.api_keys)
    if config.auth.mode == "oauth":
        return OAuthVerifier(config)
    return None


def all_scopes(config: Config) -> list[str]:
    scopes: list[str] = []
    for name in config.databases:
        for level_scopes in config.scopes_for(name).values():
            scopes.extend(s for s in level_scopes if s not in scopes)
    return scopes


def metadata_url(config: Config) -> str | None:
    """The path-suffixed RFC 9728 metadata URL for this resource (oauth mode only)."""
    if config.auth.mode != "oauth" or not config.server.public_url:
        return None
    url = urlsplit(config.server.public_url)
    return f"{url.scheme}://{url.netloc}{METADATA_PATH}{url.path.rstrip('/')}"


def metadata_routes(config: Config) -> list[Route]:
    if config.auth.mode != "oauth":
        return []
    body = {
        "resource": config.server.public_url,
        "authorization_servers": [config.auth.issuer],
        "scopes_supported": all_scopes(config),
        "bearer_methods_supported": ["header"],
        "resource_name": "dbmcp",
    }

    async def metadata(request: Request) -> Response:
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})

    suffix = urlsplit(config.server.public_url or "").path.rstrip("/") or config.server.path
    return [Route(METADATA_PATH, metadata, methods=["GET"]), Route(METADATA_PATH + suffix, metadata, methods=["GET"])]


_GRANTS_KEPT = 4096


class AuthGate:
    """ASGI middleware in front of the MCP endpoint: attaches a permissions.Caller as request.state.caller."""

    def __init__(self, app: ASGIApp, config: Config, verifier: Verifier | None):
        self.app = app
        self.config = config
        self.verifier = verifier
        self._anonymous = permissions.anonymous(config) if verifier is None else None
        self._metadata = metadata_url(config)
        self._scopes = " ".join(all_scopes(config))
        self._granted: dict[Identity, permissions.Caller] = {}
        # a verifier that needs no I/O (API keys) is asked without a coroutine: this runs on every request
        self._check: Callable[[str], Identity] | None = getattr(verifier, "check", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = self._anonymous
        if caller is None:
            token = _bearer(scope)
            if token is None:
                await self._challenge(401, None, "authentication required")(scope, receive, send)
                return
            try:
                identity = self._check(token) if self._check else await self.verifier.verify(token)  # type: ignore[union-attr]
            except AuthError as e:
                await self._challenge(401, "invalid_token", str(e))(scope, receive, send)
                return
            caller = self._granted.get(identity) or self._grant(identity)
            if not caller.levels:
                await self._challenge(403, "insufficient_scope", "the token grants no database")(scope, receive, send)
                return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    def _grant(self, identity: Identity) -> permissions.Caller:
        """The caller an identity makes, worked out once per identity (a key's is the same on every request)."""
        if len(self._granted) >= _GRANTS_KEPT:
            self._granted.clear()
        caller = permissions.grant(self.config, set(identity.scopes), identity.subject, identity.client_id)
        self._granted[identity] = caller
        return caller

    def _challenge(self, status: int, error: str | None, description: str) -> Response:
        params = []
        if error:
            params += [f'error="{error}"', f'error_description="{description}"']
        if status == 403:
            params.append(f'scope="{self._scopes}"')
        params.append(f'resource_metadata="{self._metadata}"' if self._metadata else 'realm="dbmcp"')
        body = {"error": error or "unauthorized", "error_description": description}
        return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": "Bearer " + ", ".join(params)})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            if token and scheme.lower() == b"bearer":
                return token.decode("latin-1")
            return None
    return None
