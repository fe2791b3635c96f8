"""Dispatch latency: from a task's acceptance (its created_at) until its engine's run() starts, at light load."""

from __future__ import annotations

import io
import json
import statistics
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import routes
from owners import cookie_for
from PIL import Image
from server import SECRET_KEY, Server, bench_env


@dataclass(frozen=True)
class Dispatch:
    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _small_jpeg() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=80)
    return out.getvalue()


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _started_at(log_path: Path, task_id: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        if log_path.exists():
            for line in log_path.read_text().splitlines():
                logged_id, _, started = line.partition(" ")
                if logged_id == task_id:
                    return float(started)
        time.sleep(0.002)
    raise RuntimeError(f"the engine never started task {task_id}")


def measure(url: str, data_dir: Path, count: int = 100, gap: float = 0.05) -> Dispatch:
    """Serve with two workers and the probe engine; submit `count` tasks one at a time, each after the last ran."""
    log_path = data_dir / "dispatch.log"
    log_path.unlink(missing_ok=True)
    env = bench_env(url, data_dir, GENKEEP_WORKERS="2", GENKEEP_ENGINE="dispatch_engine:create_engine",
                    GENKEEP_BENCH_DISPATCH_LOG=str(log_path))
    body = routes.multipart_body([_small_jpeg()])
    cookie = cookie_for(SECRET_KEY, "bench-dispatch-owner")
    samples: list[float] = []
    with Server(env, data_dir / "serve-dispatch.log") as server:
        time.sleep(1.0)  # let the workers reach their idle wait
        for _ in range(count):
            request = urllib.request.Request(
                f"{server.base_url}/api/tasks", data=body, method="POST",
                headers={"Content-Type": f"multipart/form-data; boundary={routes.BOUNDARY}",
                         "Cookie": f"genkeep_owner={cookie}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                task = json.loads(response.read())
            started = _started_at(log_path, task["id"], time.monotonic() + 15)
            samples.append((started - _epoch(task["created_at"])) * 1000)
            time.sleep(gap)
    return Dispatch(samples)
