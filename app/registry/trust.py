"""Which model files may run code as they load: those whose sha256 config or an admin trusted.

Unpickling a file (or importing a custom ``.py`` model) runs whatever code it
holds, so an adapter that says a file executes code only gets it when its
content is trusted, unless ``security.allow_unverified_pickles`` (on by default
outside production) lets any through.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from app.adapters import ModelAdapter
from app.desired_state import ModelRecord
from app.errors import ApiError


class UntrustedModel(ApiError):
    """A file that runs code when loaded and that nobody trusted (403)."""

    code = 403


@dataclass(frozen=True)
class TrustPolicy:
    """Which code-running model files may load: by sha256, from config or an admin's approval."""

    trusted: frozenset[str] = frozenset()
    allow_unverified: bool = True

    def check(self, adapter: ModelAdapter, path: Path, record: ModelRecord, approved: Container[str]) -> None:
        """Refuse to let ``adapter`` run the file's code unless its sha256 is trusted.

        ``approved`` holds the digests admins trusted through the API (the shared state's).
        """
        executes_code = getattr(adapter, "executes_code", None)
        if executes_code is not None and not executes_code(path):
            return
        if self.allow_unverified or record.sha256 in self.trusted or record.sha256 in approved:
            return
        raise UntrustedModel(
            f"{record.file} runs code when it is loaded ({adapter.name} adapter) and its sha256 "
            f"{record.sha256} is not trusted. An admin can trust it with POST /api/v1/models/trust "
            f'{{"model_path": "{record.file}"}} or by listing the sha256 in security.trusted_models; '
            "safer still, save it as .skops (scikit-learn) or .json/.ubj (XGBoost)."
        )
