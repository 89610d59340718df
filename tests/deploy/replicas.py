"""deploy/k8s run on one machine, as close to a cluster as this machine allows (test_replicas.py).

What stands in for what:

- a pod is a process started as its container would be: the image's ``CMD`` (gunicorn) for the
  API, worker.yaml's command for a Celery worker. Its working directory mirrors the image's
  ``/app`` (the code linked in, as scripts/install.sh copies it), with the pod's volumes mounted
  there as links: a PersistentVolumeClaim is one directory every pod shares, an emptyDir a
  directory of the pod's own, new when the pod is replaced;
- its environment is what the manifests give the container (``env``, ``envFrom``, the Secret's
  keys) over the image's ``ENV``. Two things differ, as a cluster would make them: the Redis
  Service's name resolves to the simulation's private redis-server, and each API pod listens on
  its own loopback port (one network namespace here, not one per pod);
- the Service is Debian's nginx, round robin over the API pods;
- Redis is a private ``redis-server`` on a free port.

The configuration files are the rendered ConfigMap's, unchanged. Every wait is bounded by the
cluster's deadline, and every process started is stopped (its whole process group).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from app.config import ENV_VARS
from tests.deploy.manifests import Manifest, container_environment, only_container, pod_spec
from tests.deploy.services import Child, Deadline, nginx, redis_answers, redis_server
from tests.deploy.support import dockerfile_stages, tool
from tests.helpers import PROJECT_ROOT, free_port

API, WORKER = "Deployment/modelserve", "Deployment/modelserve-worker"
REDIS_SERVICE = "Service/modelserve-redis"
#: What scripts/install.sh puts in the image's /app, besides the volumes mounted there.
IMAGE_FILES = ("app", "plugins", "config", "gunicorn.conf.py")
VENV_BIN = Path(sys.executable).parent


class Pod:
    """One container of a Deployment, started from its manifest (see the module's docstring)."""

    def __init__(self, cluster: Cluster, workload: str, name: str, port: int | None = None):
        self.cluster, self.workload, self.name, self.port = cluster, workload, name, port
        self.container = only_container(cluster.manifests[workload])
        self.dir = cluster.root / "pods" / name
        self.workdir = self.dir / "app"
        self.workdir.mkdir(parents=True)
        for item in IMAGE_FILES:
            (self.workdir / item).symlink_to(PROJECT_ROOT / item)
        self.paths = self._mount_volumes()
        self.env = self._environment()
        argv = self.container.get("command", []) + self.container.get("args", []) or cluster.image_cmd
        argv = [str(VENV_BIN / argv[0]), *argv[1:]]
        self.child = Child(name, argv, self.dir / "pod.log", cwd=self.workdir, env=self.env)
        self.url = f"http://127.0.0.1:{port}" if port else None

    def _mount_volumes(self) -> dict[str, Path]:
        """Mount each volume (a link under the working directory); return where each mount path is."""
        volumes = {v["name"]: v for v in pod_spec(self.cluster.manifests[self.workload])["volumes"]}
        paths = {}
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                backing = self.cluster.config_map_dir(volume["configMap"]["name"])
            elif "persistentVolumeClaim" in volume:
                backing = self.cluster.volume(volume["persistentVolumeClaim"]["claimName"])
            else:
                assert "emptyDir" in volume, volume
                backing = self.dir / "volumes" / mount["name"]
                backing.mkdir(parents=True)
            path = Path(mount["mountPath"])
            if path.is_relative_to(self.cluster.image_workdir):
                link = self.workdir / path.relative_to(self.cluster.image_workdir)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(backing)
            paths[mount["mountPath"]] = backing
        return paths

    def _environment(self) -> dict[str, str]:
        cluster = self.cluster
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in ENV_VARS and not k.startswith(("MODELSERVE_", "PROMETHEUS_"))
        }
        image = {
            **cluster.image_env,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(self.workdir),
            "TMPDIR": str(self.paths.get("/tmp", self.dir)),
            "HOSTNAME": socket.gethostname(),  # a pod's host name is its own; Celery's node name uses it
        }
        if self.port:
            image.update(API_HOST="127.0.0.1", API_PORT=str(self.port))
        pod = container_environment(self.container, cluster.manifests, cluster.secrets)
        for name, value in pod.items():
            for service, address in cluster.service_addresses.items():
                value = value.replace(f"//{service}/", f"//{address}/")
            pod[name] = self._local_path(value)
        return {**base, **image, **pod}

    def _local_path(self, value: str) -> str:
        """A path in a volume mounted outside the working directory (/etc/modelserve), here."""
        for mount_path, backing in self.paths.items():
            if value.startswith(mount_path + "/") and not Path(mount_path).is_relative_to(self.cluster.image_workdir):
                return str(backing / Path(value).relative_to(mount_path))
        return value

    def start(self) -> Pod:
        self.cluster.started.append(self.child.start())
        return self

    def ready(self) -> bool:
        """The container's readiness probe (the API), or its startup probe (a worker) passes."""
        self.child.check_running()
        if "readinessProbe" in self.container:
            probe = self.container["readinessProbe"]["httpGet"]
            try:
                return requests.get(self.url + probe["path"], timeout=5).status_code == 200
            except requests.RequestException:
                return False
        command = self.container["startupProbe"]["exec"]["command"]
        result = subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, timeout=30)
        return result.returncode == 0

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """Straight to this pod, as Prometheus scrapes it."""
        return requests.get(self.url + path, timeout=30, **kwargs)


