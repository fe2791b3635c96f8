"""The HTTP routes under wrk, all against one `genkeep serve` process, so every ratio compares numbers of one run."""

from __future__ import annotations

import io
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dataset
import numpy as np
import psycopg
import wrk
from owners import cookies_for
from PIL import Image
from server import SECRET_KEY, Server

ROUTES = ("ceiling", "poll", "recovery", "history", "accept")
# The whole box: the read routes again, on a server of several processes; accepting is left to the one-process run.
BOX_ROUTES = ("ceiling", "poll", "recovery", "history", "accept")
BOUNDARY = "genkeepbenchboundary7MA4YWxkTrZu0gW"
ACCEPT_IMAGE_BYTES = 100 * 1024


@dataclass(frozen=True)
class RouteRun:
    """Every route's numbers from one server, and what the server looked like around them."""

    results: dict[str, wrk.Measured]
    rss_start_mb: float
    rss_end_mb: float
    unfinished_at_end: int
    files: dict[str, Path]  # each route's (cookie, path) lines, for the open-loop runs that follow
    # The server's CPU time per request of each route: what the route costs the server, whatever else the machine
    # is doing (requests/s fall when other processes take the cores; CPU per request barely moves).
    cpu_us: dict[str, float] = field(default_factory=dict)


def reference_jpeg(target_bytes: int = ACCEPT_IMAGE_BYTES) -> bytes:
    """A photo-like JPEG of about target_bytes: smooth gradients plus grain, so it compresses like a photo."""
    rng = np.random.default_rng(5)
    side = 768
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    base = np.stack([200 * x + 30, 160 * y + 50, 120 * (1 - x) + 60], axis=-1)
    best = b""
    for grain in (2, 4, 6, 8, 11, 14, 18, 24, 30):
        noisy = np.clip(base + rng.normal(0, grain, base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(noisy).save(out, "JPEG", quality=85)
        best = out.getvalue()
        if len(best) >= target_bytes:
            break
    return best


def multipart_body(images: list[bytes], task_type: str = "WHITE_BACKGROUND", prompt: str | None = "bench",
                   ) -> bytes:
    """A POST /api/tasks body (boundary BOUNDARY) with JPEG reference images; no prompt field if prompt is None."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\n{task_type}\r\n'.encode(),
        *([f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'.encode()]
          if prompt is not None else []),
        *((f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="reference_images"; filename="photo-{n}.jpg"\r\n'
           "Content-Type: image/jpeg\r\n\r\n").encode() + image + b"\r\n" for n, image in enumerate(images, 1)),
        f"--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


def connect_raw(url: str) -> sqlite3.Connection | psycopg.Connection:
    if url.startswith("sqlite:///"):
        return sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    return psycopg.connect(url, autocommit=True)


def count_unfinished(url: str) -> int:
    conn = connect_raw(url)
    try:
        row = conn.execute("SELECT count(*) FROM tasks WHERE status IN ('pending', 'processing')").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def write_route_files(url: str, work_dir: Path) -> dict[str, Path]:
    """The Lua data files: (cookie, path) lines for each route, every path paired with its owner's cookie."""
    owners = [dataset.owner_id(n) for n in range(dataset.OWNERS)]
    cookies = cookies_for(SECRET_KEY, owners)
    conn = connect_raw(url)
    try:
        unfinished = dataset.unfinished_tasks(conn)
    finally:
        conn.close()
    rng = random.Random(7)
    shuffled = owners[:]
    rng.shuffle(shuffled)
    per_owner_type = [(owner, task_type) for owner in shuffled for task_type in dataset.TYPES]
    files = {
        "ceiling": [(cookies[owner], "/api/ping") for owner in shuffled],
        "poll": [(cookies[owner], f"/api/tasks/{task_id}") for task_id, owner in unfinished],
        "recovery": [(cookies[owner], f"/api/tasks?type={task_type}&status=processing")
                     for owner, task_type in per_owner_type],
        "history": [(cookies[owner], f"/api/tasks?type={task_type}") for owner, task_type in per_owner_type],
        "accept": [(cookies[owner], "") for owner in shuffled],
    }
    return {route: wrk.write_lines(work_dir / f"{route}.lines", lines) for route, lines in files.items()}


def accept_body(work_dir: Path) -> dict[str, str]:
    """The POST /api/tasks body accept.lua sends (written once), as the script's environment."""
    body_path = work_dir / "accept.body"
    if not body_path.exists():
        body_path.write_bytes(multipart_body([reference_jpeg()]))
    return {"BENCH_BODY": str(body_path), "BENCH_BOUNDARY": BOUNDARY}


def measure(server: Server, url: str, work_dir: Path, load: wrk.Load,
            progress: Callable[[str], None] = print) -> RouteRun:
    """Warm up, then every route for load.seconds each, the ceiling first; RSS before and after."""
    files = write_route_files(url, work_dir)
    accept_env = accept_body(work_dir)
    rss_start = server.rss_mb()
    warm = wrk.Load(load.threads, load.connections, 3)
    for route in ("ceiling", "poll", "recovery", "history"):
        wrk.run(route, server.base_url, "get.lua", files[route], warm)
    results: dict[str, wrk.Measured] = {}
    cpu_us: dict[str, float] = {}
    for route in ("ceiling", "poll", "recovery", "history", "accept"):
        progress(f"  wrk {route} ({load.seconds} s, {load.connections} connections)")
        cpu_before = server.cpu_seconds()
        if route == "accept":
            results[route] = wrk.run(route, server.base_url, "accept.lua", files[route], load, accept_env)
        else:
            results[route] = wrk.run(route, server.base_url, "get.lua", files[route], load)
        if results[route].requests:
            cpu_us[route] = (server.cpu_seconds() - cpu_before) / results[route].requests * 1e6
    rss_end = server.rss_mb()
    return RouteRun(results, rss_start, rss_end, count_unfinished(url), files, cpu_us)


def measure_box(server: Server, files: dict[str, Path], work_dir: Path, load: wrk.Load,
                progress: Callable[[str], None] = print) -> dict[str, wrk.Measured]:
    """The routes on a server of several processes, each read route after a short warm-up (which also gives
    every process time to start accepting), the ceiling first, accept last."""
    warm = wrk.Load(load.threads, load.connections, 2)
    results: dict[str, wrk.Measured] = {}
    for route in BOX_ROUTES:
        progress(f"  wrk {route} ({load.seconds} s, {load.connections} connections, {server.processes} processes)")
        if route == "accept":
            results[route] = wrk.run(route, server.base_url, "accept.lua", files[route], load, accept_body(work_dir))
            continue
        wrk.run(route, server.base_url, "get.lua", files[route], warm)
        results[route] = wrk.run(route, server.base_url, "get.lua", files[route], load)
    return results
