"""The allocator policy of interp/memory.py: freed blocks stay with the process for reuse.

Each case runs in a fresh interpreter, since the policy is process-wide: 24 blocks of 8 MB
are written (so their pages are real), freed, and the resident set is read before and after.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import torch
from oversight.interp.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
blocks = [torch.ones(2 * 2**20) for _ in range(24)]  # 8 MB each
full = rss_mb()
del blocks
print(full - rss_mb())
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")


def _released_mb(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@linux_only
def test_freed_memory_is_kept_only_with_the_policy() -> None:
    assert _released_mb("default") > 100  # glibc hands most of the 192 MB back to the kernel
    assert _released_mb("keep") < 20  # kept for the next capture: no page faults to pay again