class Cluster:
    """Redis, ``replicas`` API pods, one Celery worker and the Service, from rendered manifests."""

    def __init__(self, root: Path, manifests: dict[str, Manifest], secrets: dict, seconds: float, replicas: int = 3):
        self.root, self.manifests, self.secrets, self.replicas = root, manifests, secrets, replicas
        self.redis_binary = tool("redis-server", "the Debian package redis-server")
        self.nginx_binary = tool("nginx", "the Debian package nginx")
        self.deadline = Deadline(seconds)
        _, stages = dockerfile_stages()
        self.image_workdir = Path(stages[-1].last("WORKDIR").args)
        self.image_cmd = stages[-1].last("CMD").exec_form
        self.image_env = {k: v for k, v in stages[-1].env().items() if "$" not in v}
        #: Every process started, in order: stopped in the reverse order.
        self.started: list[Child] = []
        self.pods: list[Pod] = []
        self.incarnations = 0

    # --- the shared pieces ----------------------------------------------------------------------

    def volume(self, claim: str) -> Path:
        """The directory behind a PersistentVolumeClaim: one for every pod that mounts it."""
        path = self.root / "volumes" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def config_map_dir(self, name: str) -> Path:
        """The rendered ConfigMap's files, unchanged, as Kubernetes mounts them."""
        path = self.root / "configmaps" / name
        if not path.exists():
            path.mkdir(parents=True)
            for key, text in self.manifests[f"ConfigMap/{name}"]["data"].items():
                (path / key).write_text(text, encoding="utf-8")
        return path

    # --- life ------------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        redis, port = redis_server(self.redis_binary, self.root)
        self.started.append(redis)
        self.deadline.wait(lambda: redis_answers(port, redis), "redis-server")
        (service_port,) = self.manifests[REDIS_SERVICE]["spec"]["ports"]
        name = self.manifests[REDIS_SERVICE]["metadata"]["name"]
        self.service_addresses = {f"{name}:{service_port['port']}": f"127.0.0.1:{port}"}
        self.pods = [Pod(self, API, f"modelserve-{i}", free_port()).start() for i in range(self.replicas)]
        self.worker = Pod(self, WORKER, "modelserve-worker-0").start()
        for pod in [*self.pods, self.worker]:
            self.deadline.wait(pod.ready, f"{pod.name} to be ready", describe=lambda p=pod: p.child.log()[-4000:])
        self.service, self.service_port = nginx(self.nginx_binary, self.root / "nginx", [pod.port for pod in self.pods])
        self.started.append(self.service)
        self.url = f"http://127.0.0.1:{self.service_port}"
        self.deadline.wait(self._service_answers, "nginx", describe=lambda: self.service.log())

    def __exit__(self, *exc: Any) -> None:
        for child in reversed(self.started):
            child.stop()

    def replace(self, pod: Pod) -> Pod:
        """What the Deployment does when a pod dies (killed here if it still runs): a new pod, with new
        emptyDirs, here on the same port."""
        pod.child.kill()
        self.incarnations += 1
        new = Pod(self, pod.workload, f"{pod.name}-r{self.incarnations}", pod.port).start()
        self.pods[self.pods.index(pod)] = new
        self.deadline.wait(new.ready, f"{new.name} to be ready", describe=lambda: new.child.log()[-4000:])
        return new

    def _service_answers(self) -> bool:
        self.service.check_running()
        try:
            return requests.get(self.url + "/api/v1/health/live", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    # --- through the Service ---------------------------------------------------------------------

    def request(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), **({"X-API-Key": key} if key else {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def answered_by(self, response: requests.Response) -> Pod:
        """The pod nginx took the answer from (the last one it tried)."""
        port = int(response.headers["X-Upstream"].split(",")[-1].strip().rsplit(":", 1)[1])
        return next(pod for pod in self.pods if pod.port == port)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.child.log()[-3000:]}" for p in [*self.pods, self.worker])
