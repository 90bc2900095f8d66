"""Access-token verification: what every service accepts, and every forgery it must refuse."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cift.runtime.errors import Unauthenticated, Unavailable
from cift.runtime.tokens import (
    DEFAULT_LEEWAY_S,
    JwksCache,
    TokenVerifier,
    UnknownKeyId,
    b64url_encode,
    jwk_thumbprint,
    parse_jwk,
    parse_jwks,
    public_jwk,
    verify_token,
)

ISSUER = "cift-auth"
AUDIENCE = "cift"
NOW = 1_700_000_000.0


def _key() -> tuple[str, Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    return jwk_thumbprint(private.public_key()), private


KID, PRIVATE = _key()
KEYS: dict[str, Ed25519PublicKey] = {KID: PRIVATE.public_key()}


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "user-1",
        "acct": "acct-1",
        "scope": "read trade",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 900,
        "jti": "j-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: Mapping[str, Any], *, kid: str = KID, key: Ed25519PrivateKey = PRIVATE) -> str:
    return jwt.encode(dict(payload), key, algorithm="EdDSA", headers={"kid": kid})


def verify(token: str, *, now: float = NOW) -> Any:
    return verify_token(token, KEYS, issuer=ISSUER, audience=AUDIENCE, now=now)


def forge(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [
            b64url_encode(json.dumps(header).encode()),
            b64url_encode(json.dumps(payload).encode()),
            b64url_encode(signature),
        ]
    )


def test_valid_token_yields_identity_with_scopes_and_token() -> None:
    token = sign(claims())
    identity, expires_at = verify(token)
    assert identity.user_id == "user-1"
    assert identity.account_id == "acct-1"
    assert identity.scopes == frozenset({"read", "trade"})
    assert identity.token == token
    assert expires_at == NOW + 900


def test_alg_none_is_refused() -> None:
    token = forge({"alg": "none", "kid": KID, "typ": "JWT"}, claims())
    with pytest.raises(Unauthenticated):
        verify(token)


def test_alg_none_with_admin_scope_and_no_kid_is_refused() -> None:
    token = forge({"alg": "none"}, claims(scope="admin"))
    with pytest.raises(Unauthenticated):
        verify(token)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    public_raw = KEYS[KID].public_bytes(Encoding.Raw, PublicFormat.Raw)
    public_pem = KEYS[KID].public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for secret in (public_raw, public_pem, json.dumps(public_jwk(KID, KEYS[KID])).encode()):
        header = {"alg": "HS256", "kid": KID, "typ": "JWT"}
        signing_input = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(claims()).encode())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(Unauthenticated):
            verify(f"{signing_input}.{b64url_encode(mac)}")


def test_rs256_and_es256_algorithms_are_refused() -> None:
    for alg in ("RS256", "ES256", "PS256", "HS512"):
        token = forge({"alg": alg, "kid": KID}, claims(), b"x" * 64)
        with pytest.raises(Unauthenticated):
            verify(token)


def test_unknown_kid_is_refused_as_unknown_key() -> None:
    other_kid, other = _key()
    with pytest.raises(UnknownKeyId):
        verify(sign(claims(), kid=other_kid, key=other))


def test_known_kid_with_another_keys_signature_is_refused() -> None:
    _, other = _key()
    with pytest.raises(Unauthenticated) as caught:
        verify(sign(claims(), kid=KID, key=other))
    assert not isinstance(caught.value, UnknownKeyId)


def test_missing_kid_is_refused() -> None:
    token = jwt.encode(claims(), PRIVATE, algorithm="EdDSA")
    with pytest.raises(Unauthenticated):
        verify(token)


def test_expired_token_is_refused_with_expiry_reason() -> None:
    token = sign(claims(exp=int(NOW) - 60))
    with pytest.raises(Unauthenticated) as caught:
        verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"
    assert "expired" in caught.value.message


SKEW = int(DEFAULT_LEEWAY_S)


def test_small_clock_skew_is_tolerated_on_both_ends() -> None:
    expired_within_skew = sign(claims(exp=int(NOW) - SKEW))
    identity, expires_at = verify(expired_within_skew)
    assert (identity.user_id, identity.account_id, identity.token) == (
        "user-1",
        "acct-1",
        expired_within_skew,
    )
    assert expires_at == NOW - SKEW
    with pytest.raises(Unauthenticated, match="expired"):
        verify(sign(claims(exp=int(NOW) - SKEW - 1)))

    early_within_skew = sign(claims(nbf=int(NOW) + SKEW, iat=int(NOW) + SKEW))
    identity, expires_at = verify(early_within_skew)
    assert (identity.user_id, identity.scopes, identity.token) == (
        "user-1",
        frozenset({"read", "trade"}),
        early_within_skew,
    )
    assert expires_at == NOW + 900
    with pytest.raises(Unauthenticated, match="not valid yet"):
        verify(sign(claims(nbf=int(NOW) + SKEW + 1, iat=int(NOW) + SKEW)))
    with pytest.raises(Unauthenticated, match="not valid yet"):
        verify(sign(claims(nbf=int(NOW) + SKEW, iat=int(NOW) + SKEW + 1)))


def test_not_yet_valid_token_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        verify(sign(claims(nbf=int(NOW) + 300)))
    assert "not valid yet" in caught.value.message


def test_token_issued_in_the_future_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(iat=int(NOW) + 300)))


def test_wrong_audience_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(aud="some-other-app")))


def test_wrong_issuer_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(iss="evil-auth")))


@pytest.mark.parametrize(
    "missing", ["sub", "acct", "scope", "iss", "aud", "iat", "nbf", "exp", "jti"]
)
def test_every_required_claim_must_be_present(missing: str) -> None:
    payload = claims()
    del payload[missing]
    with pytest.raises(Unauthenticated):
        verify(sign(payload))


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": ""},
        {"sub": 42},
        {"acct": ["a"]},
        {"scope": "read superuser"},
        {"scope": ""},
        {"scope": ["read"]},
        {"exp": "tomorrow"},
        {"exp": True},
    ],
)
def test_malformed_claims_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(**bad)))


def test_tampered_payload_is_refused() -> None:
    token = sign(claims())
    header, _, signature = token.split(".")
    elevated = b64url_encode(
        json.dumps(claims(scope="read trade admin", acct="someone-else")).encode()
    )
    with pytest.raises(Unauthenticated):
        verify(f"{header}.{elevated}.{signature}")


def test_tampered_header_kid_is_refused() -> None:
    token = sign(claims())
    _, payload, signature = token.split(".")
    header = b64url_encode(json.dumps({"alg": "EdDSA", "kid": KID, "typ": "JWT", "x": 1}).encode())
    with pytest.raises(Unauthenticated):
        verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "...", "x" * 5000, "Bearer x.y.z"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        verify(garbage)


def test_jwk_round_trip_and_thumbprint_kid() -> None:
    jwk = public_jwk(KID, KEYS[KID])
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
    kid, key = parse_jwk(jwk)
    assert kid == KID
    assert jwk_thumbprint(key) == KID


def test_rfc8037_thumbprint_example() -> None:
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 public key.
    raw = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = Ed25519PublicKey.from_public_bytes(raw)
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "kid": "k", "n": "x", "e": "AQAB"},
        {"kty": "oct", "kid": "k", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "X25519", "kid": "k", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes(32))},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64url_encode(bytes(32)), "alg": "HS256"},
    ],
)
def test_unusable_jwks_are_skipped(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        parse_jwk(jwk)
    assert parse_jwks([jwk, public_jwk(KID, KEYS[KID])]).keys() == {KID}


class FakeAuth:
    """Serves a JWKS and counts fetches, like auth's GetJwks would."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = dict(keys)
        self.fetches = 0
        self.down = False

    async def fetch(self) -> Iterable[Mapping[str, str]]:
        self.fetches += 1
        if self.down:
            raise ConnectionError("auth is down")
        return [public_jwk(kid, key) for kid, key in self.keys.items()]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def verifier_for(auth: FakeAuth, clock: Clock, *, max_age_s: float = 60.0) -> TokenVerifier:
    cache = JwksCache(auth.fetch, max_age_s=max_age_s, min_refetch_interval_s=5.0, monotonic=clock)
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, wall_clock=clock)


