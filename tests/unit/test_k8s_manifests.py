"""The Kubernetes manifests in deploy/k8s, checked the way a cluster and an auditor would.

Every overlay is rendered with `kubectl kustomize`; the output must pass the
Kubernetes schemas strictly (`kubernetes-validate`), checkov's security checks, and
Envoy's own validation of the gateway config. Beyond what those tools know, the
manifests are compared with the code they deploy, so they cannot drift from it:
every CIFT_* variable is one the service's config class declares, every port and
command is the one the service really uses, the topics are the runtime's, and the
NetworkPolicies admit exactly the flows of the architecture and nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from cift.protogen import build_descriptor_set
from cift.runtime.config import SERVICE_PORTS, CommonConfig, declared_settings
from cift.runtime.kafka import TOPICS
from cift.runtime.server import ServiceSpec
from cift.stack.gateway import web_served_files

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CONTAINERFILE = REPO / "deploy" / "Containerfile"
OVERLAYS = ("dev", "prod")
SERVICES = tuple(SERVICE_PORTS)
# Every Deployment that runs a service process, and which service it runs. The feed
# is a second marketdata Deployment: the one process that publishes ticks.
SERVICE_DEPLOYMENTS = {
    "cift-auth": "auth",
    "cift-marketdata": "marketdata",
    "cift-marketdata-feed": "marketdata",
    "cift-marketdata-ingest": "marketdata",
    "cift-execution": "execution",
    "cift-risk": "risk",
    "cift-backtest": "backtest",
}
# Deployments that must run exactly one pod, and why.
SINGLETONS = {
    "cift-marketdata-feed": "two feeds would publish every tick twice",
    "cift-execution": "the fill engine's book of resting orders lives in one process",
    "cift-redis": "rate-limit buckets and caches live in one unreplicated Redis",
}
SCALABLE = (
    "cift-auth",
    "cift-marketdata",
    "cift-marketdata-ingest",
    "cift-risk",
    "cift-backtest",
    "cift-gateway",
)
# Deployments that run another command of their service's entry point than `serve`.
COMMANDS = {"cift-marketdata-ingest": ["ingest"]}
APP_IMAGE = "cift-markets"
# The oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27,
# the preStop sleep action is on by default since 1.30) and the newest schema known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources of the operators the deployment relies on; kubernetes-validate has
# no schema for them and only warns. Any other schema-less kind is an error.
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# Checks the manifests skip, each with the reason written next to its annotation.
ALLOWED_SKIPS = {
    "CKV_K8S_35": "secrets as env vars: the CIFT config is environment variables only",
    "CKV_K8S_43": "image digests: only the operator's release pipeline knows them",
    "CKV_K8S_15": "pull policy: dev runs an image loaded onto the node (dev overlay only)",
}
SECRET_SETTING = re.compile(r"URL|SECRET|PEPPER|PASSWORD|KEY$")

Doc = dict[str, Any]


# --------------------------------------------------------------------------- rendering


def kubectl() -> str:
    found = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )
    if found is None:
        pytest.fail("kubectl is needed to render the Kustomize overlays (kubectl kustomize)")
    return found


@dataclass(frozen=True)
class Rendered:
    overlay: str
    text: str
    docs: tuple[Doc, ...]

    @property
    def namespace(self) -> str:
        (ns,) = [d["metadata"]["name"] for d in self.docs if d["kind"] == "Namespace"]
        return str(ns)

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def config_map(self, name: str) -> Doc:
        """A ConfigMap by the name a rendered reference carries (with the generator's hash)."""
        return self.one("ConfigMap", name)


def render(overlay: str) -> Rendered:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    return Rendered(overlay, result.stdout, docs)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Rendered]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    return rendered[request.param]


