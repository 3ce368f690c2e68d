"""glibc malloc settings for the ``otel-costattr serve`` process (and nothing else).

Each export request serve handles allocates and frees a few buffers of hundreds of kB to a few MB (the decoded
message, the serialized request, the gzip body). With glibc's defaults those go to ``mmap`` or, freed at the
top of the heap, are returned to the kernel at once, so the next request may touch fresh pages: up to ~450 page
faults per 512-span request, 3 us each on a VM, 5-8% of serve's CPU time (``benchmarks/bench_allocator.py``
measures it against the defaults in the same run; how many faults the defaults cost depends on the process's
heap history, so on the environment). Raising the two thresholds to the values
glibc's own dynamic adjustment tops out at keeps those buffers in the heap and reused.

Only the serve command calls :func:`tune_for_serving`: the library never changes the allocator of a process it
is embedded in. It is a no-op off glibc, and when the user set glibc's own tunables (``GLIBC_TUNABLES`` or the
``MALLOC_*_`` variables), which then win.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_for_serving"]

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 1024 * 1024  # allocations below this come from the heap, not a fresh mmap
TRIM_THRESHOLD = 64 * 1024 * 1024  # free memory at the heap top kept for reuse before it is given back
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune_for_serving() -> bool:
    """Apply serve's malloc thresholds to this process. True if applied; False (nothing changed) when this is
    not glibc, or the user has set glibc's malloc tunables. Never raises."""
    if not sys.platform.startswith("linux") or any(os.environ.get(name) for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them (no ldconfig lookup)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl has a mallopt that ignores everything
            return False
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
