"""What a model costs each worker, measured: its mappings' private and shared pages, from ``/proc/self/smaps``.

A model served from a shared layout (:mod:`app.shared_trees`) lives in a file
every worker maps, so the kernel can say which of its pages this worker alone
holds and which it shares, and what share of them is its own (PSS: a page
shared by four processes counts a quarter to each, so the workers' PSS adds
up to the machine's real use). A private model lives in the worker's heap,
which no file names: it is reported as private, with the size
:func:`app.memory.estimate_bytes` estimated when it loaded. On a platform
without ``/proc`` only that estimate exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.adapters import ModelSharing

SMAPS = Path("/proc/self/smaps")
_FIELDS = {
    "Rss:": "resident",
    "Pss:": "pss",
    "Shared_Clean:": "shared",
    "Shared_Dirty:": "shared",
    "Private_Clean:": "private",
    "Private_Dirty:": "private",
}


def file_mappings(smaps: Path = SMAPS) -> dict[str, dict[str, int]] | None:
    """Bytes per mapped file of this process (resident, pss, shared, private); None without smaps."""
    try:
        text = smaps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        first, _, rest = line.partition(" ")
        key = _FIELDS.get(first)
        if key is not None:
            if current is not None:
                current[key] += int(rest.split()[0]) * 1024
            continue
        if "-" in first and not first.endswith(":"):  # a mapping's header: address perms offset dev inode path
            parts = line.split(None, 5)
            path = parts[5].removesuffix(" (deleted)") if len(parts) == 6 else ""
            current = found.setdefault(path, dict.fromkeys(("resident", "pss", "shared", "private"), 0))
            if not path.startswith("/"):
                current = None
    return found


def model_memory(sharing: ModelSharing, estimate: int, mappings: dict[str, dict[str, int]] | None) -> dict[str, Any]:
    """The ``memory`` block of a model's info: how it is shared and what it costs this worker."""
    if sharing.mode != "mapped_file":
        return {
            "sharing": "private",
            "shared": False,
            "reason": sharing.reason,
            "source": "estimate",
            "private_bytes": estimate,
            "shared_bytes": 0,
            "pss_bytes": estimate,
            "mapped_bytes": 0,
            "resident_bytes": estimate,
        }
    usage = dict.fromkeys(("resident", "pss", "shared", "private"), 0)
    mapped = 0
    for path in sharing.files:
        try:
            mapped += path.stat().st_size
        except OSError:
            pass
        for key, value in ((mappings or {}).get(str(path)) or {}).items():
            usage[key] += value
    return {
        "sharing": "mapped_file",
        "shared": True,
        "reason": None,
        "source": "smaps" if mappings is not None else "unavailable",
        "private_bytes": usage["private"],
        "shared_bytes": usage["shared"],
        "pss_bytes": usage["pss"],
        "mapped_bytes": mapped,
        "resident_bytes": usage["resident"],
        "files": [path.name for path in sharing.files],
    }


def mapped_layouts(directory: Path | None, mappings: dict[str, dict[str, int]] | None) -> list[str]:
    """The shared layouts this worker maps now (file names), whichever version they belong to."""
    if directory is None or mappings is None:
        return []
    root = str(directory.resolve())
    return sorted(Path(path).name for path in mappings if path.startswith(root + "/") and path.endswith(".forest"))


def totals(memories: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Private, shared and proportional bytes of several models, added up."""
    sums = {"private_bytes": 0, "shared_bytes": 0, "pss_bytes": 0}
    for memory in memories:
        for key in sums:
            sums[key] += int(memory.get(key) or 0)
    return sums
