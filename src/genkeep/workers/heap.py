"""Giving freed memory back to the system: after a run, and whenever a large block is freed.

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


# glibc's mallopt parameter: allocations this large or larger are mapped on their own, and unmapped when freed.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def _glibc(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None
    return found


_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc only; a no-op elsewhere)."""
    if _TRIM is not None:
        _TRIM(0)


def unmap_large_blocks_when_freed() -> None:
    """Make large allocations (decoded pixels, encoders' buffers) go back to the system as soon as they are freed
    (glibc only; a no-op elsewhere). Called once, as a process starts.

    glibc raises its mmap threshold to the size of the largest block freed, so after one big decode the next ones
    are carved from the heap, which it keeps: 24 uploads of a 24.5-megapixel WebP left 1.5 GB held by an idle
    server. A fixed threshold turns that adaptation off. Measured in one process (12 decodes, three formats, two at
    a time): resident memory after them 295 MB without it, 24 MB with it, in about the same time (5.3 s, 4.5 s);
    an accept's decode of a 260 KB JPEG cost the same CPU either way (2.3-3.0 ms, 200 decodes, two runs each)."""
    if _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
