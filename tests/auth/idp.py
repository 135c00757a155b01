"""A tiny identity provider on loopback for the auth tests: OIDC metadata, a JWKS (with key rotation),
RFC 7662 introspection, and a token minter."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey


class LoopbackIdP:
    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
        self.opaque: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.client = ("dbmcp", "introspection-secret")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = self.url + "/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def rotate(self) -> None:
        """A new signing key (kid k<n>); the old one stays published."""
        self.keys.append(RSAKey.generate_key(2048, parameters={"kid": f"k{len(self.keys) + 1}"}))

    def token(self, scopes: str | list[str] | None = "sales:read", *, audience: Any = None, issuer: str | None = None,
              exp: float | None = None, nbf: float | None = None, key: Any = None, alg: str = "RS256",
              claim: str = "scope", sub: str = "alice", extra: dict | None = None) -> str:
        now = time.time()
        claims: dict[str, Any] = {"iss": issuer or self.issuer, "sub": sub, "aud": audience or "https://dbmcp.test/mcp",
                                  "iat": int(now), "exp": int(exp if exp is not None else now + 300),
                                  "client_id": "test-client"}
        if nbf is not None:
            claims["nbf"] = int(nbf)
        if scopes is not None:
            claims[claim] = scopes
        claims.update(extra or {})
        signing = key or self.keys[-1]
        return jwt.encode({"alg": alg, "kid": signing.kid}, claims, signing)

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                idp.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    self._json({"issuer": idp.issuer, "jwks_uri": idp.url + "/jwks"})
                elif self.path == "/jwks":
                    self._json(KeySet(idp.keys).as_dict(private=False))
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:
                idp.requests.append(self.path)
                expected = "Basic " + base64.b64encode(":".join(idp.client).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._json({"error": "invalid_client"}, 401)
                    return
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                self._json(idp.opaque.get(form["token"][0], {"active": False}))

        return Handler


def foreign_key() -> RSAKey:
    """A key the IdP never published, with a kid it did."""
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec1"})
