"""Hostile clients for the chaos tests: connections that trickle a request's headers or body,
and a fast client that measures how long the other requests wait meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import requests

BODY_LENGTH = 4096


class Slowloris:
    """``count`` connections, each sending one header line (``body=False``) or one body byte
    (``body=True``, after complete headers) every ``interval`` seconds, never finishing.

    Half-sent requests are what a slow mobile link or an attacker looks like to the server: each
    holds whatever reads it (a gunicorn thread, or nginx's buffer) until the request completes.
    """

    def __init__(self, host: str, port: int, count: int, *, body: bool, interval: float = 1.0):
        self.host, self.port, self.count, self.body, self.interval = host, port, count, body, interval
        self.sockets: list[socket.socket] = []
        self.sent_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slowloris", daemon=True)

    def __enter__(self) -> Slowloris:
        for _ in range(self.count):
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(self._opening())
            self.sockets.append(sock)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()

    def _opening(self) -> bytes:
        head = f"POST /api/v1/predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        if self.body:  # complete headers, then the body one byte at a time
            return (head + f"Content-Length: {BODY_LENGTH}\r\n\r\n" + '{"features": [').encode()
        return head.encode()

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            chunk = b" " if self.body else f"X-Slow-{self.sent_lines}: 1\r\n".encode()
            for sock in list(self.sockets):
                try:
                    sock.sendall(chunk)
                except OSError:  # the server gave up on this one: that is allowed
                    self.sockets.remove(sock)
                    sock.close()
            self.sent_lines += 1

    def open_connections(self) -> int:
        """How many of the slow connections the server (or proxy) still holds."""
        return len(self.sockets)


@dataclass
class Probe:
    """Fast requests, each on a new connection, sent while the slow clients trickle."""

    waits: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, url: str, count: int, timeout: float, pause: float = 0.1) -> Probe:
        for _ in range(count):
            started = time.monotonic()
            try:
                response = requests.get(url, timeout=timeout, headers={"Connection": "close"})
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self.waits.append(time.monotonic() - started)
            time.sleep(pause)  # spread the probes over the slow clients' trickle
        return self

    @property
    def slowest(self) -> float:
        return max(self.waits)

    def summary(self) -> str:
        return f"{len(self.failures)} of {len(self.waits)} failed, slowest {self.slowest:.2f} s: {self.failures}"
