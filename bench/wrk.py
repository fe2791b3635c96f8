"""Driving the server with wrk: a Lua script picks a random owner (and task) per request and reports JSON when done."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"
WRK = "/usr/bin/wrk"


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk pushes."""

    threads: int = 2
    connections: int = 64
    seconds: int = 10


@dataclass(frozen=True)
class Measured:
    """What one wrk run saw."""

    route: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_lines(path: Path, lines: list[tuple[str, str]]) -> Path:
    """The file a Lua script reads: one "<cookie>\\t<path>" per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{cookie}\t{target}\n" for cookie, target in lines))
    return path


def run(route: str, base_url: str, script: str, data: Path, load: Load, extra_env: dict[str, str] | None = None,
        ) -> Measured:
    """One wrk run against base_url (127.0.0.1 only); raises if wrk fails or prints no result."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {base_url}")
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA_DIR), "BENCH_DATA": str(data), **(extra_env or {})}
    command = [WRK, f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds}s", "--timeout", "10s",
               "-s", str(LUA_DIR / script), base_url]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=load.seconds + 60,
                               check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed on {route}: {completed.stderr.strip() or completed.stdout.strip()}")
    for line in completed.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            raw = json.loads(line[len("BENCHJSON "):])
            break
    else:
        raise RuntimeError(f"wrk printed no result for {route}:\n{completed.stdout}")
    return Measured(
        route=route,
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]),
        non_2xx=int(raw["status"]),
    )
