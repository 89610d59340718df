"""Training provenance: refuse models trained with other library versions than the server runs.

Unpickling a scikit-learn model under another scikit-learn version can give
silently wrong predictions; the sidecar's ``training`` block says what the
model was trained with, and this module compares it with what is installed.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version

#: Distributions compared exactly; the key is how the sidecar names them.
CHECKED = {"scikit-learn": ("scikit-learn",), "xgboost": ("xgboost", "xgboost-cpu")}


@cache
def running_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for key, distributions in CHECKED.items():
        for dist in distributions:
            try:
                found[key] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


def mismatches(training: Mapping[str, str] | None) -> dict[str, dict[str, str]]:
    """Return {library: {"trained": v1, "running": v2}} for each version that differs.

    Python is compared on major.minor; libraries exactly. Libraries the
    sidecar does not name, or this server does not have, are not compared.
    """
    if not training:
        return {}
    running = running_versions()
    found: dict[str, dict[str, str]] = {}
    for key, trained in training.items():
        here = running.get(key)
        if here is None or key not in ("python", *CHECKED):
            continue
        same = trained.split(".")[:2] == here.split(".")[:2] if key == "python" else trained == here
        if not same:
            found[key] = {"trained": trained, "running": here}
    return found


def describe(found: Mapping[str, Mapping[str, str]]) -> str:
    return ", ".join(f"{lib} {v['trained']} (this server runs {v['running']})" for lib, v in found.items())
