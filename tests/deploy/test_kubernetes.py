"""deploy/k8s: the spec's Deployment, hardened, with its Service, ConfigMap,
Secret, HorizontalPodAutoscaler and PodDisruptionBudget, consistent with each
other and with the image (schema-checked by kubernetes-validate when installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.config import DEFAULT_CONFIG_FILES, ENV_VARS, load_config
from tests.deploy.support import K8S_DIR, dockerfile_stages, run_tool, tool

MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> dict[str, dict]:
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return resources()


@pytest.fixture(scope="module")
def pod(k8s) -> dict:
    return k8s["Deployment"]["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod) -> dict:
    (container,) = pod["spec"]["containers"]
    return container


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_the_kinds_of_the_issue(k8s):
    assert set(k8s) == {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PersistentVolumeClaim",
    }


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def test_deployment_follows_the_spec(k8s, container):
    assert k8s["Deployment"]["spec"]["replicas"] == 3
    assert container["resources"] == {
        "requests": {"memory": "512Mi", "cpu": "250m"},
        "limits": {"memory": "1Gi", "cpu": "500m"},
    }
    assert env_of(container)["ENVIRONMENT"]["value"] == "production"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"


def test_selectors_match_the_pod_labels(k8s, pod):
    labels = pod["metadata"]["labels"]
    for selector in (
        k8s["Deployment"]["spec"]["selector"]["matchLabels"],
        k8s["Service"]["spec"]["selector"],
        k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items(), selector


def test_ports_line_up(k8s, container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    (service_port,) = k8s["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in ports
    expose = dockerfile_stages()[1][-1].last("EXPOSE").args
    assert ports["http"] == int(expose) == config_file(k8s, "MODELSERVE_CONFIG", container)["api"]["port"]
    annotations = k8s["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["http"]


def test_runs_as_non_root_with_a_read_only_root_filesystem(pod, container):
    pod_security = pod["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0 and pod_security["runAsGroup"] != 0
    user = dockerfile_stages()[1][-1].last("USER").args
    assert user == f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}", "the image's user"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def test_volumes(pod, container, k8s):
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {m["name"] for m in mounts.values()} == set(volumes), "every volume mounted, every mount a volume"
    # the state directory (registry.state_directory var/state, under WORKDIR /app) is writable
    assert "emptyDir" in volumes[mounts["/app/var"]["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "gunicorn's heartbeat files"
    models = mounts["/app/models"]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]
    assert claim["claimName"] == k8s["PersistentVolumeClaim"]["metadata"]["name"]
    assert k8s["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert volumes[mounts["/etc/modelserve"]["name"]]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]


def config_file(k8s: dict, variable: str, container: dict) -> dict:
    """The ConfigMap file that ``variable`` points at, through the pod's config mount."""
    path = Path(env_of(container)[variable]["value"])
    mount = next(m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"]))
    assert mount["name"] == "config"
    return yaml.safe_load(k8s["ConfigMap"]["data"][str(path.relative_to(mount["mountPath"]))])


def test_configmap_holds_a_valid_configuration(k8s, container, tmp_path):
    """The mounted files pass modelserve's own validation, as the pod will load them."""
    environ = {name: e["value"] for name, e in env_of(container).items() if "value" in e}
    for variable in ("MODELSERVE_CONFIG", "MODELSERVE_SECURITY_CONFIG"):
        local = tmp_path / Path(environ[variable]).name
        local.write_text(yaml.safe_dump(config_file(k8s, variable, container)))
        environ[variable] = str(local)
    settings = load_config(environ=environ)
    assert settings["environment"] == "production"
    assert settings["api"]["host"] == "0.0.0.0"
    assert settings["registry"]["state_directory"] == "var/state"
    assert settings["models"]["model_directory"] == "models/trained", "under the /app/models mount"


def test_shutdown_grace_outlasts_gunicorns_graceful_timeout(k8s, container):
    settings = config_file(k8s, "MODELSERVE_CONFIG", container)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = k8s["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + settings["api"]["timeout"]


def test_every_variable_the_pod_sets_is_one_modelserve_reads(container):
    known = set(ENV_VARS) | {name for name, _ in DEFAULT_CONFIG_FILES}
    assert set(env_of(container)) <= known, set(env_of(container)) - known


def test_secret_holds_every_key_the_pod_reads(k8s, container):
    secret = k8s["Secret"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert refs, "API keys and the JWT secret come from the Secret"
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}, "placeholders only: no real secret in git"


def test_autoscaler_and_disruption_budget_fit_the_deployment(k8s):
    deployment = k8s["Deployment"]
    hpa = k8s["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    assert k8s["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"], "a drain must be possible"


def test_kubernetes_validate_strict():
    validate = tool("kubernetes-validate", "the PyPI package kubernetes-validate (deploy/requirements-checks.txt)")
    result = run_tool(validate, "--strict", "--quiet", *map(str, MANIFESTS))
    assert result.returncode == 0, result.stdout + result.stderr
