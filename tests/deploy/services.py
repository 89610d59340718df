"""The simulation's processes that are not pods (tests/deploy/replicas.py): a private
``redis-server`` standing in for the Redis Service, Debian's nginx standing in for the API's
Service, and the process wrapper every part of the simulation runs in."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import free_port, poll_until, stop_process_group


class Child:
    """A process in its own session, logging to a file; stopped with its whole process group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None, env: dict | None = None):
        self.name, self.argv, self.log_path, self.cwd, self.env = name, argv, log_path, cwd, env
        self.process: subprocess.Popen | None = None

    def start(self) -> Child:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the process group: no graceful anything, as when a node dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process_group(self.process, timeout=timeout)
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Deadline:
    """The time left to the whole simulation: every wait takes at most this."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        assert left > 0, f"the replica simulation ran out of its {self.seconds:.0f} s"
        return left

    def wait(self, condition: Any, what: str, describe: Any = None) -> Any:
        return poll_until(condition, what, timeout=self.left(), describe=describe)


def redis_server(binary: str, directory: Path) -> tuple[Child, int]:
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    return Child("redis-server", argv, directory / "redis.log").start(), port


NGINX_MAIN = """\
worker_processes 1;
daemon off;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{http}
}}
"""

NGINX_SERVICE = """\
    # The Service of deploy/k8s/service.yaml: round robin over the API pods.
    upstream modelserve {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://modelserve;
            # A pod that is gone refuses the connection: the request goes to the next one, as
            # the Service's endpoints would have dropped it.
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            # Which pod answered, for the test to tell them apart.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
"""


def nginx(binary: str, directory: Path, upstream_ports: list[int]) -> tuple[Child, int]:
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;" for p in upstream_ports)
    return start_nginx(binary, directory, NGINX_SERVICE.format(servers=servers, port=port)), port


def start_nginx(binary: str, directory: Path, http: str) -> Child:
    """Debian's nginx as an unprivileged process, everything it writes under ``directory``;
    ``http`` is the inside of its http block."""
    directory.mkdir(parents=True, exist_ok=True)
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""  # workers stay root's
    config = directory / "nginx.conf"
    config.write_text(NGINX_MAIN.format(user=user, root=directory, http=http))
    argv = [binary, "-e", str(directory / "error.log"), "-p", str(directory), "-c", str(config)]
    return Child("nginx", argv, directory / "nginx.out").start()


def redis_answers(port: int, child: Child) -> bool:
    import redis

    child.check_running()
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
