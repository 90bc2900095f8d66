"""Settings only the auth service reads (on top of `CommonConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from cift.runtime.config import CommonConfig, ConfigError, setting

DAY_S = 24 * 3600.0
# What the gateway lets through without a credential: signing in, and the public keys.
DEFAULT_PUBLIC_PATHS = (
    "/cift.auth.v1.AuthService/Register",
    "/cift.auth.v1.AuthService/Login",
    "/cift.auth.v1.AuthService/RefreshToken",
    "/cift.auth.v1.AuthService/GetJwks",
    "/v1/auth/register",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/auth/jwks",
    "/grpc.health.v1.Health/Check",
)


@dataclass(frozen=True)
class AuthConfig(CommonConfig):
    auth_bcrypt_cost: int = setting(
        12, "bcrypt cost (log2 rounds) for password hashes; 4 only in tests."
    )
    auth_access_token_ttl_s: float = setting(
        900.0, "Lifetime of access JWTs returned by Login/RefreshToken."
    )
    auth_identity_token_ttl_s: float = setting(
        60.0, "Lifetime of the x-cift-identity JWT the gateway check mints per caller."
    )
    auth_refresh_token_ttl_s: float = setting(
        30 * DAY_S, "Lifetime of a refresh token (renewed on rotation)."
    )
    auth_signing_key_secret: str = setting(
        "",
        "Secret that encrypts signing private keys at rest (empty: stored unencrypted, with a warning).",
    )
    auth_signing_key_rotate_s: float = setting(
        30 * DAY_S, "Age after which a new signing key takes over."
    )
    auth_api_key_pepper: str = setting(
        "",
        "Server-side key of the API-key hash (empty: unkeyed; changing it invalidates every key).",
    )
    auth_api_key_cache_s: float = setting(
        5.0,
        "How long a checked API key is reused without a database read (upper bound on revocation delay).",
    )
    auth_login_free_failures: int = setting(
        5,
        "Failed logins for one email from one address before each further attempt from "
        "there must wait (the owner elsewhere is never locked out).",
    )
    auth_login_backoff_base_s: float = setting(
        1.0, "First wait after the free failures; it doubles with each further failure."
    )
    auth_login_backoff_max_s: float = setting(
        300.0, "Longest wait between login attempts for one email from one address."
    )
    auth_login_max_failures_per_address: int = setting(
        50, "Failed logins per client address (over all emails) per window before throttling."
    )
    auth_login_failure_window_s: float = setting(
        900.0,
        "How long failed logins are remembered: the per-address window, and the time after "
        "the last failure at which one email's count from one address starts over.",
    )
    auth_production_mode: bool = setting(
        False,
        "Refuse to start without CIFT_AUTH_SIGNING_KEY_SECRET and CIFT_AUTH_API_KEY_PEPPER "
        "(deploy/k8s sets it; a laptop's `cift up` runs without and says so).",
    )
    auth_public_paths: tuple[str, ...] = setting(
        DEFAULT_PUBLIC_PATHS,
        "Request paths the gateway check lets through without a credential (comma separated).",
    )

    def __post_init__(self) -> None:
        if not self.auth_production_mode:
            return
        missing = [
            name
            for name, value in (
                ("CIFT_AUTH_SIGNING_KEY_SECRET", self.auth_signing_key_secret),
                ("CIFT_AUTH_API_KEY_PEPPER", self.auth_api_key_pepper),
            )
            if not value.strip()
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} must be set: CIFT_AUTH_PRODUCTION_MODE is true"
            )
