"""Giving freed memory back to the system after a run.

A generation allocates a few hundred MB of short-lived buffers (decoded pictures, model tensors); glibc keeps what
they freed in its heaps for reuse. After one local task at 1024 px a worker idled at 191-238 MB (96 MB fresh); with
`malloc_trim` once its last run ends, at 174-177 MB (bench/worker_memory.py, one run each). What stays is what the
first task loaded for good: the engine's model session and its libraries. Elsewhere than glibc it is skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc only; a no-op elsewhere)."""
    if _TRIM is not None:
        _TRIM(0)
