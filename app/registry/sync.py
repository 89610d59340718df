"""Following the shared desired state: this worker's copy of it, read again only when it changed.

Every change (a load, an alias, a rollback, a delete, a trust) is written to the
shared store, SQLite or Redis, which moves a generation number. Before a request
a worker compares that number with its copy's (at most once per
``registry.sync_interval_ms`` when throttled) and reads the state when it moved;
the registry then drops the versions no request can reach any more.
"""

from __future__ import annotations

import logging
import time

from app.desired_state import DEFAULT_ALIAS, DesiredState, ModelRecord
from app.registry.served import Key
from app.state_store import StateStore, StateStoreUnavailable

log = logging.getLogger(__name__)


class StateFollower:
    """This worker's copy of the desired state, and when it last checked the store for a newer one."""

    def __init__(self, store: StateStore, sync_interval_ms: int = 0) -> None:
        self.store = store
        self.state = DesiredState(generation=-1)
        #: Checks are at most once per interval, so a request may not yet know of a change another worker made.
        self.throttled = sync_interval_ms > 0
        self._interval = sync_interval_ms / 1000
        self._checked_at = 0.0

    def poll(self, force: bool = False) -> DesiredState | None:
        """Read the state if the store's generation moved (always when ``force``); ``None`` when nothing changed.

        While the store is unreachable this keeps the state it read last, and
        does not ask the store until the outage's thread finds it answering
        (:class:`~app.dependencies.Outage`): requests are served as before the
        outage. A worker that never read the state serves the copy this machine
        saved last (:mod:`app.state_snapshot`), and raises
        :class:`~app.state_store.StateStoreUnavailable` without one. A store whose
        generation went backwards lost its data (a Redis restarted empty): the
        state read last is written back rather than forgotten.
        """
        if not force and self._interval:
            now = time.monotonic()
            if now - self._checked_at < self._interval:
                return None
            self._checked_at = now
        outage = self.store.dependency
        if outage is not None and outage.down:  # a thread of this worker asks it, and ends the outage when it answers
            return self._without_store(
                StateStoreUnavailable(f"The registry's shared state is unreachable ({outage.error}).")
            )
        try:
            changed = self._read_if_changed(force)
        except StateStoreUnavailable as exc:
            if outage is not None:
                outage.failed(exc.__cause__ or exc)
            return self._without_store(exc)
        if outage is not None:
            outage.answered()
        return changed

    def _without_store(self, unavailable: StateStoreUnavailable) -> DesiredState | None:
        """The state read last (``None``: unchanged), else the copy this machine saved; raise without either."""
        if self.state.generation >= 0:
            return None
        saved = self.store.last_saved()
        if saved is None:
            raise unavailable
        log.warning(
            "the registry's shared state is unreachable: serving the copy saved at generation %d until it answers",
            saved.generation,
        )
        self.state = saved
        return saved

    def _read_if_changed(self, force: bool) -> DesiredState | None:
        if not force and self.store.published_generation() == self.state.generation:
            return None
        state = self.store.read()
        if state.generation < self.state.generation:
            if self.store.restore(self.state):
                log.warning(
                    "the registry's shared state went back from generation %d to %d (its store lost its data): "
                    "restored the state this worker read last",
                    self.state.generation,
                    state.generation,
                )
            return None
        self.state = state
        return state


def reachable_versions(state: DesiredState, default_model: str) -> dict[Key, ModelRecord]:
    """Versions a request can reach: each model's current one and every alias target."""
    found = {(name, m.current): m.current_record for name, m in state.models.items()}
    for alias in (*state.aliases, DEFAULT_ALIAS):
        key = state.resolve(alias, default_model)
        if key is not None:
            found[key] = state.models[key[0]].versions[key[1]]
    return found