async def test_verifier_fetches_jwks_once_and_reuses_it() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    for jti in range(5):
        identity = await verifier.verify(sign(claims(jti=str(jti))))
        assert identity.user_id == "user-1"
    assert auth.fetches == 1


async def test_verifier_refreshes_stale_jwks() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock, max_age_s=60)
    await verifier.verify(sign(claims()))
    clock.t += 61
    await verifier.verify(sign(claims(iat=int(clock.t), nbf=int(clock.t), exp=int(clock.t) + 60)))
    assert auth.fetches == 2


async def test_rotated_key_is_picked_up_by_refetch_on_unknown_kid() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    await verifier.verify(sign(claims()))
    new_kid, new_key = _key()
    auth.keys[new_kid] = new_key.public_key()
    clock.t += 6
    t = int(clock.t)
    identity = await verifier.verify(
        sign(claims(iat=t, nbf=t, exp=t + 60), kid=new_kid, key=new_key)
    )
    assert identity.user_id == "user-1"
    assert auth.fetches == 2


async def test_bogus_kids_cannot_hammer_auth() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    await verifier.verify(sign(claims()))
    for i in range(100):
        bogus_kid, bogus = _key()
        with pytest.raises(Unauthenticated):
            await verifier.verify(sign(claims(jti=str(i)), kid=bogus_kid, key=bogus))
    # The first load was under 5 s ago, so no bogus kid caused a refetch.
    assert auth.fetches == 1
    clock.t += 5
    for i in range(100):
        with pytest.raises(Unauthenticated):
            await verifier.verify(sign(claims(jti=str(i)), kid=f"bogus-{i}", key=PRIVATE))
    assert auth.fetches == 2


