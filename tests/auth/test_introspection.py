"""Opaque tokens through RFC 7662 introspection against the loopback IdP: the answer is remembered briefly."""

from __future__ import annotations

import time

import pytest

from dbmcp.auth import AuthError
from dbmcp.auth.introspection import CACHE_S, IntrospectionVerifier
from dbmcp.config import Introspection
from tests.auth.idp import LoopbackIdP

AUD = "https://dbmcp.test/mcp"


@pytest.fixture
async def setup():
    idp = LoopbackIdP()
    config = Introspection(url=f"{idp.url}/introspect", client_id=idp.client[0], client_secret=idp.client[1])
    verifier = IntrospectionVerifier(config, idp.issuer, AUD)
    yield idp, verifier
    await verifier.close()
    idp.close()


def _active(idp: LoopbackIdP, **claims: object) -> dict:
    return {"active": True, "sub": "bob", "client_id": "cli", "scope": "ops:read", "iss": idp.issuer, "aud": AUD,
            **claims}


async def test_an_active_token_is_asked_about_once_within_cache_s(setup, monkeypatch):
    idp, verifier = setup
    idp.opaque["tok-a"] = _active(idp)
    first = await verifier.verify("tok-a")
    assert first.subject == "bob" and first.scopes == {"ops:read"}
    assert await verifier.verify("tok-a") == first and idp.requests.count("/introspect") == 1
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + CACHE_S + 1)
    idp.opaque["tok-a"] = {"active": False}  # revoked meanwhile: the next question finds out
    with pytest.raises(AuthError):
        await verifier.verify("tok-a")
    assert idp.requests.count("/introspect") == 2


async def test_not_kept_past_exp_and_refusals_not_kept(setup, monkeypatch):
    idp, verifier = setup
    now = time.time()
    idp.opaque["short"] = _active(idp, exp=int(now) + 5)
    await verifier.verify("short")
    with pytest.raises(AuthError):
        await verifier.verify("not-yet")  # unknown: inactive
    idp.opaque["not-yet"] = _active(idp)
    assert (await verifier.verify("not-yet")).subject == "bob"  # the refusal was not remembered
    monkeypatch.setattr(time, "time", lambda: now + 10)
    idp.opaque["short"] = {"active": False}
    with pytest.raises(AuthError):
        await verifier.verify("short")  # its exp passed: asked again
