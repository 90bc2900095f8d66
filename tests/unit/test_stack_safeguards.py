"""`cift up` names every safeguard a local stack runs without; deploy/k8s runs with all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cift.runtime.config import ConfigError, load
from cift.stack.safeguards import missing_safeguards
from services.auth.config import AuthConfig

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"


def test_a_bare_laptop_stack_names_all_five_missing_safeguards() -> None:
    missing = missing_safeguards({}, ("postgres", "redis", "kafka"), "", "")
    assert len(missing) == 5
    assert any("CIFT_AUTH_SIGNING_KEY_SECRET" in m and "unencrypted" in m for m in missing)
    assert any("CIFT_AUTH_API_KEY_PEPPER" in m for m in missing)
    assert any("embedded PostgreSQL" in m for m in missing)
    assert any("embedded Redis" in m for m in missing)
    assert any("embedded broker" in m and "CIFT_KAFKA_BOOTSTRAP" in m for m in missing)


def test_a_stack_with_secrets_and_passworded_servers_misses_nothing() -> None:
    environ = {"CIFT_AUTH_SIGNING_KEY_SECRET": "s3cret", "CIFT_AUTH_API_KEY_PEPPER": "pepper"}
    assert (
        missing_safeguards(
            environ, (), "postgresql://cift:pw@db:5432/cift", "redis://:pw@redis:6379/0"
        )
        == []
    )
    assert missing_safeguards(
        environ, (), "postgresql://cift@db:5432/cift", "redis://redis:6379/0"
    ) == ["a PostgreSQL password in CIFT_DATABASE_URL", "a Redis password in CIFT_REDIS_URL"]


def test_auth_that_requires_its_secrets_refuses_to_start_without_them() -> None:
    with pytest.raises(ConfigError, match="CIFT_AUTH_SIGNING_KEY_SECRET and CIFT_AUTH_API_KEY"):
        load(AuthConfig, {"CIFT_AUTH_PRODUCTION_MODE": "true"})
    with pytest.raises(ConfigError, match="CIFT_AUTH_API_KEY_PEPPER must be set"):
        load(
            AuthConfig,
            {"CIFT_AUTH_PRODUCTION_MODE": "true", "CIFT_AUTH_SIGNING_KEY_SECRET": "s3cret"},
        )
    load(AuthConfig, {})  # a laptop: allowed, and `cift up` says what is missing


def _env_of(manifest: Path, container: str) -> dict[str, object]:
    for document in yaml.safe_load_all(manifest.read_text()):
        if not document or document.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        for spec in document["spec"]["template"]["spec"]["containers"]:
            if spec["name"] == container:
                return {entry["name"]: entry.get("valueFrom") for entry in spec.get("env", [])}
    raise AssertionError(f"no container {container} in {manifest}")


def test_kubernetes_auth_requires_its_secrets_and_takes_them_from_a_secret() -> None:
    assert "CIFT_AUTH_PRODUCTION_MODE=true" in (K8S / "config" / "auth.env").read_text()
    env = _env_of(K8S / "services" / "auth.yaml", "auth")
    for name in ("CIFT_AUTH_SIGNING_KEY_SECRET", "CIFT_AUTH_API_KEY_PEPPER", "CIFT_REDIS_URL"):
        reference = env[name]
        assert isinstance(reference, dict), name
        assert reference["secretKeyRef"].get("optional") is not True, name


def test_kubernetes_redis_demands_a_password_from_a_secret() -> None:
    text = (K8S / "data" / "redis.yaml").read_text()
    assert '"--requirepass"' in text
    env = _env_of(K8S / "data" / "redis.yaml", "redis")
    reference = env["REDIS_PASSWORD"]
    assert isinstance(reference, dict)
    assert reference["secretKeyRef"]["name"] == "cift-redis-auth"
    assert reference["secretKeyRef"].get("optional") is not True
