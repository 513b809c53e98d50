"""The allocator policy that makes capturing activations on CPU cost what the hooks cost.

A capture keeps every captured tensor alive through the forward pass, so each layer's output
needs memory the pass cannot recycle, and glibc's malloc hands large freed blocks back to the
kernel (``munmap``, or trimming the top of the heap). The next capture then faults all of it
in again, page by page, zeroed by the kernel. On the default model (64 prompts × 64 tokens, 18
residual layers, 189 MB a call, 1 thread) that was +4% to +10% over a plain forward pass; with
the freed pages kept for reuse, 0% to +1% (``benchmarks/trace_overhead.py`` prints both). The
hooks themselves cost about 1 ms a call.

It is a setting of the whole process, so the application chooses it: the CLI does for the
commands that run a local model; a library caller may call :func:`keep_freed_memory` once at
start. The price is memory: up to ``trim_threshold`` bytes of freed heap stay with the process
instead of going back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: ``mallopt`` parameters, from glibc's ``malloc.h``.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's ceiling for the mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``).
MAX_MMAP_THRESHOLD = 32 * 2**20
#: Freed heap kept for reuse by default: room for a few captures of a small model.
DEFAULT_TRIM_THRESHOLD = 2**30

#: The same policy for a process that does not import oversight (``GLIBC_TUNABLES``).
GLIBC_TUNABLES = f"glibc.malloc.trim_threshold={DEFAULT_TRIM_THRESHOLD}:glibc.malloc.mmap_threshold={MAX_MMAP_THRESHOLD}"


def keep_freed_memory(trim_threshold: int = DEFAULT_TRIM_THRESHOLD, mmap_threshold: int = MAX_MMAP_THRESHOLD) -> bool:
    """Ask glibc's malloc to keep up to ``trim_threshold`` bytes of freed heap for reuse and to
    serve blocks up to ``mmap_threshold`` bytes from the heap. Returns False, changing nothing,
    where the C library is not glibc (macOS, musl) or refuses the values."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, trim_threshold)) and bool(mallopt(M_MMAP_THRESHOLD, min(mmap_threshold, MAX_MMAP_THRESHOLD)))
