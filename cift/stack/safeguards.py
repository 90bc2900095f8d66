"""What a local stack runs without, said once at `cift up` so nobody mistakes it for production.

Fine on a laptop, wrong anywhere shared: signing keys stored unencrypted, API-key hashes
not keyed by a server secret, an embedded PostgreSQL that trusts every local user, a
Redis without a password, an embedded broker that never deletes a record (Tansu 0.6's
memory engine applies no retention: `cift up` bounds its memory by restarting it empty,
see docs/RELIABILITY.md). deploy/k8s sets all of them (and auth refuses to start there
without its secrets, CIFT_AUTH_PRODUCTION_MODE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from cift.runtime.config import env_name


def _has_password(url: str) -> bool:
    return bool(urlsplit(url).password)


def missing_safeguards(
    environ: Mapping[str, str], embedded: Sequence[str], database_url: str, redis_url: str
) -> list[str]:
    """One phrase per safeguard this stack runs without, naming the variable that adds it."""
    missing = []
    if not environ.get(env_name("auth_signing_key_secret"), "").strip():
        missing.append(
            "a signing-key secret: auth stores its signing keys unencrypted "
            "(set CIFT_AUTH_SIGNING_KEY_SECRET)"
        )
    if not environ.get(env_name("auth_api_key_pepper"), "").strip():
        missing.append(
            "an API-key pepper: API-key hashes are not keyed by a server secret "
            "(set CIFT_AUTH_API_KEY_PEPPER)"
        )
    # Both stores are judged alike: an embedded one lets in anyone on the machine, a
    # server only whoever knows the password its URL carries.
    for component, store, url, variable, local_caller in (
        ("postgres", "PostgreSQL", database_url, "CIFT_DATABASE_URL", "user"),
        ("redis", "Redis", redis_url, "CIFT_REDIS_URL", "process"),
    ):
        if component in embedded:
            missing.append(
                f"a {store} password: the embedded {store} lets any local {local_caller} in "
                f"(set {variable} to a server with one)"
            )
        elif not _has_password(url):
            missing.append(f"a {store} password in {variable}")
    if "kafka" in embedded:
        missing.append(
            "broker retention: the embedded broker keeps every record in memory and deletes "
            "none; `cift up` restarts it, empty, once past CIFT_KAFKA_MEMORY_LIMIT_MIB and read "
            "by every consumer (set CIFT_KAFKA_BOOTSTRAP to a Kafka with retention)"
        )
    return missing
