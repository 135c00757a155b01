"""API keys: digests only, every key compared, the key's scopes and name as identity."""

from __future__ import annotations

import pytest

from dbmcp.auth import AuthError
from dbmcp.auth.api_keys import ApiKeyVerifier, digest, generate
from dbmcp.cli import main
from dbmcp.config import ApiKey


async def test_keys_by_digest_or_value():
    verifier = ApiKeyVerifier([
        ApiKey(name="a", key_sha256=digest("first-key-0123456789"), scopes=["s:read"]),
        ApiKey(name="b", key="second-key-0123456789", scopes=["t:schema"]),
    ])
    a = await verifier.verify("first-key-0123456789")
    assert (a.subject, a.client_id, a.scopes) == ("a", "a", {"s:read"})
    assert (await verifier.verify("second-key-0123456789")).scopes == {"t:schema"}
    for bad in ("first-key-012345678", "", "FIRST-KEY-0123456789", digest("first-key-0123456789")):
        with pytest.raises(AuthError, match="unknown API key"):
            await verifier.verify(bad)


def test_generate_and_keygen(capsys):
    key, key_digest = generate()
    assert key.startswith("dbmcp_") and len(key) > 40 and digest(key) == key_digest
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    printed_key = out.split("key:")[1].split()[0]
    assert digest(printed_key) in out
