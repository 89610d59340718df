"""The audit trail of management actions."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class AuditQuerySchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))


class AuditEntrySchema(ma.Schema):
    at = ma.fields.String(required=True, metadata={"example": "2026-11-27T22:04:03.879Z"})
    actor = ma.fields.String(required=True, metadata={"description": "Who did it (user id, or anonymous)."})
    action = ma.fields.String(
        required=True,
        metadata={"description": "load, delete, alias, unalias, rollback, trust, create_api_key (the CLI)"},
    )
    target = ma.fields.String(required=True, metadata={"description": "Model or alias name."})
    outcome = ma.fields.String(required=True, metadata={"description": "success or failure"})
    details = ma.fields.Dict(metadata={"description": "What changed (versions, file, sha256) or the error."})


class AuditPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(AuditEntrySchema), required=True)
    total = ma.fields.Integer(required=True)
    limit = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
