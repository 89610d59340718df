"""deploy/k8s as ``kubectl kustomize deploy/k8s`` renders it, and what its pods are given.

kubectl is not a PyPI or Debian package that works here (Debian's kubectl 1.20
predates the ``labels`` field), so when no kubectl is installed the
kustomization is rendered by :func:`render`: a small implementation of exactly
the fields deploy/k8s/kustomization.yaml uses (``resources`` files and
``labels`` pairs), which refuses any other. Where kubectl is installed,
tests/deploy/test_kustomize.py checks that both render the same documents.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.support import K8S_DIR

Manifest = dict[str, Any]

#: What :func:`render` implements; any other field of the kustomization stops it.
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "labels"}


def kubectl() -> str | None:
    return shutil.which("kubectl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def kubectl_kustomize(directory: Path = K8S_DIR) -> list[Manifest]:
    """The documents ``kubectl kustomize directory`` prints (kubectl must be installed)."""
    result = subprocess.run(
        [kubectl() or "kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(directory: Path = K8S_DIR) -> list[Manifest]:
    """The kustomization's resources with its labels applied, as kustomize does."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise NotImplementedError(f"kustomization fields this renderer does not implement: {sorted(unsupported)}")
    manifests = []
    for resource in kustomization["resources"]:
        path = directory / resource
        if not path.is_file():
            raise NotImplementedError(f"{resource}: only resource files are implemented, not directories or URLs")
        manifests += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for manifest in manifests:
        metadata = manifest.setdefault("metadata", {})
        for entry in kustomization.get("labels", []):
            if entry.get("includeSelectors") or entry.get("includeTemplates"):
                raise NotImplementedError("labels with includeSelectors or includeTemplates")
            metadata.setdefault("labels", {}).update(entry["pairs"])
    return manifests


def rendered(directory: Path = K8S_DIR) -> list[Manifest]:
    """kubectl's rendering where kubectl is installed, :func:`render`'s elsewhere."""
    return kubectl_kustomize(directory) if kubectl() else render(directory)


def by_name(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The documents keyed ``Kind/name``; a kind and name twice is an error."""
    found: dict[str, Manifest] = {}
    for manifest in manifests:
        key = f"{manifest['kind']}/{manifest['metadata']['name']}"
        assert key not in found, f"{key} twice"
        found[key] = copy.deepcopy(manifest)
    return found


def pod_spec(manifest: Manifest) -> Manifest:
    """The pod template's spec of a Deployment or StatefulSet."""
    return manifest["spec"]["template"]["spec"]


def only_container(manifest: Manifest) -> Manifest:
    (container,) = pod_spec(manifest)["containers"]
    return container


def container_environment(
    container: Manifest, manifests: dict[str, Manifest], secrets: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The variables Kubernetes gives ``container``: its ``envFrom`` ConfigMaps, then its ``env``
    (values, and keys of ``secrets`` by Secret name; an optional key that is missing stays unset)."""
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environ.update(manifests[f"ConfigMap/{source['configMapRef']['name']}"]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            environ[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        data = (secrets or {}).get(ref["name"], {})
        if ref["key"] in data:
            environ[entry["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: Secret {ref['name']} has no {ref['key']}"
    return environ


def mounted_file(path: str, container: Manifest, manifests: dict[str, Manifest], pod: Manifest) -> str:
    """The text of the ConfigMap file at ``path`` in ``container`` (a pod ``spec``), through its mounts."""
    mount = next(m for m in container["volumeMounts"] if Path(path).is_relative_to(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = manifests[f"ConfigMap/{volume['configMap']['name']}"]
    return config_map["data"][str(Path(path).relative_to(mount["mountPath"]))]


def pod_configuration(manifests: dict[str, Manifest], name: str, directory: Path) -> dict[str, Any]:
    """The validated configuration the container of ``name`` loads: its mounted ConfigMap files,
    unchanged, copied into ``directory``, and its environment (no Secret)."""
    from app.config import DEFAULT_CONFIG_FILES, load_config

    container = only_container(manifests[name])
    environ = container_environment(container, manifests)
    for variable, _ in DEFAULT_CONFIG_FILES:
        local = directory / f"{name.replace('/', '-')}-{Path(environ[variable]).name}"
        local.write_text(mounted_file(environ[variable], container, manifests, pod_spec(manifests[name])))
        environ[variable] = str(local)
    return load_config(environ=environ)
