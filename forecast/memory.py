"""Process-wide memory allocator settings for the long-running array work (QC, ingest)."""

from __future__ import annotations

import os

_MALLOC_TUNED: bool | None = None


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """glibc only: serve allocations up to ``mmap_threshold`` from the heap and keep up to
    ``trim_threshold`` bytes of freed heap, instead of an mmap/munmap pair per large temporary
    (each fresh mapping is page-faulted again, and munmap in a threaded process costs TLB
    shootdowns on a VM). Same effect as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the
    environment, which win when set; FORECAST_TUNE_MALLOC=0 turns it off. Once per process."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED
    _MALLOC_TUNED = False
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
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        _MALLOC_TUNED = bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold))) and bool(
            libc.mallopt(m_trim_threshold, int(trim_threshold)))
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        pass
    return _MALLOC_TUNED
