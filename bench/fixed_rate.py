"""Tail latency measured the honest way: poll, recovery and history at a fixed rate, by bench/openloop.mjs.

wrk keeps 64 connections busy flat out, so its p99 only says how long the queue at saturation is. Here requests
arrive at half the ceiling's closed-loop rate whatever the server does, and each latency counts from the moment
its request was due (no coordinated omission); see bench/openloop.mjs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkeep.web.owner import COOKIE_NAME

GENERATOR = Path(__file__).parent / "openloop.mjs"
ROUTES = ("poll", "recovery", "history")
# Issue 10's rule: the fixed rate is half of what the same server answers on /api/ping, flat out.
CEILING_SHARE = 0.5
SECONDS = 10
WARMUP_SECONDS = 1
# A request unanswered this long after it was due is an error, and enters the percentiles at this value.
TIMEOUT_MS = 2000
SOCKETS = 128


@dataclass(frozen=True)
class FixedRate:
    """What one open-loop run saw; every latency in ms from the request's due time."""

    route: str
    rate: float
    seconds: float
    sent: int
    completed: int
    errors: int
    timeouts: int
    timeout_ms: float
    achieved_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    lag_p99_ms: float
    kept_up: bool
    generator_cpu_share: float

    @classmethod
    def from_json(cls, route: str, raw: dict[str, Any]) -> FixedRate:
        def ms(key: str) -> float:
            value = raw[key]
            return float(value) if value is not None else float("nan")

        return cls(
            route=route, rate=float(raw["rate"]), seconds=float(raw["seconds"]), sent=int(raw["sent"]),
            completed=int(raw["completed"]), errors=int(raw["errors"]), timeouts=int(raw["timeouts"]),
            timeout_ms=float(raw["timeout_ms"]), achieved_rps=float(raw["achieved_rps"]),
            p50_ms=ms("p50_ms"), p90_ms=ms("p90_ms"), p99_ms=ms("p99_ms"), p999_ms=ms("p999_ms"),
            max_ms=ms("max_ms"), lag_p99_ms=float(raw["schedule_lag_ms"]["p99"] or 0.0),
            kept_up=bool(raw["kept_up"]), generator_cpu_share=float(raw["generator_cpu_share"]),
        )


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is not installed: the fixed-rate latency needs Node.js 18 or later")
    return found


def run(route: str, base_url: str, lines: Path, rate: float, seconds: float = SECONDS,
        warmup: float = WARMUP_SECONDS) -> FixedRate:
    """One open-loop run against base_url (127.0.0.1 only); raises if the generator fails."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {base_url}")
    command = [node(), str(GENERATOR), "--base", base_url, "--lines", str(lines), "--rate", f"{rate:.3f}",
               "--seconds", str(seconds), "--warmup", str(warmup), "--timeout-ms", str(TIMEOUT_MS),
               "--sockets", str(SOCKETS), "--cookie-name", COOKIE_NAME]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + 60,
                               check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"openloop failed on {route}: {completed.stderr.strip() or completed.stdout.strip()}")
    return FixedRate.from_json(route, json.loads(completed.stdout))


def measure(base_url: str, files: dict[str, Path], ceiling_rps: float, seconds: float = SECONDS,
            progress: Callable[[str], None] = print) -> dict[str, FixedRate]:
    """Each of ROUTES in turn at CEILING_SHARE of ceiling_rps."""
    rate = ceiling_rps * CEILING_SHARE
    results: dict[str, FixedRate] = {}
    for route in ROUTES:
        progress(f"  open loop {route} ({rate:,.0f}/s for {seconds:g} s)")
        results[route] = run(route, base_url, files[route], rate, seconds)
    return results
