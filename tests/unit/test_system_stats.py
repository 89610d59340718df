"""Readings behind health and the process gauges: cgroup limits, CPU, thresholds."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from app import system_stats
from app.health import by_threshold, worst


def cgroup(tmp_path: Path, limit: str, usage: int, inactive_file: int = 0) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "memory.max").write_text(limit + "\n")
    (tmp_path / "memory.current").write_text(f"{usage}\n")
    (tmp_path / "memory.stat").write_text(f"anon 1\ninactive_file {inactive_file}\nactive_file 2\n")
    return tmp_path


def test_memory_is_measured_against_the_cgroup_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(system_stats, "CGROUP_V2", cgroup(tmp_path, str(1000 * 2**20), 600 * 2**20, 100 * 2**20))
    assert system_stats.memory_used_percent() == 50.0  # the working set: usage minus inactive file cache


def test_without_a_cgroup_limit_the_host_memory_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(system_stats, "CGROUP_V2", cgroup(tmp_path / "v2", "max", 5))
    monkeypatch.setattr(system_stats, "CGROUP_V1", tmp_path / "absent")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=8, percent=42.5))
    assert system_stats.memory_used_percent() == 42.5


def test_cgroup_v1_limit(tmp_path, monkeypatch):
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(str(400 * 2**20))
    (v1 / "memory.usage_in_bytes").write_text(str(100 * 2**20))
    monkeypatch.setattr(system_stats, "CGROUP_V2", tmp_path / "absent")
    monkeypatch.setattr(system_stats, "CGROUP_V1", v1)
    assert system_stats.memory_used_percent() == 25.0


def test_disk_use_of_the_state_directory(tmp_path):
    assert 0 < system_stats.disk_used_percent(tmp_path) <= 100


def test_server_processes_are_the_master_and_its_children(monkeypatch):
    monkeypatch.setenv(system_stats.SERVER_PID_ENV, str(os.getppid()))
    pids = [p.pid for p in system_stats.server_processes()]
    assert pids[0] == os.getppid() and os.getpid() in pids
    monkeypatch.setenv(system_stats.SERVER_PID_ENV, "not-a-pid")
    assert [p.pid for p in system_stats.server_processes()] == [os.getpid()]
    monkeypatch.delenv(system_stats.SERVER_PID_ENV)
    assert [p.pid for p in system_stats.server_processes()] == [os.getpid()]


def test_cpu_meter_measures_between_readings():
    meter = system_stats.CpuMeter()
    me = [psutil.Process()]
    assert meter.percent(me) >= 0  # since the process started
    started = time.process_time()
    while time.process_time() - started < 0.05:  # CPU work between the readings, more than a clock tick
        pass
    assert meter.percent(me) > 0
    assert system_stats.memory_usage_bytes(me) > 10_000_000


@pytest.mark.parametrize(
    ("used", "expected"),
    [(0.0, "healthy"), (80.0, "healthy"), (80.1, "degraded"), (90.0, "degraded"), (90.1, "unhealthy")],
)
def test_thresholds(used, expected):
    assert by_threshold(used, degraded=80, unhealthy=90) == expected


def test_worst_status_wins():
    assert worst("healthy", "degraded", "healthy") == "degraded"
    assert worst("degraded", "unhealthy") == "unhealthy"
    assert worst("healthy") == "healthy"
