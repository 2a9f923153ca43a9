"""Process-wide memory allocator settings: one profile for batch commands, one for long-running services.

glibc's malloc serves an allocation from its heap arenas below ``M_MMAP_THRESHOLD`` and with a fresh
mapping above it; by default that threshold rises (up to 32 MiB) each time a mapped block is freed, and
the heap is trimmed back to the system only when ``M_TRIM_THRESHOLD`` bytes are free at its top.

- ``"batch"`` (QC and ingest commands, which run once and exit): large temporaries from the heap and up
  to 1 GiB of freed heap kept - no mmap/munmap pair and page faults per temporary.
- ``"service"`` (`forecast worker`, which runs for months): every block of 256 KiB or more gets its own
  mapping and goes back to the system when freed; the threshold stays there. Measured with
  ``bench/worker.py``'s replay: under the batch profile (or glibc's defaults) the worker's resident memory
  grew by 1.5-3 MiB per cycle - freed field-sized temporaries of the cycle's threads left holes in the
  heap arenas that later, differently sized ones did not fill - while the memory in use stayed flat.
  With this profile it starts lower (about 420 against 700 MiB) and grows 4.5x less over a day.
"""

from __future__ import annotations

import os
from typing import Literal

_MALLOC_TUNED: str | None = None

#: (mmap threshold, trim threshold) in bytes per profile
PROFILES = {"batch": (32 << 20, 1 << 30), "service": (256 << 10, 32 << 20)}


def tune_malloc(profile: Literal["batch", "service"] = "batch") -> bool:
    """glibc only: apply the allocator ``profile`` (see the module docstring). The first call in a process
    wins (a worker sets "service" at its start; the QC it runs later asks for "batch" and keeps
    "service"). MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment win when set;
    FORECAST_TUNE_MALLOC=0 turns it off. True when the profile was applied by this call or an earlier one."""
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
    mmap_threshold, trim_threshold = PROFILES[profile]
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        if libc.mallopt(m_mmap_threshold, int(mmap_threshold)) and libc.mallopt(m_trim_threshold, int(trim_threshold)):
            _MALLOC_TUNED = profile
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        pass
    return _MALLOC_TUNED != "off"



def resident_mib() -> float | None:
    """This process's resident memory (RSS) in MiB (psutil); None where the system does not tell."""
    import psutil

    try:
        return psutil.Process().memory_info().rss / 2**20
    except psutil.Error:
        return None
