"""deploy/k8s: the spec's Deployment, hardened, with its Service, ConfigMap, Secret,
HorizontalPodAutoscaler and PodDisruptionBudget; the Celery workers; the Redis every pod
shares and the NetworkPolicy around it; the volumes of models and of jobs. Consistent
with each other and with the image (schema-checked by kubernetes-validate when installed).
tests/deploy/test_replicas.py runs them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app.config import DEFAULT_CONFIG_FILES, ENV_VARS
from tests.deploy.manifests import by_name, container_environment, only_container, pod_configuration, pod_spec
from tests.deploy.support import K8S_DIR, dockerfile_stages, run_tool, tool

MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
API, WORKER, REDIS = "Deployment/modelserve", "Deployment/modelserve-worker", "StatefulSet/modelserve-redis"
#: Where the image runs the server (its WORKDIR): relative paths of the configuration start here.
WORKDIR = Path(dockerfile_stages()[1][-1].last("WORKDIR").args)


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return by_name([doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text())])


@pytest.fixture(scope="module")
def container(k8s) -> dict:
    return only_container(k8s[API])


@pytest.fixture(scope="module")
def worker(k8s) -> dict:
    return only_container(k8s[WORKER])


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def mounts_of(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def volumes_of(manifest: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod_spec(manifest)["volumes"]}


def test_the_kinds_of_the_issue(k8s):
    assert set(k8s) == {
        API,
        WORKER,
        REDIS,
        "Service/modelserve",
        "Ingress/modelserve",
        "Service/modelserve-redis",
        "ConfigMap/modelserve-config",
        "ConfigMap/modelserve-redis-urls",
        "Secret/modelserve-secrets",
        "HorizontalPodAutoscaler/modelserve",
        "PodDisruptionBudget/modelserve",
        "PersistentVolumeClaim/modelserve-models",
        "PersistentVolumeClaim/modelserve-jobs",
        "NetworkPolicy/modelserve-redis",
    }


def test_ingress_buffers_requests_in_front_of_the_service(k8s, tmp_path):
    ingress = k8s["Ingress/modelserve"]
    notes = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in ingress["metadata"]["annotations"].items()}
    assert notes["proxy-request-buffering"] == "on" and notes["proxy-buffering"] == "on"
    config = pod_configuration(k8s, API, tmp_path)
    assert notes["proxy-body-size"] == f"{config['api']['max_request_size'] // 2**20}m"
    assert int(notes["proxy-read-timeout"]) > config["api"]["timeout"], "gunicorn answers or restarts first"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    service = k8s["Service/modelserve"]
    assert path["backend"]["service"] == {"name": "modelserve", "port": {"name": service["spec"]["ports"][0]["name"]}}
    # The controller sets X-Forwarded-For: the application trusts one proxy.
    assert config["security"]["trusted_proxies"] == 1


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def test_deployment_follows_the_spec(k8s, container):
    assert k8s[API]["spec"]["replicas"] == 3
    assert container["resources"] == {
        "requests": {"memory": "512Mi", "cpu": "250m"},
        "limits": {"memory": "1Gi", "cpu": "500m"},
    }
    assert env_of(container)["ENVIRONMENT"]["value"] == "production"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"


def test_selectors_match_their_own_pods_only(k8s):
    labels = {name: k8s[name]["spec"]["template"]["metadata"]["labels"] for name in (API, WORKER, REDIS)}
    for name in (API, WORKER, REDIS):
        assert k8s[name]["spec"]["selector"]["matchLabels"].items() <= labels[name].items()
    for selector, target in (
        (k8s["Service/modelserve"]["spec"]["selector"], API),
        (k8s["PodDisruptionBudget/modelserve"]["spec"]["selector"]["matchLabels"], API),
        (k8s["Service/modelserve-redis"]["spec"]["selector"], REDIS),
    ):
        chosen = {name for name, pod in labels.items() if selector.items() <= pod.items()}
        assert chosen == {target}, (selector, chosen)


def test_ports_line_up(k8s, container, tmp_path):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    (service_port,) = k8s["Service/modelserve"]["spec"]["ports"]
    assert service_port["targetPort"] in ports
    expose = dockerfile_stages()[1][-1].last("EXPOSE").args
    assert ports["http"] == int(expose) == pod_configuration(k8s, API, tmp_path)["api"]["port"]
    annotations = k8s[API]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["http"]


@pytest.mark.parametrize("name", [API, WORKER])
def test_runs_as_non_root_with_a_read_only_root_filesystem(k8s, name):
    pod_security = pod_spec(k8s[name])["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0 and pod_security["runAsGroup"] != 0
    user = dockerfile_stages()[1][-1].last("USER").args
    assert user == f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}", "the image's user"
    security = only_container(k8s[name])["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("name", [API, WORKER])
def test_volumes(k8s, name):
    volumes = volumes_of(k8s[name])
    mounts = mounts_of(only_container(k8s[name]))
    assert {m["name"] for m in mounts.values()} == set(volumes), "every volume mounted, every mount a volume"
    # the state directory (registry.state_directory var/state, under WORKDIR /app) is writable
    assert "emptyDir" in volumes[mounts["/app/var"]["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "gunicorn's heartbeat files"
    models = mounts["/app/models"]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
    assert k8s[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    jobs = mounts["/app/jobs"]
    assert not jobs.get("readOnly"), "workers write the results there"
    claim = volumes[jobs["name"]]["persistentVolumeClaim"]["claimName"]
    assert k8s[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"] == ["ReadWriteMany"], "every pod sees it"
    assert volumes[mounts["/etc/modelserve"]["name"]]["configMap"]["name"] == "modelserve-config"


def test_configmap_holds_a_valid_configuration(k8s, tmp_path):
    """The mounted files pass modelserve's own validation, as the pod will load them."""
    settings = pod_configuration(k8s, API, tmp_path)
    assert settings["environment"] == "production"
    assert settings["api"]["host"] == "0.0.0.0"
    assert settings["registry"]["state_directory"] == "var/state"
    assert settings["models"]["model_directory"] == "models/trained", "under the /app/models mount"


