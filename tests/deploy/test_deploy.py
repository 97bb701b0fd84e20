"""The deployment files are checked, not just written: the compose file parses as the Compose
specification (compose_spec, a validating parser; no Docker engine runs here), every Kubernetes
manifest validates against the Kubernetes schemas, the settings they ship load, and the
Dockerfile copies what exists. Images are not built in CI."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose

from shared import access
from shared.settings import load_settings
from tests.procs import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SERVICES = {"scheduler", "extractor", "relay", "gateway"}


def compose() -> dict[str, Any]:
    # YAML merge keys (<<) are resolved by the YAML loader, as docker compose does.
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return PyCompose.from_json(json.dumps(raw)).to_dict()  # type: ignore[no-any-return]


def test_the_compose_file_is_valid_and_laid_out_as_documented() -> None:
    spec = compose()
    services = spec["services"]
    assert {"nats1", "nats2", "nats3", "redis", *SERVICES} <= set(services)
    for node in ("nats1", "nats2", "nats3"):
        command = services[node]["command"]
        assert "--jetstream" in command
        assert "--cluster_name" in command
    assert services["extractor"]["deploy"]["replicas"] == 2
    assert services["relay"]["deploy"]["replicas"] == 2
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["SLIPSTREAM_NATS_REPLICAS"] == "3"
        assert env["SLIPSTREAM_NATS_URL"].count("nats://") == 3
        assert services[name]["command"] == [name]


def test_the_compose_parser_rejects_a_broken_file() -> None:
    """The check can fail: a wrong type in the same file is refused."""
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    raw["services"]["relay"]["deploy"] = {"replicas": "two"}
    with pytest.raises(ValueError, match="expected u64"):
        PyCompose.from_json(json.dumps(raw))


def manifests() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


def test_every_manifest_file_is_in_the_kustomization() -> None:
    listed = {p.name for p in manifests()}
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "nats-values.yaml"}
    assert listed == present


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_kubernetes_manifests_validate_strictly(path: Path) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, "1.33", strict=True)


def test_kubernetes_validation_can_fail() -> None:
    resource = yaml.safe_load((K8S / "relay-hpa.yaml").read_text())
    resource["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(resource, "1.33", strict=True)


def test_deployments_have_probes_resources_and_run_each_service() -> None:
    seen = set()
    for path in manifests():
        for resource in yaml.safe_load_all(path.read_text()):
            if resource["kind"] != "Deployment":
                continue
            container = resource["spec"]["template"]["spec"]["containers"][0]
            seen.add(container["args"][0])
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert {"requests", "limits"} <= set(container["resources"])
    assert seen == SERVICES


def test_the_shipped_settings_load(tmp_path: Path) -> None:
    configmap = yaml.safe_load((K8S / "configmap.yaml").read_text())
    for name, text in (("k8s.toml", configmap["data"]["slipstream.toml"]),
                       ("compose.toml", (DEPLOY / "slipstream.toml").read_text())):
        path = tmp_path / name
        path.write_text(text)
        tomllib.loads(text)
        load_settings(str(path), env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    env = {k: v for k, v in configmap["data"].items() if k.startswith("SLIPSTREAM_")}
    settings = load_settings(env={**env, "SLIPSTREAM_DATA_DIR": str(tmp_path)})
    assert settings.nats.replicas == 3


def test_nats_helm_values_ask_for_a_three_node_jetstream_cluster() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert {k: values["config"]["cluster"][k] for k in ("enabled", "replicas")} == \
        {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["enabled"] is True


def test_the_dockerfile_copies_what_exists_and_builds_the_ui_from_its_lockfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        match = re.match(r"COPY (?!--from)(.+) \S+$", line)
        if match:
            for source in match.group(1).split():
                assert (ROOT / source).exists(), f"COPY of a missing path: {source}"
    assert "npm ci" in text
    assert "uv sync --frozen --no-dev" in text
    assert "chromium" in text


def test_compose_gives_each_service_its_own_nats_user_and_no_other_password() -> None:
    """Every service connects as its own role with only its own password file (a compose
    secret); the NATS nodes read the users and permissions from the nats-auth secret beside
    their config, which includes it."""
    spec = compose()
    services = spec["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["SLIPSTREAM_NATS_USER"] == name
        assert env["SLIPSTREAM_NATS_PASSWORD_FILE"] == f"/run/secrets/nats-{name}"
        assert "SLIPSTREAM_NATS_PASSWORD" not in env
        assert services[name]["secrets"] == [f"nats-{name}"]
    for node in ("nats1", "nats2", "nats3"):
        assert services[node]["command"][:2] == ["-c", "/etc/nats/nats.conf"]
        assert {"source": "nats-auth", "target": "/etc/nats/auth.conf"} in services[node]["secrets"]
    assert 'include "auth.conf"' in spec["configs"]["nats-conf"]["content"]
    files = {name: secret["file"] for name, secret in spec["secrets"].items()}
    assert files["nats-auth"] == "./secrets/nats-auth.conf"
    for name in SERVICES:
        assert files[f"nats-{name}"] == f"./secrets/{name}.password"
    # what `slipstream credentials deploy/secrets` makes is what compose mounts, and is ignored
    assert (DEPLOY / ".gitignore").read_text().splitlines()[0] == "secrets/"


def test_kubernetes_deployments_read_only_their_own_nats_password() -> None:
    """Each Deployment's container is its role's NATS user, its password from its own key of
    the Secret slipstream-nats, which the kustomization generates from every role's file."""
    for path in manifests():
        for resource in yaml.safe_load_all(path.read_text()):
            if resource["kind"] != "Deployment":
                continue
            container = resource["spec"]["template"]["spec"]["containers"][0]
            role = container["args"][0]
            env = {e["name"]: e for e in container["env"]}
            assert env["SLIPSTREAM_NATS_USER"]["value"] == role
            ref = env["SLIPSTREAM_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "slipstream-nats", "key": f"{role}.password"}
            keys = [e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]
                    if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == "slipstream-nats"]
            assert keys == [f"{role}.password"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generated,) = kustomization["secretGenerator"]
    assert generated["name"] == "slipstream-nats"
    assert generated["files"] == [f"{r.value}.password=secrets/{r.value}.password"
                                  for r in access.Role]


def test_nats_helm_values_carry_the_permissions_the_code_computes() -> None:
    """The users and allow-lists in the Helm values are exactly shared.access's (regenerate with
    `slipstream access --helm` when the topology changes), passwords from the Secret; TLS for
    clients and routes is there to switch on."""
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    users = values["config"]["merge"]["authorization"]["users"]
    assert users == access.users(lambda r: f"<< ${access.password_variable(r)} >>"), \
        "deploy/k8s/nats-values.yaml is out of date: `slipstream access --helm`"
    env = values["container"]["env"]
    for role in access.Role:
        ref = env[access.password_variable(role)]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "slipstream-nats", "key": f"{role.value}.password"}
    assert values["config"]["nats"]["tls"]["enabled"] is False
    assert values["config"]["cluster"]["tls"]["enabled"] is False
    assert "anonymous" not in json.dumps(values)
