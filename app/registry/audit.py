"""The audit trail: who loaded, deleted, aliased, rolled back or trusted what, and whether it worked.

Entries live in the shared store next to the desired state, so every worker
and replica reports the same trail. Recording happens after the action: a
store that cannot take the entry is logged, and the action still stands.
"""

from __future__ import annotations

import logging
from typing import Any

from app.state_store import StateStore, StateStoreUnavailable

log = logging.getLogger(__name__)


class AuditTrail:
    """Records registry actions in the shared store and pages through them."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> None:
        """Add an entry; ``outcome`` is ``"success"`` or ``"failure"`` (``details`` then holds the error)."""
        try:
            self.store.record_audit(actor, action, target, outcome, details)
        except StateStoreUnavailable as exc:  # its store is down (the outage is logged once, not each line)
            log.warning("audit entry %s %s %s not recorded: %s", action, target, outcome, exc.description)
        except Exception:  # the action happened; a lost audit line must be visible, not fatal
            log.exception("could not record audit entry %s %s %s", action, target, outcome)

    def page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Entries, newest first, and how many there are in all."""
        return self.store.audit(limit, offset)
