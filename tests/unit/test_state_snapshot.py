"""The registry's state saved on disk for a worker that starts while Redis is away."""

from __future__ import annotations

import errno
import os

from app.desired_state import DesiredState
from app.state_snapshot import SavedState


def test_a_saved_state_loads_back(tmp_path):
    saved = SavedState(tmp_path / "redis-state.json")
    assert saved.load() is None
    saved.save(DesiredState.from_json(None, 7))
    assert saved.load().generation == 7


def test_a_save_the_disk_refuses_leaves_no_partial_copy(tmp_path, monkeypatch):
    saved = SavedState(tmp_path / "redis-state.json")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    saved.save(DesiredState.from_json(None, 3))  # best effort: logged, not raised
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    saved.save(DesiredState.from_json(None, 3))  # not marked saved: written once the disk takes it
    assert saved.load().generation == 3
