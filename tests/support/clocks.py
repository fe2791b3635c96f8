"""Processes whose wall clock is off, with libfaketime (Debian's `faketime`), for the one-clock tests.

libfaketime is preloaded into the child and shifts what the C library's clock calls return, so Python's
time.time() (and anything else reading the wall clock) is off by the given seconds. FAKETIME_DONT_FAKE_MONOTONIC
keeps the monotonic clocks real: a process measures its own intervals right, only its idea of the date is wrong, as
on a machine whose clock drifted.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time

import pytest


@functools.cache
def _preload() -> str | None:
    """The library `faketime` preloads, as it says itself (its location differs between systems)."""
    faketime, env = shutil.which("faketime"), shutil.which("env")
    if faketime is None or env is None:
        return None
    shown = subprocess.run([faketime, "-f", "+0s", env], capture_output=True, text=True, timeout=10, check=True)
    return next((line.split("=", 1)[1] for line in shown.stdout.splitlines() if line.startswith("LD_PRELOAD=")),
                None)


def skewed(seconds: float) -> dict[str, str]:
    """Environment variables that run a child process with its wall clock `seconds` off (0: no change)."""
    if not seconds:
        return {}
    preload = _preload()
    if preload is None:
        pytest.skip("libfaketime (the faketime package) is not installed")
    return {"LD_PRELOAD": preload, "FAKETIME": f"{seconds:+g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def offset_seen_by_python(env: dict[str, str]) -> tuple[float, float]:
    """How far a Python child started with `env` finds its wall clock and its monotonic clock from ours."""
    probe = "import time; print(time.time(), time.monotonic())"
    ours = time.time(), time.monotonic()
    shown = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=30, check=True)
    wall, monotonic = (float(word) for word in shown.stdout.split())
    return wall - ours[0], monotonic - ours[1]