async def test_auth_down_at_start_is_unavailable_not_unauthenticated() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    auth.down = True
    verifier = verifier_for(auth, clock)
    with pytest.raises(Unavailable):
        await verifier.verify(sign(claims()))


async def test_auth_down_later_keeps_the_cached_keys() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    await verifier.verify(sign(claims()))
    auth.down = True
    clock.t += 120
    t = int(clock.t)
    identity = await verifier.verify(sign(claims(iat=t, nbf=t, exp=t + 60)))
    assert identity.account_id == "acct-1"


async def test_cached_verification_still_expires() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    token = sign(claims(exp=int(NOW) + 30))
    await verifier.verify(token)
    clock.t += 60
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


async def test_withdrawn_key_stops_verifying_after_refresh() -> None:
    auth, clock = FakeAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock, max_age_s=60)
    token = sign(claims(exp=int(NOW) + 600))
    await verifier.verify(token)
    new_kid, new_key = _key()
    auth.keys = {new_kid: new_key.public_key()}
    clock.t += 61
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_real_clock_default_accepts_a_fresh_token() -> None:
    auth = FakeAuth(KEYS)
    cache = JwksCache(auth.fetch, max_age_s=60)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    now = int(time.time())
    identity = await verifier.verify(sign(claims(iat=now, nbf=now, exp=now + 60)))
    assert identity.scopes == frozenset({"read", "trade"})


async def test_concurrent_first_verifications_wait_for_the_one_jwks_fetch() -> None:
    class SlowAuth(FakeAuth):
        async def fetch(self) -> Iterable[Mapping[str, str]]:
            await asyncio.sleep(0.05)  # callers arrive while the first fetch is in flight
            return await super().fetch()

    auth, clock = SlowAuth(KEYS), Clock(NOW)
    verifier = verifier_for(auth, clock)
    identities = await asyncio.gather(
        *(verifier.verify(sign(claims(jti=str(jti)))) for jti in range(8))
    )
    assert [i.user_id for i in identities] == ["user-1"] * 8
    assert auth.fetches == 1
