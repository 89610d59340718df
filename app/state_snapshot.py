"""The registry's shared state as this machine last read it, kept on disk for a worker that starts while Redis is away.

A worker that starts (or replaces a killed one) during a Redis outage cannot
read which models to serve. Each time a worker reads a new generation from
Redis it saves the document in ``registry.state_directory``; a worker that
finds Redis unreachable at start-up serves that copy until Redis answers,
rather than answering 503. Saving is best effort: a read-only or full disk
only loses this fallback.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from app.desired_state import DesiredState

log = logging.getLogger(__name__)
FILE_NAME = "redis-state.json"


class SavedState:
    """One JSON file: the document and its generation, replaced whole (never half written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved_generation = -1

    def save(self, state: DesiredState) -> None:
        if state.generation == self._saved_generation:
            return
        body = json.dumps({"generation": state.generation, "doc": state.to_json()}, separators=(",", ":"))
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".redis-state-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(body)
            os.replace(tmp, self.path)
            self._saved_generation = state.generation
        except OSError as exc:
            log.warning("could not save the registry's state to %s: %s", self.path, exc)
            if tmp is not None:  # a full disk: give back what the half-written copy took
                Path(tmp).unlink(missing_ok=True)

    def load(self) -> DesiredState | None:
        """The state saved last, or None (never saved, or unreadable)."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            return DesiredState.from_json(saved["doc"], int(saved["generation"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("no saved registry state to serve from (%s): %s", self.path, exc)
            return None
