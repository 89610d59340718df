"""What the API says about models: ``/models`` entries and ``/models/{name}/info``.

Built in :mod:`app.registry.info`, beside the registry that also hands the
same mapping to the ``model_loaded`` hook; the API imports it from here.
"""

from __future__ import annotations

from app.registry.info import model_info, model_summary, version_summary

__all__ = ["model_info", "model_summary", "version_summary"]
