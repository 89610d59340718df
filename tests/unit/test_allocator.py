"""app.allocator: with fixed thresholds, the memory of large blocks goes back to the system when freed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app import allocator

#: Frees 64 blocks of 256 KiB that sit between small blocks still alive, then prints the RSS
#: it kept (KiB). glibc's default raises its thresholds on the first free and keeps them.
SCRIPT = """
import sys
from app import allocator
if sys.argv[1] == "fixed":
    assert allocator.fix_thresholds()
def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
warm = [bytes(300 * 1024)]
del warm
before = rss()
big, small = [], []
for i in range(64):
    big.append(bytes([1]) * (256 * 1024))
    small.append(bytes([2]) * 2048)
del big
print(rss() - before)
"""


def kept_kib(mode: str) -> int:
    found = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(found.stdout.strip())


@pytest.mark.skipif(allocator.glibc() is None, reason="glibc only")
def test_fixed_thresholds_give_freed_large_blocks_back():
    assert kept_kib("default") > 8 * 1024  # 16 MiB freed, still resident
    assert kept_kib("fixed") < 2 * 1024
