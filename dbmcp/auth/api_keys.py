"""`auth.mode: api_keys`: static bearer keys, kept only as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from dbmcp.auth import AuthError, Identity
from dbmcp.config import ApiKey


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate() -> tuple[str, str]:
    """A new random key and its sha256 (for `key_sha256:` in the config)."""
    key = "dbmcp_" + secrets.token_urlsafe(32)
    return key, digest(key)


class ApiKeyVerifier:
    def __init__(self, keys: list[ApiKey]):
        self._keys = [
            (
                bytes.fromhex(k.key_sha256 if k.key_sha256 else digest(k.key or "")),
                Identity(subject=k.name, client_id=k.name, scopes=frozenset(k.scopes)),
            )
            for k in keys
        ]

    def check(self, token: str) -> Identity:
        """verify without an await: a key needs no I/O, and the gate calls this on every request."""
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for key_digest, identity in self._keys:  # compare with every key: time does not depend on which matched
            if hmac.compare_digest(presented, key_digest):
                found = identity
        if found is None:
            raise AuthError("unknown API key")
        return found

    async def verify(self, token: str) -> Identity:
        return self.check(token)

    async def close(self) -> None:
        return None
