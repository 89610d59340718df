"""``/adapters``: which model adapters this server has, and which plugins failed."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.adapters.schemas import AdapterListSchema
from app.extensions import ModelServeBlueprint
from app.security.policy import requires
from app.services import services

blp = ModelServeBlueprint("adapters", __name__, url_prefix="/api/v1/adapters", description="Installed model adapters.")


@blp.route("")
class Adapters(MethodView):
    @requires("predict")
    @blp.response(200, AdapterListSchema)
    def get(self) -> dict[str, Any]:
        """List adapters (name, source, version, file types, status) and failed plugins."""
        plugins = services().plugins
        rows: list[dict[str, Any]] = []
        for info in plugins.plugins:
            base = {
                "plugin": info.name,
                "source": info.source,
                "location": info.location,
                "package": info.package,
                "version": info.version,
                "status": info.status,
                "error": info.error,
            }
            if info.status == "failed" or not info.adapters:
                rows.append({**base, "name": info.name, "file_types": []})
            for name in info.adapters:
                rows.append({**base, "name": name, "file_types": list(plugins.adapters[name].file_types)})
        return {"adapters": rows, "count": len(rows)}
