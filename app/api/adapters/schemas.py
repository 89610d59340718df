"""Response body of ``/adapters``."""

from __future__ import annotations

import marshmallow as ma


class AdapterSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "sklearn"})
    plugin = ma.fields.String(required=True, metadata={"example": "sklearn_adapter"})
    source = ma.fields.String(required=True, metadata={"description": "builtin, plugins_dir or package"})
    location = ma.fields.String(metadata={"description": "File or entry point the plugin came from."})
    package = ma.fields.String(allow_none=True)
    version = ma.fields.String(allow_none=True)
    file_types = ma.fields.List(ma.fields.String(), metadata={"example": [".joblib", ".pkl", ".skops"]})
    status = ma.fields.String(required=True, metadata={"description": "active or failed"})
    error = ma.fields.String(allow_none=True)


class AdapterListSchema(ma.Schema):
    adapters = ma.fields.List(ma.fields.Nested(AdapterSchema), required=True)
    count = ma.fields.Integer(required=True)
