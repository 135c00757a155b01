"""JWT access tokens against a real JWKS on loopback: every forgery is refused, legitimate shapes accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from dbmcp.auth import AuthError
from dbmcp.auth.jwt import CACHE_S, LEEWAY_S, JwtVerifier
from tests.auth.idp import LoopbackIdP, ec_key, foreign_key

AUD = "https://dbmcp.test/mcp"


@pytest.fixture
def idp():
    server = LoopbackIdP()
    yield server
    server.close()


@pytest.fixture
async def verifier(idp):
    v = JwtVerifier(idp.issuer, AUD)  # no jwks_uri: discovered from the issuer's metadata
    yield v
    await v.close()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token_gives_identity_and_scopes(idp, verifier):
    identity = await verifier.verify(idp.token("sales:read logs:schema"))
    assert identity.subject == "alice" and identity.client_id == "test-client"
    assert identity.scopes == {"sales:read", "logs:schema"}
    assert "/.well-known/openid-configuration" in idp.requests and "/jwks" in idp.requests


@pytest.mark.parametrize(
    ("claim", "value", "expected"),
    [("scope", "a b", {"a", "b"}), ("scp", "a b", {"a", "b"}), ("scp", ["a", "b"], {"a", "b"}),
     ("scope", None, set())],
)
async def test_scope_shapes_of_the_usual_idps(idp, verifier, claim, value, expected):
    assert (await verifier.verify(idp.token(value, claim=claim))).scopes == expected


async def test_audience_may_be_a_list(idp, verifier):
    assert (await verifier.verify(idp.token(audience=["other", AUD]))).subject == "alice"


async def test_ec_keys_are_accepted(idp, verifier):
    key = ec_key()
    idp.keys.append(key)
    assert (await verifier.verify(idp.token(key=key, alg="ES256"))).subject == "alice"


async def test_key_rotation_refetches_on_unknown_kid(idp, verifier):
    await verifier.verify(idp.token())
    fetches = idp.requests.count("/jwks")
    idp.rotate()
    verifier.jwks._fetched_at -= 60  # the refresh rate limit has passed
    assert (await verifier.verify(idp.token())).subject == "alice"
    assert idp.requests.count("/jwks") == fetches + 1


async def test_unknown_kid_refetch_is_rate_limited(idp, verifier):
    await verifier.verify(idp.token())
    fetches = idp.requests.count("/jwks")
    stranger = foreign_key()
    stranger_token = jwt.encode({"alg": "RS256", "kid": "nope"}, {"iss": idp.issuer, "aud": AUD,
                                                                   "exp": int(time.time()) + 60}, stranger)
    for _ in range(5):
        with pytest.raises(AuthError, match="unknown key"):
            await verifier.verify(stranger_token)
    assert idp.requests.count("/jwks") == fetches  # fetched just now: no refetch storm


def _count_decodes(monkeypatch) -> list[int]:
    decodes: list[int] = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: (decodes.append(1), real(*a, **k))[1])
    return decodes


async def test_a_verified_token_is_remembered_by_digest_never_past_its_exp(idp, verifier, monkeypatch):
    now = time.time()
    token = idp.token(exp=now + 5)
    decodes = _count_decodes(monkeypatch)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first and len(decodes) == 1  # the next request skips the signature
    assert token not in repr(verifier._verified._kept) and token.split(".")[2] not in repr(verifier._verified._kept)
    monkeypatch.setattr(time, "time", lambda: now + 5 + LEEWAY_S + 1)  # past exp (and the leeway)
    with pytest.raises(AuthError, match="token expired"):
        await verifier.verify(token)


async def test_a_remembered_token_is_verified_again_after_cache_s_and_refusals_are_not_kept(idp, verifier,
                                                                                               monkeypatch):
    now = time.time()
    token, early = idp.token(exp=now + 3600), idp.token(nbf=now + 60, exp=now + 3600)
    decodes = _count_decodes(monkeypatch)
    await verifier.verify(token)
    with pytest.raises(AuthError, match="not yet valid"):
        await verifier.verify(early)
    monkeypatch.setattr(time, "time", lambda: now + CACHE_S + 1)
    assert (await verifier.verify(token)).subject == "alice" and len(decodes) == 3  # checked anew
    assert (await verifier.verify(early)).subject == "alice"  # its refusal a minute ago was not remembered


def _forgeries(idp: LoopbackIdP) -> dict[str, tuple[str, str]]:
    now = time.time()
    good = idp.token()
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    public_pem = idp.keys[0].as_pem(private=False)  # the classic confusion: the public key as an HMAC secret
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1'})}.{payload}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hs = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return {
        "expired": (idp.token(exp=now - 120), "expired"),
        "future nbf": (idp.token(nbf=now + 600), "not yet valid"),
        "wrong issuer": (idp.token(issuer="https://evil.example/"), "issuer"),
        "wrong audience": (idp.token(audience="https://other.example/mcp"), "audience"),
        "missing audience": (idp.token(extra={"aud": None}), "audience"),
        "foreign key, known kid": (idp.token(key=foreign_key()), "signature"),
        "alg none": (f"{_b64({'alg': 'none', 'kid': 'k1'})}.{payload}.", "algorithm"),
        "HS256 with the public key": (hs, "algorithm"),
        "tampered payload": (f"{header}.{_b64({**claims, 'scope': 'everything:read'})}.{signature}", "signature"),
        "unknown kid": (jwt.encode({"alg": "RS256", "kid": "zz"}, claims, foreign_key()), "unknown key"),
        "garbage": ("not.a.token", "malformed"),
    }


async def test_forgeries_are_refused(idp, verifier):
    for name, (token, reason) in _forgeries(idp).items():
        with pytest.raises(AuthError) as e:
            await verifier.verify(token)
        assert reason in str(e.value), (name, str(e.value))


async def test_explicit_jwks_uri_skips_discovery(idp):
    v = JwtVerifier(idp.issuer, AUD, jwks_uri=idp.url + "/jwks")
    try:
        assert (await v.verify(idp.token())).subject == "alice"
        assert "/.well-known/openid-configuration" not in idp.requests
    finally:
        await v.close()


async def test_unreachable_issuer_is_a_clean_refusal():
    v = JwtVerifier("http://127.0.0.1:1/", AUD)
    try:
        key = foreign_key()
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, {"iss": "http://127.0.0.1:1/"}, key)
        with pytest.raises(AuthError, match="signing keys are unavailable"):
            await v.verify(token)
    finally:
        await v.close()


def test_keyset_has_no_private_parts(idp):
    published = KeySet(idp.keys).as_dict(private=False)
    assert all("d" not in k for k in published["keys"])
