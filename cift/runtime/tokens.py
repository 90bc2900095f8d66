"""Verification of access JWTs against auth's published keys (JWKS).

Every service's interceptor calls `TokenVerifier.verify` on the credential a caller
sent (`authorization: Bearer` or the gateway's `x-cift-identity`) and gets back the
`Identity` the handlers act on. The rules are deliberately narrow: only EdDSA
(Ed25519) is accepted, the `kid` must name a key auth publishes, and issuer,
audience, expiry and not-before are always checked. This module must never accept
`none`, never an HMAC algorithm (an HS256 token "signed" with the public key is the
classic confusion attack), and never fetch a key from a URL named in a token header.

Auth's keys are fetched over gRPC (`GetJwks`) and cached for `jwks_cache_s`. A token
signed by a key the cache does not know triggers a refetch (auth may just have
rotated), but at most once per `min_refetch_interval_s`, so a stream of tokens with
invented kids cannot turn every request into a call to auth.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.extauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from cift.runtime.config import CommonConfig
from cift.runtime.errors import Unauthenticated, Unavailable
from cift.runtime.identity import (
    ALL_SCOPES,
    API_KEY_ID_CLAIM,
    IDENTITY_TOKEN_HEADER,
    Identity,
)

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# The allow-list handed to PyJWT; anything else (none, HS*, RS*) fails before any key is used.
ALLOWED_ALGORITHMS = (ALGORITHM,)
REQUIRED_CLAIMS = ("sub", "acct", "scope", "iss", "aud", "iat", "nbf", "exp", "jti")
# Clock skew tolerated between auth and the verifying host.
DEFAULT_LEEWAY_S = 10.0
# A real access token is well under 1 KB; refusing giants bounds parsing work.
MAX_TOKEN_CHARS = 4096
DEFAULT_MIN_REFETCH_INTERVAL_S = 5.0
DEFAULT_VERIFIED_CACHE_SIZE = 10_000

REASON_EXPIRED = "TOKEN_EXPIRED"
REASON_INVALID = "TOKEN_INVALID"

_INVALID_MESSAGE = "The access token is not valid; log in again to get a new one."


class UnknownKeyId(Unauthenticated):
    """The token names a signing key that the current JWKS does not contain."""


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def jwk_thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: a kid derived from the key itself, so it can never name two keys."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(public_key_bytes(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    """The JWK (RFC 8037) auth publishes for one signing key."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(public_key_bytes(key)),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def parse_jwk(jwk: Mapping[str, str]) -> tuple[str, Ed25519PublicKey]:
    """Read one published JWK; anything but an Ed25519 signing key is refused."""
    kid = jwk.get("kid", "")
    if not kid:
        raise ValueError("JWK has no kid")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError(f"JWK {kid!r} is not an Ed25519 key")
    if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
        raise ValueError(f"JWK {kid!r} is not an EdDSA signing key")
    raw = b64url_decode(jwk.get("x", ""))
    if len(raw) != 32:
        raise ValueError(f"JWK {kid!r} has a malformed public key")
    return kid, Ed25519PublicKey.from_public_bytes(raw)


def parse_jwks(jwks: Iterable[Mapping[str, str]]) -> dict[str, Ed25519PublicKey]:
    """Build the kid → key map, skipping (and logging) keys this verifier cannot use."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks:
        try:
            kid, key = parse_jwk(jwk)
        except ValueError as exc:
            log.warning("ignoring unusable JWK: %s", exc)
            continue
        keys[kid] = key
    return keys


def _string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    return value


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int subclass; `"exp": true` must not pass as 1970.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    return float(value)


def read_kid(token: str) -> str:
    """The token's kid, after refusing anything that is not a plausible EdDSA JWT."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID) from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    return kid


def verify_token(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway_s: float = DEFAULT_LEEWAY_S,
) -> tuple[Identity, float]:
    """Verify `token` against `keys` at wall-clock time `now`; return the identity and `exp`.

    Raises `UnknownKeyId` when the kid is not in `keys` (the caller may refetch and
    retry) and `Unauthenticated` for every other failure.
    """
    kid = read_kid(token)
    key = keys.get(kid)
    if key is None:
        raise UnknownKeyId(_INVALID_MESSAGE, reason=REASON_INVALID)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=list(ALLOWED_ALGORITHMS),
            audience=audience,
            issuer=issuer,
            # Time claims are checked below against the injected clock.
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID) from None
    expires_at = _numeric_claim(claims, "exp")
    not_before = _numeric_claim(claims, "nbf")
    issued_at = _numeric_claim(claims, "iat")
    if now > expires_at + leeway_s:
        raise Unauthenticated(
            "The access token has expired; refresh it or log in again.", reason=REASON_EXPIRED
        )
    if now + leeway_s < not_before or now + leeway_s < issued_at:
        raise Unauthenticated(
            "The access token is not valid yet; check your clock.", reason=REASON_INVALID
        )
    user_id = _string_claim(claims, "sub")
    account_id = _string_claim(claims, "acct")
    _string_claim(claims, "jti")
    scope = claims.get("scope")
    if not isinstance(scope, str):
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    scopes = frozenset(scope.split())
    if not scopes or not scopes <= ALL_SCOPES:
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    api_key_id = claims.get(API_KEY_ID_CLAIM, "")
    if not isinstance(api_key_id, str):
        raise Unauthenticated(_INVALID_MESSAGE, reason=REASON_INVALID)
    identity = Identity(
        user_id=user_id, account_id=account_id, scopes=scopes, token=token, api_key_id=api_key_id
    )
    return identity, expires_at


