"""``/audit``: who changed which model, when, and how it ended (newest first)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.audit.schemas import AuditPageSchema, AuditQuerySchema
from app.api.faults import reads_shared_state
from app.extensions import ModelServeBlueprint
from app.security.policy import requires
from app.services import services

blp = ModelServeBlueprint("audit", __name__, url_prefix="/api/v1/audit", description="Audit trail of model management.")


@blp.route("")
class Audit(MethodView):
    @requires("admin")
    @blp.arguments(AuditQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, AuditPageSchema)
    @reads_shared_state(blp)
    def get(self, limit: int, offset: int) -> dict[str, Any]:
        """Management actions (load, delete, alias, rollback), newest first, shared by all workers."""
        entries, total = services().registry.audit(limit, offset)
        return {"entries": entries, "total": total, "limit": limit, "offset": offset}
