"""A stage's peak memory is its data, not its history: freed arrays go back to the system at once.

glibc's malloc (Lambda's Amazon Linux, Debian here) serves a large allocation with its own
``mmap`` and unmaps it when freed, but after the first such free it raises that threshold to the
freed size (up to 32 MB), so later column-sized arrays come from the heap, where a freed one below
a live one is kept. A stage allocates and frees many column-sized arrays: at 2M rows Preprocess's
split held 380 MB after it returned (its two sides are 110 MB) and peaked 180 MB higher than with a
fixed threshold. :func:`return_large_frees_to_the_system` fixes the threshold (``mallopt``), in
the process itself, so it holds wherever the stage runs (no environment variable, which glibc
reads only when the process starts, before a warm worker runs the stage).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

#: ``mallopt``'s parameter number for the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
#: Allocations from this size up are mapped on their own and unmapped when freed (1 MB: a column
#: of 128k numbers; smaller ones stay on the heap, where reusing them is cheap).
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def return_large_frees_to_the_system() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES` for this process; returns whether
    it was set (False where the C library is not glibc: nothing to do)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_garbage() -> int:
    """Free now what only reference cycles keep alive (Python's cyclic collector otherwise runs when
    its counters say, which can be in the middle of a stage's data): called at each data stage's
    start and where a stage is about to make its biggest copies. Returns the objects collected.

    Measured (Preprocess's work on a 2M-row upload in a plain process): 668 MB peak without it, 586 MB
    with a collection at the start, 609 MB with one just before the split; after an earlier 49k-row
    run in the same process (a warm Lambda environment) 731 MB without, 612 MB with both.
    """
    return gc.collect()
