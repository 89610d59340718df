"""``kubectl kustomize deploy/k8s`` renders, and the configuration files it renders are the ones
modelserve validates: what ``kubectl apply -k deploy/k8s`` gives the pods is checked, not only the
files in git."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.manifests import (
    SUPPORTED_FIELDS,
    by_name,
    kubectl,
    kubectl_kustomize,
    pod_configuration,
    render,
    rendered,
)
from tests.deploy.support import K8S_DIR


def test_kubectl_kustomize_renders_deploy_k8s():
    if kubectl() is None:
        pytest.skip("kubectl not installed (Debian's kubernetes-client is too old for 'labels'): install kubectl")
    manifests = kubectl_kustomize()
    assert len(by_name(manifests)) == len(manifests) > 0
    for manifest in manifests:
        assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelserve"


def test_the_fallback_renderer_renders_what_kubectl_does():
    """tests/deploy/manifests.py stands in for kubectl where it is missing: it must agree with it."""
    if kubectl() is None:
        pytest.skip("kubectl not installed: nothing to compare the fallback renderer with")
    assert by_name(render()) == by_name(kubectl_kustomize())


def test_the_fallback_renderer_refuses_what_it_does_not_implement(tmp_path):
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert set(kustomization) <= SUPPORTED_FIELDS
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({**kustomization, "namePrefix": "x-"}))
    with pytest.raises(NotImplementedError, match="namePrefix"):
        render(tmp_path)


@pytest.mark.parametrize("name", ["Deployment/modelserve", "Deployment/modelserve-worker"])
def test_the_rendered_configuration_files_validate(name, tmp_path):
    """Each file of the rendered ConfigMap, unchanged, with the rendered pod's environment."""
    settings = pod_configuration(by_name(rendered()), name, tmp_path)
    assert settings["environment"] == "production"
    assert settings["registry"]["backend"] == "redis" and settings["jobs"]["backend"] == "celery"
    assert settings["security"]["rate_limit_storage"].startswith("redis://")
