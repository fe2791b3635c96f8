"""Tail latency measured the honest way: poll, recovery and history at a fixed rate, by bench/openloop.mjs.

wrk keeps 64 connections busy flat out, so its p99 only says how long the queue at saturation is. Here requests
arrive at half the ceiling's closed-loop rate whatever the server does, and each latency counts from the moment
its request was due (no coordinated omission); see bench/openloop.mjs. A route whose own closed-loop rate is below
that cannot keep up with it (its queue, and so every latency, only grows while the run lasts), so it is measured a
second time at half its own closed-loop rate, to show its tail at a load it can carry.
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
SHARE = 0.5
SECONDS = 10
WARMUP_SECONDS = 1
# After the last request was due, answers are awaited this long; the rest are errors, in the percentiles at the
# time they had waited by then.
DRAIN_MS = 2000
SOCKETS = 128


@dataclass(frozen=True)
class FixedRate:
    """What one open-loop run saw; every latency in ms from the request's due time."""

    route: str
    basis: str  # "ceiling": SHARE of the ceiling's rate (the rule); "route": SHARE of the route's own
    rate: float
    seconds: float
    sent: int
    completed: int
    errors: int
    unanswered: int
    unanswered_min_ms: float  # the shortest wait among the unanswered: percentiles from it up are lower bounds
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
    def from_json(cls, route: str, basis: str, raw: dict[str, Any]) -> FixedRate:
        def ms(key: str) -> float:
            value = raw[key]
            return float(value) if value is not None else float("nan")

        return cls(
            route=route, basis=basis, rate=float(raw["rate"]), seconds=float(raw["seconds"]), sent=int(raw["sent"]),
            completed=int(raw["completed"]), errors=int(raw["errors"]), unanswered=int(raw["unanswered"]),
            unanswered_min_ms=ms("unanswered_min_ms"), achieved_rps=float(raw["achieved_rps"]),
            p50_ms=ms("p50_ms"), p90_ms=ms("p90_ms"), p99_ms=ms("p99_ms"), p999_ms=ms("p999_ms"),
            max_ms=ms("max_ms"), lag_p99_ms=float(raw["schedule_lag_ms"]["p99"] or 0.0),
            kept_up=bool(raw["kept_up"]), generator_cpu_share=float(raw["generator_cpu_share"]),
        )


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is not installed: the fixed-rate latency needs Node.js 18 or later")
    return found


def run(route: str, basis: str, base_url: str, lines: Path, rate: float, seconds: float = SECONDS,
        warmup: float = WARMUP_SECONDS) -> FixedRate:
    """One open-loop run against base_url (127.0.0.1 only); raises if the generator fails."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {base_url}")
    command = [node(), str(GENERATOR), "--base", base_url, "--lines", str(lines), "--rate", f"{rate:.3f}",
               "--seconds", str(seconds), "--warmup", str(warmup), "--drain-ms", str(DRAIN_MS),
               "--sockets", str(SOCKETS), "--cookie-name", COOKIE_NAME]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + warmup + DRAIN_MS / 1000 + 60,
                               check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"openloop failed on {route}: {completed.stderr.strip() or completed.stdout.strip()}")
    return FixedRate.from_json(route, basis, json.loads(completed.stdout))


def measure(base_url: str, files: dict[str, Path], closed_rps: dict[str, float], seconds: float = SECONDS,
            progress: Callable[[str], None] = print) -> list[FixedRate]:
    """Each of ROUTES at SHARE of the ceiling's closed-loop rate; again at SHARE of its own if it is below that."""
    rate = closed_rps["ceiling"] * SHARE
    results = []
    for route in ROUTES:
        progress(f"  open loop {route} ({rate:,.0f}/s for {seconds:g} s)")
        results.append(run(route, "ceiling", base_url, files[route], rate, seconds))
        if closed_rps[route] < rate:
            own = closed_rps[route] * SHARE
            progress(f"  open loop {route} at half its own rate ({own:,.0f}/s for {seconds:g} s)")
            results.append(run(route, "route", base_url, files[route], own, seconds))
    return results
