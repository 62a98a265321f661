"""The program's heap: a freed frame's pages go to the next frame, and back to the system between files."""

import subprocess
import sys

import pytest

from exposed.batch.heap import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")

# Allocates, touches and frees 64 MB (as a frame would be) through the C heap, after the program's
# setting or without it; prints the page faults of a second such frame, and the resident memory
# (MB) with it freed, then after the heap's free pages are handed back.
PROBE = """
import ctypes, resource, sys
from exposed.batch.heap import keep_freed_memory, release_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
size = 64 << 20
def frame():
    pointer = libc.malloc(size)
    ctypes.memset(pointer, 1, size)
    return pointer
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
libc.free(frame())
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
libc.free(frame())
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
kept = resident_mb()
release_freed_memory()
print(faults, kept, resident_mb())
"""


def _probe(how: str) -> tuple[int, float, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    faults, kept, released = done.stdout.split()
    return int(faults), float(kept), float(released)


def test_a_freed_frames_pages_serve_the_next_frame():
    pages = (64 << 20) // 4096
    plain_faults, _, _ = _probe("plain")
    kept_faults, _, _ = _probe("keep")
    assert plain_faults > pages // 2  # glibc maps a new frame afresh: a fault for every page touched
    assert kept_faults < pages // 20  # the heap's own pages, faulted in once


def test_freed_pages_go_back_to_the_system_between_files():
    _, kept, released = _probe("keep")
    assert kept - released > 48  # of the 64 MB freed frame, held until handed back
