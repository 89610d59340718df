"""A model's memory attributed from smaps: its mapped file's pages, private or shared; a private model's estimate."""

from __future__ import annotations

from pathlib import Path

from app.adapters import ModelSharing
from app.model_memory import file_mappings, mapped_layouts, model_memory, totals

SMAPS = """\
7f0000000000-7f0000100000 r--s 00000000 08:01 123 {layout}
Size:               1024 kB
Rss:                 512 kB
Pss:                 128 kB
Shared_Clean:        512 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
7f0000100000-7f0000200000 r--s 00100000 08:01 123 {layout}
Rss:                   8 kB
Pss:                   8 kB
Shared_Clean:          0 kB
Private_Clean:         8 kB
Private_Dirty:         0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 900 kB
Pss:                 900 kB
Private_Dirty:       900 kB
7f0000300000-7f0000400000 r--p 00000000 08:01 77 {old} (deleted)
Rss:                   4 kB
Pss:                   4 kB
Private_Clean:         4 kB
"""


def write_smaps(tmp_path: Path) -> tuple[Path, Path, Path]:
    layout, old = tmp_path / "a.forest", tmp_path / "b.forest"
    layout.write_bytes(b"\0" * 2048)
    smaps = tmp_path / "smaps"
    smaps.write_text(SMAPS.format(layout=layout, old=old))
    return smaps, layout, old


def test_a_mapped_model_is_its_files_pages(tmp_path):
    smaps, layout, old = write_smaps(tmp_path)
    mappings = file_mappings(smaps)
    memory = model_memory(ModelSharing("mapped_file", (layout,)), 999, mappings)
    assert memory["sharing"] == "mapped_file" and memory["source"] == "smaps"
    assert (memory["resident_bytes"], memory["pss_bytes"]) == (520 * 1024, 136 * 1024)
    assert (memory["shared_bytes"], memory["private_bytes"]) == (512 * 1024, 8 * 1024)
    assert memory["mapped_bytes"] == 2048 and memory["files"] == ["a.forest"]
    assert mapped_layouts(tmp_path, mappings) == ["a.forest", "b.forest"]  # a deleted file still mapped counts


def test_a_private_model_is_its_estimate(tmp_path):
    memory = model_memory(ModelSharing.private("the adapter does not say"), 5000, None)
    assert memory["shared"] is False and memory["reason"] == "the adapter does not say"
    assert (memory["private_bytes"], memory["shared_bytes"], memory["pss_bytes"]) == (5000, 0, 5000)
    assert totals([memory, {"private_bytes": 1, "shared_bytes": 2, "pss_bytes": 3}]) == {
        "private_bytes": 5001,
        "shared_bytes": 2,
        "pss_bytes": 5003,
    }


def test_without_smaps_nothing_is_claimed(tmp_path):
    assert file_mappings(tmp_path / "missing") is None
    memory = model_memory(ModelSharing("mapped_file", (tmp_path / "x.forest",)), 0, None)
    assert memory["source"] == "unavailable" and memory["pss_bytes"] == 0
    assert mapped_layouts(tmp_path, None) == []
