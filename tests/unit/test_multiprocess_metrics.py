"""The multiprocess directory gunicorn's master prepares for the workers' metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import multiprocess_metrics as mp
from app.system_stats import SERVER_PID_ENV


def test_a_fresh_temporary_directory_by_default():
    environ: dict[str, str] = {}
    path = mp.prepare(True, environ)
    try:
        assert path.is_dir() and not any(path.iterdir())
        assert environ[mp.MULTIPROC_ENV] == str(path)
        assert environ[SERVER_PID_ENV] == str(os.getpid())
    finally:
        mp.cleanup(environ)
    assert not path.exists()


def test_an_operators_directory_is_emptied_of_old_samples_and_kept(tmp_path: Path):
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not ours")
    environ = {mp.MULTIPROC_ENV: str(tmp_path)}
    assert mp.prepare(True, environ) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    mp.cleanup(environ)
    assert tmp_path.is_dir()


def test_a_re_executed_master_makes_its_own_directory(tmp_path: Path):
    environ = {mp.MULTIPROC_ENV: str(tmp_path), mp.OWNER_ENV: "1"}  # inherited from the old master
    path = mp.prepare(True, environ)
    try:
        assert path != tmp_path and environ[mp.OWNER_ENV] == str(os.getpid())
    finally:
        mp.cleanup(environ)


def test_metrics_off_leaves_no_directory():
    environ = {mp.MULTIPROC_ENV: "/somewhere"}
    assert mp.prepare(False, environ) is None
    assert mp.MULTIPROC_ENV not in environ and environ[SERVER_PID_ENV] == str(os.getpid())


def test_metrics_refuse_a_single_process_client_in_multiprocess_mode(monkeypatch, tmp_path: Path):
    """prometheus_client chose single-process mode on import: sharing would silently fail."""
    from app.metrics import Metrics

    monkeypatch.setenv(mp.MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="imported before PROMETHEUS_MULTIPROC_DIR"):
        Metrics()