JwksFetch = Callable[[], Awaitable[Iterable[Mapping[str, str]]]]


class JwksCache:
    """Auth's public keys, refreshed when stale or when an unknown kid shows up (rate-limited)."""

    def __init__(
        self,
        fetch: JwksFetch,
        *,
        max_age_s: float,
        min_refetch_interval_s: float = DEFAULT_MIN_REFETCH_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._min_refetch_interval_s = min_refetch_interval_s
        self._monotonic = monotonic
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped whenever the key set changes

    @property
    def keys(self) -> Mapping[str, Ed25519PublicKey]:
        return self._keys

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None and self._monotonic() - self._fetched_at < self._max_age_s
        )

    def _may_refetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._monotonic() - self._attempted_at >= self._min_refetch_interval_s
        )

    async def current(self) -> Mapping[str, Ed25519PublicKey]:
        """The key set, refreshed first if it is older than `max_age_s`."""
        if not self._fresh() and self._may_refetch():
            await self._refresh()
        if not self._keys and self._lock.locked():
            # The first fetch is in flight (started by a concurrent caller): wait for
            # it rather than failing every request that arrives before it answers.
            async with self._lock:
                pass
        if not self._keys:
            raise Unavailable(
                "The auth service's signing keys are not available yet; retry shortly."
            )
        return self._keys

    async def refetch_for_unknown_kid(self, kid: str) -> bool:
        """Refetch because a token named `kid`; False when rate-limited or the kid is still unknown."""
        if kid in self._keys:
            return True
        if not self._may_refetch():
            return False
        await self._refresh()
        return kid in self._keys

    async def _refresh(self) -> None:
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            if self._attempted_at is not None and not self._may_refetch():
                return
            self._attempted_at = self._monotonic()
            try:
                keys = parse_jwks(await self._fetch())
            except Exception as exc:
                # Keep serving with the keys we have: auth being briefly down must not
                # log everybody out. With no keys at all, `current` reports UNAVAILABLE.
                log.warning("could not fetch JWKS from auth: %s", exc)
                return
            if keys.keys() != self._keys.keys():
                self.generation += 1
            self._keys = keys
            self._fetched_at = self._monotonic()


class TokenVerifier:
    """Turns a bearer token into an `Identity`; caches successful verifications until `exp`.

    Caching a verified token is as strong as verifying it again: access tokens are
    stateless and cannot be revoked before they expire. The cache is dropped when
    the key set changes, so a key auth withdraws stops working at the next refresh.
    """

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway_s: float = DEFAULT_LEEWAY_S,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._wall_clock = wall_clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._generation = jwks.generation

    async def verify(self, token: str) -> Identity:
        now = self._wall_clock()
        keys = await self._jwks.current()
        if self._generation != self._jwks.generation:
            self._verified.clear()
            self._generation = self._jwks.generation
        cached = self._verified.get(token)
        if cached is not None:
            identity, expires_at = cached
            if now <= expires_at + self._leeway_s:
                self._verified.move_to_end(token)
                return identity
            del self._verified[token]
        try:
            identity, expires_at = self._verify(token, keys, now)
        except UnknownKeyId:
            if not await self._jwks.refetch_for_unknown_kid(read_kid(token)):
                raise
            identity, expires_at = self._verify(token, self._jwks.keys, now)
        self._verified[token] = (identity, expires_at)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return identity

    def _verify(
        self, token: str, keys: Mapping[str, Ed25519PublicKey], now: float
    ) -> tuple[Identity, float]:
        return verify_token(
            token,
            keys,
            issuer=self._issuer,
            audience=self._audience,
            now=now,
            leeway_s=self._leeway_s,
        )


class JwksVerifier:
    """The default `CredentialVerifier` of every service except auth.

    Tokens are verified locally against auth's JWKS (fetched with `GetJwks`). An
    API key sent straight to a service (not through the gateway) is resolved by
    asking auth the gateway's own question (`Authorization/Check`) and verifying
    the identity token it answers with, so key revocation is honoured the same way.
    """

    def __init__(self, config: CommonConfig, *, rpc_timeout_s: float = 2.0) -> None:
        self._address = config.auth_addr
        self._rpc_timeout_s = rpc_timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._tokens = TokenVerifier(
            JwksCache(self._fetch_jwks, max_age_s=config.jwks_cache_s),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )

    def _open(self) -> grpc.aio.Channel:
        # Opened on first use, inside the running event loop.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._address)
        return self._channel

    async def _fetch_jwks(self) -> list[dict[str, str]]:
        stub = auth_pb2_grpc.AuthServiceStub(self._open())
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._rpc_timeout_s)
        return [
            {"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid, "alg": k.alg, "use": k.use}
            for k in response.keys
        ]

    async def verify_token(self, token: str) -> Identity:
        return await self._tokens.verify(token)

    async def verify_api_key(self, api_key: str) -> Identity:
        request = external_auth_pb2.CheckRequest()
        http = request.attributes.request.http
        http.method = "POST"
        http.headers["x-api-key"] = api_key
        stub = external_auth_pb2_grpc.AuthorizationStub(self._open())
        try:
            response = await stub.Check(request, timeout=self._rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"The auth service could not check the API key: {exc.code().name}."
            ) from None
        if response.status.code != 0:
            raise Unauthenticated(
                response.status.message or _INVALID_MESSAGE, reason="API_KEY_INVALID"
            )
        for option in response.ok_response.headers:
            if option.header.key == IDENTITY_TOKEN_HEADER:
                return await self.verify_token(option.header.value)
        raise Unauthenticated(_INVALID_MESSAGE, reason="API_KEY_INVALID")

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