# ------------------------------------------------------------------------ pod helpers


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def containers(workload: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def workloads(r: Rendered) -> list[Doc]:
    return [*r.of_kind("Deployment"), *r.of_kind("Job")]


def service_deployment(r: Rendered, service: str) -> Doc:
    return r.one("Deployment", f"cift-{service}")


def app_container(r: Rendered, service: str, deployment: str | None = None) -> Doc:
    """The service container of `cift-<service>` (or of the named Deployment)."""
    workload = r.one("Deployment", deployment or f"cift-{service}")
    (container,) = pod_spec(workload)["containers"]
    return container  # type: ignore[no-any-return]


def env_of(r: Rendered, container: Doc) -> dict[str, Doc]:
    """Every variable a container gets: ConfigMap keys via envFrom, then env (which wins)."""
    env: dict[str, Doc] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected envFrom source {source}"
        data = r.config_map(source["configMapRef"]["name"]).get("data") or {}
        for key, value in data.items():
            env[key] = {"name": key, "value": value, "configMap": source["configMapRef"]["name"]}
    for entry in container.get("env", []):
        env[entry["name"]] = entry
    return env


def load_spec(service: str) -> ServiceSpec[Any]:
    module = importlib.import_module(f"services.{service}.__main__")
    spec = module.SPEC
    assert isinstance(spec, ServiceSpec)
    return spec


def config_class(service: str) -> type[CommonConfig]:
    """The config class the service process loads (`ServiceSpec.config_type`).

    When a service declares its own class in services/<svc>/config.py but its entry
    point still loads another, the variables of the unused class would be ignored at
    run time, so this is the class the manifests are checked against.
    """
    return load_spec(service).config_type


def tool_module() -> ModuleType:
    path = REPO / "tools" / "render_gateway_k8s.py"
    spec = importlib.util.spec_from_file_location("render_gateway_k8s", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------- rendering and validation


def test_every_overlay_renders_the_same_resources_in_its_own_namespace(
    rendered: dict[str, Rendered],
) -> None:
    def names(r: Rendered) -> set[tuple[str, str]]:
        # Generated ConfigMap names end in a content hash that differs per overlay.
        return {
            (
                d["kind"],
                re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
                if d["kind"] == "ConfigMap"
                else d["metadata"]["name"],
            )
            for d in r.docs
            if d["kind"] != "Namespace"
        }

    assert names(rendered["dev"]) == names(rendered["prod"])
    assert rendered["dev"].namespace == "cift-dev"
    assert rendered["prod"].namespace == "cift"
    for r in rendered.values():
        for doc in r.docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == r.namespace, doc["metadata"]["name"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_pass_strict_schema_validation(overlay: Rendered, version: str) -> None:
    errors: list[str] = []
    for doc in overlay.docs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
                errors.append(f"{where}: no schema for {doc['apiVersion']} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{where}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, Rendered]) -> None:
    deployment = json.loads(json.dumps(service_deployment(rendered["prod"], "risk")))
    pod_spec(deployment)["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_cli_validator_accepts_every_rendered_overlay(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    """The same check an operator runs by hand: `kubernetes-validate --strict`."""
    files = []
    for name, r in rendered.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(r.text)
        files.append(str(path))
    cli = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(cli), "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[0], *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_no_failed_check_and_only_justified_skips(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    for name, r in rendered.items():
        (tmp_path / f"{name}.yaml").write_text(r.text)
    checkov = Path(sys.executable).parent / "checkov"
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        # No call home for guideline mappings: the check runs offline.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    for check in results["skipped_checks"]:
        assert check["check_id"] in ALLOWED_SKIPS, check
        assert len(check["check_result"]["suppress_comment"]) > 20, check
    prod_skips = {c["check_id"] for c in results["skipped_checks"] if "prod.yaml" in c["file_path"]}
    assert "CKV_K8S_15" not in prod_skips, "prod must pull its pinned image"


def test_every_checkov_skip_annotation_has_a_comment_above_it() -> None:
    """A skip in the sources (an annotation, or a patch adding one) is explained right above."""
    skip = re.compile(r"checkov\.io(/|~1)skip")
    skips = 0
    for source in K8S.rglob("*.yaml"):
        lines = source.read_text().splitlines()
        for index, line in enumerate(lines):
            if skip.search(line):
                skips += 1
                # In a JSON patch the comment sits above the `- op: add` that holds the path.
                above = [text.strip() for text in lines[max(index - 2, 0) : index]]
                assert any(text.startswith("#") for text in above), (
                    f"{source}:{index + 1}: explain the skip in a comment above it"
                )
    assert skips > 0


# ------------------------------------------------------ drift against the service code


def test_the_service_deployments_are_the_known_ones(overlay: Rendered) -> None:
    running = {
        d["metadata"]["name"]
        for d in overlay.of_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "service"
    }
    assert running == set(SERVICE_DEPLOYMENTS)
    assert set(SERVICE_DEPLOYMENTS.values()) == set(SERVICES)


@pytest.mark.parametrize(("deployment", "service"), SERVICE_DEPLOYMENTS.items())
def test_service_env_vars_are_declared_by_its_config_class(
    overlay: Rendered, deployment: str, service: str
) -> None:
    declared = declared_settings(config_class(service))
    env = env_of(overlay, app_container(overlay, service, deployment))
    assert env, "a service without configuration cannot find its peers"
    unknown = sorted(name for name in env if name not in declared)
    assert not unknown, f"{service} does not read {unknown} ({config_class(service).__name__})"


def test_migration_job_env_vars_are_declared_by_each_service_config(overlay: Rendered) -> None:
    job = overlay.one("Job", "cift-migrate")
    for container in containers(job):
        service = container["command"][2].removeprefix("services.")
        declared = declared_settings(config_class(service))
        unknown = sorted(name for name in env_of(overlay, container) if name not in declared)
        assert not unknown, f"migrate {service} does not read {unknown}"


def test_every_config_map_key_is_a_declared_setting(overlay: Rendered) -> None:
    declared_anywhere = set(declared_settings(CommonConfig))
    for service in SERVICES:
        declared_anywhere |= set(declared_settings(config_class(service)))
    for config_map in overlay.of_kind("ConfigMap"):
        # Files, not settings: Envoy's config and Grafana's dashboards.
        if config_map["metadata"]["name"].startswith(("cift-gateway-envoy", "cift-grafana-")):
            continue
        for key in config_map.get("data") or {}:
            assert key in declared_anywhere, f"{config_map['metadata']['name']}: {key}"


@pytest.mark.parametrize(("deployment", "service"), SERVICE_DEPLOYMENTS.items())
def test_service_ports_match_the_shared_port_table(
    overlay: Rendered, deployment: str, service: str
) -> None:
    grpc_port, metrics_port = SERVICE_PORTS[service]
    container = app_container(overlay, service, deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": grpc_port, "metrics": metrics_port}
    env = env_of(overlay, container)
    assert env["CIFT_GRPC_PORT"]["value"] == str(grpc_port)
    assert env["CIFT_METRICS_PORT"]["value"] == str(metrics_port)
    assert env["CIFT_GRPC_HOST"]["value"] == "0.0.0.0", "probes and peers reach the pod IP"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}, probe

    svc = overlay.one("Service", deployment)
    assert svc["spec"]["clusterIP"] == "None", "gRPC clients balance per pod: headless"
    served = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    # The feed's Service exists for Prometheus only; clients use cift-marketdata.
    assert served == (ports if deployment == f"cift-{service}" else {"metrics": metrics_port})
    monitor = overlay.one("ServiceMonitor", deployment)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


@pytest.mark.parametrize("service", SERVICES)
def test_peer_addresses_name_the_headless_service_and_its_port(
    overlay: Rendered, service: str
) -> None:
    env = env_of(overlay, app_container(overlay, "execution"))
    host, port = env[f"CIFT_{service.upper()}_ADDR"]["value"].rsplit(":", 1)
    assert int(port) == SERVICE_PORTS[service][0]
    assert overlay.one("Service", host)["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize(("deployment", "service"), SERVICE_DEPLOYMENTS.items())
def test_deployment_runs_the_service_entry_point(
    overlay: Rendered, deployment: str, service: str
) -> None:
    container = app_container(overlay, service, deployment)
    assert container["command"] == ["python", "-m", f"services.{service}"]
    if deployment in COMMANDS:
        assert container["args"] == COMMANDS[deployment]
    else:
        assert container.get("args", []) in ([], ["serve"])
    assert container["image"].split(":")[0].split("@")[0].endswith(APP_IMAGE)
    assert load_spec(service).name == service


def test_migration_job_migrates_every_service_with_its_own_entry_point(
    overlay: Rendered,
) -> None:
    job = overlay.one("Job", "cift-migrate")
    commands = [(c["command"], c.get("args")) for c in containers(job)]
    assert commands == [
        (["python", "-m", f"services.{service}"], ["migrate"]) for service in SERVICES
    ]
    assert pod_spec(job)["restartPolicy"] == "OnFailure"


@pytest.mark.parametrize("service", SERVICES)
def test_entry_point_offers_serve_and_migrate(service: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"services.{service}", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "migrate" in result.stdout


@pytest.mark.parametrize(("deployment", "service"), SERVICE_DEPLOYMENTS.items())
def test_data_store_access_follows_what_the_service_uses(
    overlay: Rendered, deployment: str, service: str
) -> None:
    spec = load_spec(service)
    workload = overlay.one("Deployment", deployment)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    env = env_of(overlay, app_container(overlay, service, deployment))
    uses_postgres = spec.migrations_dir is not None

    assert (labels.get("cift.io/postgres-client") == "true") == uses_postgres
    assert (labels.get("cift.io/redis-client") == "true") == spec.uses_redis
    assert (labels.get("cift.io/kafka-client") == "true") == spec.uses_kafka
    assert ("CIFT_DATABASE_URL" in env) == uses_postgres
    assert ("CIFT_REDIS_URL" in env) == spec.uses_redis


def test_database_url_comes_from_the_secret_cloudnativepg_writes(overlay: Rendered) -> None:
    (cluster,) = overlay.of_kind("Cluster")
    expected = {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    for workload in workloads(overlay):
        for container in containers(workload):
            entry = env_of(overlay, container).get("CIFT_DATABASE_URL")
            if entry is not None:
                assert entry["valueFrom"]["secretKeyRef"] == expected


def test_secrets_are_referenced_never_committed(overlay: Rendered) -> None:
    assert not overlay.of_kind("Secret"), "Secrets are created by the operator, not committed"
    for workload in workloads(overlay):
        for container in containers(workload):
            for name, entry in env_of(overlay, container).items():
                if SECRET_SETTING.search(name):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (
                        f"{workload['metadata']['name']}/{container['name']}: {name}"
                    )


def test_kafka_topics_are_the_five_the_runtime_uses(overlay: Rendered) -> None:
    topics = overlay.of_kind("KafkaTopic")
    names = {t["spec"].get("topicName", t["metadata"]["name"]) for t in topics}
    assert names == set(TOPICS)
    (kafka,) = overlay.of_kind("Kafka")
    (pool,) = overlay.of_kind("KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}, "KRaft: no ZooKeeper"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        replicas = topic["spec"]["replicas"]
        assert replicas <= pool["spec"]["replicas"]
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= replicas
        if overlay.overlay == "prod":
            assert replicas == 3 and topic["spec"]["config"]["min.insync.replicas"] == 2


def test_kafka_bootstrap_is_the_strimzi_plain_listener(overlay: Rendered) -> None:
    (kafka,) = overlay.of_kind("Kafka")
    (plain,) = [lst for lst in kafka["spec"]["kafka"]["listeners"] if not lst["tls"]]
    env = env_of(overlay, app_container(overlay, "execution"))
    expected = f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert env["CIFT_KAFKA_BOOTSTRAP"]["value"] == expected


def test_prod_runs_the_released_image_tag(rendered: dict[str, Rendered]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    images = {
        c["image"]
        for w in workloads(rendered["prod"])
        for c in containers(w)
        if c["image"].startswith(APP_IMAGE)
    }
    assert images == {f"{APP_IMAGE}:{version}"}


# ------------------------------------------------------------------ posture of the pods


def test_every_pod_is_locked_down(overlay: Rendered) -> None:
    for workload in workloads(overlay):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        account = overlay.one("ServiceAccount", spec["serviceAccountName"])
        assert account["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            for mount in container.get("volumeMounts", []):
                source = volumes[mount["name"]]
                assert "emptyDir" in source or "configMap" in source, where
        for container in containers(workload, init=False):
            if container["image"].split(":")[0] == APP_IMAGE:
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: writable /tmp"


def test_termination_grace_outlasts_the_prestop_pause_and_the_drain(overlay: Rendered) -> None:
    for deployment, service in SERVICE_DEPLOYMENTS.items():
        container = app_container(overlay, service, deployment)
        env = env_of(overlay, container)
        default_drain = config_class(service)().drain_timeout_s
        drain = (
            float(env["CIFT_DRAIN_TIMEOUT_S"]["value"])
            if "CIFT_DRAIN_TIMEOUT_S" in env
            else default_drain
        )
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = pod_spec(overlay.one("Deployment", deployment))["terminationGracePeriodSeconds"]
        assert grace > pause + drain, deployment


@pytest.mark.parametrize("name", SCALABLE)
def test_each_scalable_deployment_has_an_autoscaler_a_budget_and_a_spread(
    overlay: Rendered, name: str
) -> None:
    deployment = overlay.one("Deployment", name)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = overlay.one("HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    if overlay.overlay == "prod":
        assert hpa["spec"]["minReplicas"] >= 2
    pdb = overlay.one("PodDisruptionBudget", name)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    spread = pod_spec(deployment)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)


@pytest.mark.parametrize("name", SINGLETONS)
def test_singletons_run_one_pod_and_never_two_during_a_rollout(
    overlay: Rendered, name: str
) -> None:
    deployment = overlay.one("Deployment", name)
    assert deployment["spec"]["replicas"] == 1, SINGLETONS[name]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, SINGLETONS[name]
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in overlay.of_kind("HorizontalPodAutoscaler")
    }
    assert name not in targets, SINGLETONS[name]


def test_every_deployment_is_either_scalable_or_a_singleton(overlay: Rendered) -> None:
    names = {d["metadata"]["name"] for d in overlay.of_kind("Deployment")}
    assert names == set(SCALABLE) | set(SINGLETONS)
    assert not set(SCALABLE) & set(SINGLETONS)


def test_exactly_one_pod_runs_a_market_data_feed(overlay: Rendered) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(config_class("marketdata"))}
    feeds = []
    for deployment, service in SERVICE_DEPLOYMENTS.items():
        if service != "marketdata" or deployment in COMMANDS:
            continue  # the ingest command runs no feed, whatever the setting says
        env = env_of(overlay, app_container(overlay, service, deployment))
        kind = env.get("CIFT_MARKETDATA_FEED", {}).get("value", defaults["marketdata_feed"])
        if kind != "none":
            feeds.append(deployment)
    assert feeds == ["cift-marketdata-feed"]


# ---------------------------------------------------------------------- the gateway


def test_gateway_config_map_is_the_rendered_template(rendered: dict[str, Rendered]) -> None:
    fresh = tool_module().render()
    committed = (K8S / "base" / "gateway" / "envoy.yaml").read_text()
    assert committed == fresh, "re-render with `python tools/render_gateway_k8s.py`"
    for r in rendered.values():
        (config_map,) = [
            c
            for c in r.of_kind("ConfigMap")
            if c["metadata"]["name"].startswith("cift-gateway-envoy")
        ]
        assert config_map["data"]["envoy.yaml"] == fresh


def test_gateway_reaches_every_pod_of_each_service(overlay: Rendered) -> None:
    (config_map,) = [
        c
        for c in overlay.of_kind("ConfigMap")
        if c["metadata"]["name"].startswith("cift-gateway-envoy")
    ]
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    # Besides the services, the gateway reaches its own listener for auth's JWKS.
    assert set(clusters) == {*SERVICES, "jwks"}
    jwks = clusters.pop("jwks")
    (endpoint,) = jwks["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for service, cluster in clusters.items():
        assert cluster["type"] == "STRICT_DNS"
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        assert address["port_value"] == SERVICE_PORTS[service][0]
        assert overlay.one("Service", address["address"])["spec"]["clusterIP"] == "None"


def test_gateway_pod_wires_config_and_descriptor_where_envoy_reads_them(
    overlay: Rendered,
) -> None:
    tool = tool_module()
    deployment = overlay.one("Deployment", "cift-gateway")
    spec = pod_spec(deployment)
    copy, web = spec["initContainers"]
    (envoy,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}

    descriptor_dir = str(Path(tool.DESCRIPTOR_PATH).parent)
    envoy_mounts = {m["mountPath"]: m["name"] for m in envoy["volumeMounts"]}
    copy_mounts = {m["name"]: m["mountPath"] for m in copy["volumeMounts"]}
    volume = envoy_mounts[descriptor_dir]
    assert "emptyDir" in volumes[volume]
    assert copy["image"].split(":")[0] == APP_IMAGE, "the descriptor matches the services' image"
    assert copy["command"] == [
        "cp",
        tool.IMAGE_DESCRIPTOR_PATH,
        f"{copy_mounts[volume]}/{Path(tool.DESCRIPTOR_PATH).name}",
    ]

    # The dashboard's files: copied from the image into the directory the config names.
    web_volume = envoy_mounts[tool.WEB_ROOT]
    assert "emptyDir" in volumes[web_volume]
    assert web["image"].split(":")[0] == APP_IMAGE
    web_mounts = {m["name"]: m["mountPath"] for m in web["volumeMounts"]}
    assert web["command"] == ["cp", "-R", "/opt/cift/web/.", f"{web_mounts[web_volume]}/"]
    assert f'filename: "{tool.WEB_ROOT}/index.html"' in tool.render()

    config_path = envoy["args"][envoy["args"].index("--config-path") + 1]
    config_volume = volumes[envoy_mounts[str(Path(config_path).parent)]]
    assert config_volume["configMap"]["name"].startswith("cift-gateway-envoy")
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert ports == {"http": tool.LISTENER_PORT, "admin": tool.ADMIN_PORT}


def test_the_image_build_writes_the_descriptor_the_gateway_copies() -> None:
    tool = tool_module()
    text = CONTAINERFILE.read_text()
    assert f"python tools/render_gateway_k8s.py descriptor {tool.IMAGE_DESCRIPTOR_PATH}" in text
    assert f"COPY --from=build {tool.IMAGE_DESCRIPTOR_PATH} {tool.IMAGE_DESCRIPTOR_PATH}" in text
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, re.MULTILINE)
    # The dashboard, built from its lockfile, where the gateway pod copies it from.
    assert "RUN npm ci" in text
    assert "COPY --from=web /src/web/dist /opt/cift/web" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)


def test_app_containers_run_as_the_image_user(overlay: Rendered) -> None:
    for deployment, service in SERVICE_DEPLOYMENTS.items():
        context = app_container(overlay, service, deployment)["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (10001, 10001)


@pytest.fixture(scope="module")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("descriptor") / "cift.pb"
    return build_descriptor_set(out)


def envoy_validate(config: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    path = workdir / "envoy.yaml"
    path.write_text(config)
    envoy = Path(sys.executable).parent / "envoy"
    binary = str(envoy) if envoy.exists() else (shutil.which("envoy") or "envoy")
    return subprocess.run(
        # A base id of its own keeps clear of any other Envoy on the machine.
        [
            binary,
            "--mode",
            "validate",
            "-c",
            str(path),
            "--base-id",
            str(40_000 + os.getpid() % 20_000),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_rendered_gateway_config_passes_envoy_validation(
    rendered: dict[str, Rendered], descriptor: Path, tmp_path: Path
) -> None:
    tool = tool_module()
    (config_map,) = [
        c
        for c in rendered["prod"].of_kind("ConfigMap")
        if c["metadata"]["name"].startswith("cift-gateway-envoy")
    ]
    shipped = config_map["data"]["envoy.yaml"]
    assert shipped.count(tool.DESCRIPTOR_PATH) == 1
    # The pod's volumes do not exist here: point the config at a fresh descriptor build
    # and at a directory with every file the dashboard consists of.
    web = tmp_path / "web"
    for name in web_served_files().values():
        (web / name).parent.mkdir(parents=True, exist_ok=True)
        (web / name).write_text(f"contents of {name}")
    shipped = shipped.replace(tool.DESCRIPTOR_PATH, str(descriptor))
    result = envoy_validate(shipped.replace(tool.WEB_ROOT, str(web)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_validation_fails_without_the_descriptor(tmp_path: Path) -> None:
    """The validation above is meaningful: a missing descriptor set is caught."""
    config = tool_module().render(str(tmp_path / "missing.pb"))
    assert envoy_validate(config, tmp_path).returncode != 0


# ------------------------------------------------------------------ network policies


@dataclass(frozen=True)
class Endpoint:
    """A pod (or, with no namespace, anything outside the cluster: clients, the API server)."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def external(self) -> bool:
        return not self.namespace


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        # Our model puts no pod inside an ipBlock; outside addresses are inside 0.0.0.0/0.
        return other.external and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    if other.external:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def ports_match(rule: Mapping[str, Any], port: int, protocol: str, target: Endpoint) -> bool:
    if "ports" not in rule:
        return True
    for allowed in rule["ports"]:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        wanted = allowed.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if target.ports.get(wanted) == (port, protocol):
                return True
        elif wanted <= port <= allowed.get("endPort", wanted):
            return True
    return False


def allows(
    policies: list[Doc], direction: str, pod: Endpoint, peer: Endpoint, port: int, protocol: str
) -> bool:
    """Whether the policies selecting `pod` let it talk to (Egress) or hear from (Ingress) `peer`."""
    if pod.external:
        return True
    relevant = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not relevant:
        return True
    key = "to" if direction == "Egress" else "from"
    target = peer if direction == "Egress" else pod
    rules = [rule for p in relevant for rule in p["spec"].get(direction.lower(), [])]
    return any(
        ports_match(rule, port, protocol, target)
        and (key not in rule or any(peer_matches(x, pod.namespace, peer) for x in rule[key]))
        for rule in rules
    )


def admits(policies: list[Doc], src: Endpoint, dst: Endpoint, port: int, protocol: str) -> bool:
    """NetworkPolicy semantics: the source's egress and the target's ingress must both allow."""
    return allows(policies, "Egress", src, dst, port, protocol) and allows(
        policies, "Ingress", dst, src, port, protocol
    )


def endpoints(r: Rendered) -> dict[str, Endpoint]:
    ns = r.namespace
    found: dict[str, Endpoint] = {}
    for workload in workloads(r):
        ports = {
            p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
            for c in containers(workload)
            for p in c.get("ports", [])
        }
        labels = workload["spec"]["template"]["metadata"]["labels"]
        found[workload["metadata"]["name"]] = Endpoint(
            workload["metadata"]["name"], ns, labels, ports
        )
    (cluster,) = r.of_kind("Cluster")
    (kafka,) = r.of_kind("Kafka")
    (pool,) = r.of_kind("KafkaNodePool")
    # Pods the operators create, with the labels they give them.
    found["postgres"] = Endpoint(
        "postgres",
        ns,
        {"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/instanceRole": "primary"},
        {"postgresql": (5432, "TCP"), "status": (8000, "TCP"), "metrics": (9187, "TCP")},
    )
    found["kafka-broker"] = Endpoint(
        "kafka-broker",
        ns,
        {
            "strimzi.io/cluster": kafka["metadata"]["name"],
            "strimzi.io/kind": "Kafka",
            "strimzi.io/pool-name": pool["metadata"]["name"],
            "strimzi.io/broker-role": "true",
            "strimzi.io/controller-role": "true",
        },
        {
            "tcp-clients": (9092, "TCP"),
            "tcp-replication": (9091, "TCP"),
            "tcp-ctrlplane": (9090, "TCP"),
        },
    )
    found["prometheus"] = Endpoint(
        "prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}
    )
    found["cnpg-operator"] = Endpoint(
        "cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}
    )
    found["kube-dns"] = Endpoint(
        "kube-dns",
        "kube-system",
        {"k8s-app": "kube-dns"},
        {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")},
    )
    found["outside"] = Endpoint(
        "outside", "", {}, {"https": (443, "TCP"), "api": (6443, "TCP"), "http": (80, "TCP")}
    )
    return found


def expected_flows(r: Rendered) -> set[tuple[str, str, int, str]]:
    grpc = {s: SERVICE_PORTS[s][0] for s in SERVICES}
    metrics = {s: SERVICE_PORTS[s][1] for s in SERVICES}
    specs = {s: load_spec(s) for s in SERVICES}
    flows = {("outside", "cift-gateway", 8080, "TCP"), ("prometheus", "cift-gateway", 9901, "TCP")}
    for service in SERVICES:
        flows.add(("cift-gateway", f"cift-{service}", grpc[service], "TCP"))
        flows.add(("prometheus", f"cift-{service}", metrics[service], "TCP"))
        if service != "auth":
            flows.add((f"cift-{service}", "cift-auth", grpc["auth"], "TCP"))
        if specs[service].migrations_dir is not None:
            flows.add((f"cift-{service}", "postgres", 5432, "TCP"))
        if specs[service].uses_redis:
            flows.add((f"cift-{service}", "cift-redis", 6379, "TCP"))
    feed = load_spec("marketdata")
    flows.add(("cift-marketdata-feed", "cift-auth", grpc["auth"], "TCP"))
    flows.add(("prometheus", "cift-marketdata-feed", metrics["marketdata"], "TCP"))
    if feed.migrations_dir is not None:
        flows.add(("cift-marketdata-feed", "postgres", 5432, "TCP"))
    if feed.uses_redis:
        flows.add(("cift-marketdata-feed", "cift-redis", 6379, "TCP"))
    # Ingest-only members call no service; they reach the data stores and are scraped.
    flows.add(("prometheus", "cift-marketdata-ingest", metrics["marketdata"], "TCP"))
    if feed.migrations_dir is not None:
        flows.add(("cift-marketdata-ingest", "postgres", 5432, "TCP"))
    if feed.uses_redis:
        flows.add(("cift-marketdata-ingest", "cift-redis", 6379, "TCP"))
    flows |= {
        ("cift-execution", "cift-risk", grpc["risk"], "TCP"),
        ("cift-execution", "cift-marketdata", grpc["marketdata"], "TCP"),
        ("cift-risk", "cift-marketdata", grpc["marketdata"], "TCP"),
        ("cift-backtest", "cift-marketdata", grpc["marketdata"], "TCP"),
        ("cift-migrate", "postgres", 5432, "TCP"),
        ("postgres", "postgres", 5432, "TCP"),
        ("postgres", "postgres", 8000, "TCP"),
        ("cnpg-operator", "postgres", 5432, "TCP"),
        ("cnpg-operator", "postgres", 8000, "TCP"),
        ("prometheus", "postgres", 9187, "TCP"),
        # The operators' pods watch their resources through the Kubernetes API.
        ("postgres", "outside", 443, "TCP"),
        ("postgres", "outside", 6443, "TCP"),
        ("kafka-broker", "outside", 443, "TCP"),
        ("kafka-broker", "outside", 6443, "TCP"),
    }
    for pod in endpoints(r).values():
        if pod.namespace == r.namespace:
            flows.add((pod.name, "kube-dns", 53, "UDP"))
            flows.add((pod.name, "kube-dns", 53, "TCP"))
        else:
            # The public port is open to whoever sits outside the namespace (the
            # ingress controller, a load balancer); pods inside need an egress rule.
            flows.add((pod.name, "cift-gateway", 8080, "TCP"))
    return flows


def test_network_policies_admit_exactly_the_architecture_flows(overlay: Rendered) -> None:
    policies = overlay.of_kind("NetworkPolicy")
    pods = endpoints(overlay)
    actual: set[tuple[str, str, int, str]] = set()
    for src in pods.values():
        for dst in pods.values():
            if dst.name == "kafka-broker":
                continue  # its ingress policy is Strimzi's; checked below from the client side
            if overlay.namespace not in (src.namespace, dst.namespace):
                continue  # neither end is governed by these policies
            for port, protocol in dst.ports.values():
                if admits(policies, src, dst, port, protocol):
                    actual.add((src.name, dst.name, port, protocol))
    expected = expected_flows(overlay)
    assert sorted(actual - expected) == [], "admitted but not in the architecture"
    assert sorted(expected - actual) == [], "needed by the architecture but denied"


def test_only_kafka_clients_reach_the_brokers(overlay: Rendered) -> None:
    policies = overlay.of_kind("NetworkPolicy")
    pods = endpoints(overlay)
    broker = pods["kafka-broker"]
    (kafka,) = overlay.of_kind("Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    uses_kafka = {d for d, s in SERVICE_DEPLOYMENTS.items() if load_spec(s).uses_kafka}
    for pod in pods.values():
        if pod.namespace != overlay.namespace or pod.name in ("kafka-broker", "postgres"):
            continue
        egress = allows(policies, "Egress", pod, broker, 9092, "TCP")
        # Strimzi turns the listener's networkPolicyPeers into the brokers' ingress policy.
        ingress = any(
            peer_matches(peer, overlay.namespace, pod) for peer in listener["networkPolicyPeers"]
        )
        assert egress == (pod.name in uses_kafka), pod.name
        assert ingress == (pod.name in uses_kafka), pod.name
    assert allows(policies, "Egress", broker, broker, 9091, "TCP"), "brokers replicate"


def test_namespace_is_denied_by_default(overlay: Rendered) -> None:
    (deny,) = [
        p for p in overlay.of_kind("NetworkPolicy") if p["metadata"]["name"] == "cift-default-deny"
    ]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    stranger = Endpoint(
        "stranger", overlay.namespace, {"app.kubernetes.io/name": "stranger"}, {"http": (80, "TCP")}
    )
    policies = overlay.of_kind("NetworkPolicy")
    for target in endpoints(overlay).values():
        for port, protocol in target.ports.values():
            if target.name == "cift-gateway" and port == 8080:
                continue
            if target.name == "kube-dns":
                continue
            assert not admits(policies, stranger, target, port, protocol), (target.name, port)
    assert not admits(policies, stranger, endpoints(overlay)["outside"], 443, "TCP")


def iter_skip_annotations(docs: tuple[Doc, ...]) -> Iterator[tuple[str, str]]:
    for doc in docs:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                yield doc["metadata"]["name"], str(value)


def test_skip_annotations_name_only_allowed_checks(overlay: Rendered) -> None:
    for name, value in iter_skip_annotations(overlay.docs):
        check, reason = value.split("=", 1)
        assert check in ALLOWED_SKIPS, (name, check)
        assert "=" not in reason, "checkov splits the annotation at every '='"
        if check == "CKV_K8S_15":
            assert overlay.overlay == "dev", name