@pytest.mark.parametrize("name", [API, WORKER])
def test_every_pod_shares_one_redis_and_one_jobs_volume(k8s, name, tmp_path):
    settings = pod_configuration(k8s, name, tmp_path)
    assert settings["registry"]["backend"] == "redis"
    assert settings["jobs"]["backend"] == "celery" and settings["jobs"]["store"] == "redis"
    (port,) = k8s["Service/modelserve-redis"]["spec"]["ports"]
    service = f"modelserve-redis:{port['port']}"
    for url in (
        settings["registry"]["redis_url"],
        settings["jobs"]["redis_url"],
        settings["jobs"]["broker_url"],
        settings["security"]["rate_limit_storage"],
    ):
        assert urlsplit(url).scheme == "redis" and urlsplit(url).netloc == service, url
    jobs_mount = mounts_of(only_container(k8s[name]))["/app/jobs"]["mountPath"]
    for key in ("data_directory", "output_directory"):
        assert (WORKDIR / settings["jobs"][key]).is_relative_to(jobs_mount), key


def test_the_api_and_the_workers_load_the_same_configuration(k8s, container, worker, tmp_path):
    assert worker["image"] == container["image"]
    assert container_environment(worker, k8s) == container_environment(container, k8s)
    assert worker["envFrom"] == container["envFrom"]
    assert pod_configuration(k8s, WORKER, tmp_path) == pod_configuration(k8s, API, tmp_path)


def test_the_worker_runs_celery_one_job_at_a_time_with_its_own_probes(k8s, worker):
    assert worker["command"] == ["celery", "-A", "app.jobs.celery_app", "worker"]
    args = worker["args"]
    assert args[args.index("--concurrency") + 1] == "1", "Celery's default is the node's cores, not the limit"
    assert {"requests", "limits"} <= worker["resources"].keys()
    for probe in ("startupProbe", "livenessProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"] and "inspect ping" in command[2] and "celery@$HOSTNAME" in command[2]
    assert "ports" not in worker, "nothing connects to a worker"
    assert pod_spec(k8s[WORKER])["terminationGracePeriodSeconds"] >= 60, "time to finish the job in hand"


def test_redis_keeps_its_data_on_its_own_volume(k8s):
    redis = k8s[REDIS]
    container = only_container(redis)
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    args = container["args"]
    assert args[args.index("--dir") + 1] == mount["mountPath"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["serviceName"] == "modelserve-redis"
    (service_port,) = k8s["Service/modelserve-redis"]["spec"]["ports"]
    assert service_port["targetPort"] in {p["name"] for p in container["ports"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_only_the_api_and_worker_pods_reach_redis(k8s):
    policy = k8s["NetworkPolicy/modelserve-redis"]["spec"]
    assert policy["podSelector"]["matchLabels"] == k8s[REDIS]["spec"]["template"]["metadata"]["labels"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}, "no namespace or address range besides"

    def admitted(labels: dict) -> bool:
        return all(labels.get(e["key"]) in e["values"] for e in source["podSelector"]["matchExpressions"])

    pods = {name: k8s[name]["spec"]["template"]["metadata"]["labels"] for name in (API, WORKER, REDIS)}
    assert {name for name, labels in pods.items() if admitted(labels)} == {API, WORKER}
    assert [p["port"] for p in rule["ports"]] == [p["name"] for p in only_container(k8s[REDIS])["ports"]]


def test_shutdown_grace_outlasts_gunicorns_graceful_timeout(k8s, container, tmp_path):
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = pod_spec(k8s[API])["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + pod_configuration(k8s, API, tmp_path)["api"]["timeout"]


@pytest.mark.parametrize("name", [API, WORKER])
def test_every_variable_the_pod_sets_is_one_modelserve_reads(k8s, name):
    known = set(ENV_VARS) | {name for name, _ in DEFAULT_CONFIG_FILES}
    environ = container_environment(only_container(k8s[name]), k8s)
    assert set(environ) <= known, set(environ) - known


def test_secret_holds_every_key_the_pods_read(k8s):
    secret = k8s["Secret/modelserve-secrets"]
    for name in (API, WORKER):
        container = only_container(k8s[name])
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
        assert refs, "API keys and the JWT secret come from the Secret"
        for ref in refs:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}, "placeholders only: no real secret in git"


def test_autoscaler_and_disruption_budget_fit_the_deployment(k8s):
    deployment = k8s[API]
    hpa = k8s["HorizontalPodAutoscaler/modelserve"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    assert k8s["PodDisruptionBudget/modelserve"]["spec"]["minAvailable"] < hpa["minReplicas"], (
        "a drain must be possible"
    )


def test_kubernetes_validate_strict():
    validate = tool("kubernetes-validate", "the PyPI package kubernetes-validate (deploy/requirements-checks.txt)")
    result = run_tool(validate, "--strict", "--quiet", *map(str, MANIFESTS))
    assert result.returncode == 0, result.stdout + result.stderr
