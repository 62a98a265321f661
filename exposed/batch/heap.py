"""The C heap of the ``exposed`` program: freed frames kept for the next, not handed back page by page.

glibc's malloc serves every allocation above 32 MB (a 12 MP frame in float32 is 48 MB) with a
mapping of its own and unmaps it when it is freed, so every frame-sized tensor and array starts on
pages the kernel must fault in and zero afresh: some 250,000 faults for one 12 MP photo, half a
second on a virtual machine (benchmarks/results/speed.md). Served from the heap, which is not
trimmed while a photo is worked on, a freed frame's pages go to the next. Between the files of a
batch the heap's free pages are handed back, so a batch holds what one file needs.

Only the program does this (:func:`exposed.cli.entry`): a library does not retune its host
process's allocator. Elsewhere than glibc (macOS, musl) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: 2 GB of free heap top is never reached


@cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library, if it is glibc."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep its freed pages; whether it could."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (between the files of a batch)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
