"""Process-wide memory allocator settings, and giving freed memory back to the system.

glibc's malloc serves an allocation from its heap arenas below ``M_MMAP_THRESHOLD`` and with a fresh mapping
above it; by default that threshold rises (up to 32 MiB) each time a mapped block is freed, and the heap is
trimmed back to the system only when ``M_TRIM_THRESHOLD`` bytes are free at its top.

`tune_malloc` serves large temporaries from the heap (threshold 32 MiB) and keeps up to 1 GiB of freed heap:
no mmap/munmap pair and page faults per temporary. A long-running process (`forecast worker`) also calls
`release_free_memory` after each cycle that did work: ``malloc_trim(0)`` hands the free pages of every arena
back to the system (tens of milliseconds), so the holes freed field-sized temporaries leave in the arenas do
not stay resident. Measured at 1000 x 1000, ingest and QC of one new slot per cycle, 12 cycles:

- heap + trim after each cycle: QC 1.63 s (median), resident 275 -> 330 MiB, flat (329-330) over the last 7;
- heap, no trim: QC 1.44 s, resident 536 -> 609 MiB, still growing;
- every block of 256 KiB or more in its own mapping (the worker's setting before): QC 3.45 s - a page fault
  per 4 KiB of every temporary - and resident 231 -> 248 MiB, still growing.
"""

from __future__ import annotations

import os

_MALLOC_TUNED: str | None = None

#: (mmap threshold, trim threshold) in bytes
THRESHOLDS = (32 << 20, 1 << 30)


def tune_malloc() -> bool:
    """glibc only: apply `THRESHOLDS` (see the module docstring), once per process.
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment win when set; FORECAST_TUNE_MALLOC=0
    turns it off. True when the setting was applied by this call or an earlier one."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED != "off"
    _MALLOC_TUNED = "off"
    if os.environ.get("FORECAST_TUNE_MALLOC", "1") == "0":
        return False
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        # numpy madvises every array >= 4 MiB for transparent huge pages; with THP defrag "madvise"
        # (a common default) each first touch may compact memory synchronously: measured 40% less
        # system time without it
        try:
            from numpy._core.multiarray import _set_madvise_hugepage

            _set_madvise_hugepage(False)
        except ImportError:  # pragma: no cover - numpy < 2 or a build without it
            pass
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    mmap_threshold, trim_threshold = THRESHOLDS
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        if libc.mallopt(m_mmap_threshold, int(mmap_threshold)) and libc.mallopt(m_trim_threshold, int(trim_threshold)):
            _MALLOC_TUNED = "on"
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        pass
    return _MALLOC_TUNED != "off"



def release_free_memory() -> bool:
    """glibc only: give the free pages of every malloc arena back to the system (``malloc_trim(0)``). True
    when some memory was released; False when none was or where there is no such call (not glibc)."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


def resident_mib() -> float | None:
    """This process's resident memory (RSS) in MiB (psutil); None where the system does not tell."""
    import psutil

    try:
        return psutil.Process().memory_info().rss / 2**20
    except psutil.Error:
        return None
