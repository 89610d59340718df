"""What a call on the shared state answers when a dependency fails, declared once for the OpenAPI document.

The registry's shared state and the job store live in Redis or SQLite under
the state directory: a call that needs them answers 503 while Redis is
unreachable or the disk is read-only, and a call that writes them 507 when
the disk is full (:mod:`app.storage_faults`, :mod:`app.dependencies`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

UNAVAILABLE = "The shared state is unreachable (Redis) or read-only (the disk); the message says which."
FULL = "The disk the change would be written to is full; nothing was changed."


def reads_shared_state(blp: Any) -> Callable[[Any], Any]:
    """Document the 503 of a view that reads the shared state."""
    return blp.alt_response(503, response="SERVICE_UNAVAILABLE", description=UNAVAILABLE)


def writes_shared_state(blp: Any) -> Callable[[Any], Any]:
    """Document the 503 and 507 of a view that changes the shared state."""

    def document(view: Any) -> Any:
        view = blp.alt_response(507, response="INSUFFICIENT_STORAGE", description=FULL)(view)
        return reads_shared_state(blp)(view)

    return document
