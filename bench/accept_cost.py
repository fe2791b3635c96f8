"""What one accept (POST /api/tasks with the bench's ~100 KB JPEG) costs, and where that time goes.

    .venv/bin/python bench/accept_cost.py [--backends sqlite,postgres] [--seconds 6] [--runs 3] [--src DIR ...]
    .venv/bin/python bench/accept_cost.py --profile wall|cpu [--backends sqlite] [--requests 400]

The first form runs `genkeep serve` (no workers) on a fresh, empty database and drives it with wrk and
bench/lua/accept.lua, as `make bench` does, and prints each run's accepts per second and the server's CPU
milliseconds per accept (from /proc: every thread of the process). With several --src folders (a `src` of another
checkout, put first on the server's PYTHONPATH) the versions take turns, run after run, so that their medians come
from the same minutes of a shared machine. The CPU per accept is the steadier number: the rate also moves with
whatever else the machine is doing.

The second form profiles accepts in this process, the real app called through ASGI: `wall` with pyinstrument
(`pip install pyinstrument`; waits on the disk and the database show), `cpu` with cProfile timing each call by
the thread's CPU time (what the machine's two cores are spent on; --sort tottime for the costliest calls). The
thread-pool hop is made inline so that the whole accept shows in one call tree; the hop itself is in the first
form's numbers and not in these. A profiler slows Python code far more than C code (decoding, system calls):
read the shares with that in mind and the first form for the cost.

Unlike `make bench`, the database starts empty (no million-task history); the accepts themselves are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).parent
sys.path.insert(0, str(BENCH_DIR))

import dataset  # noqa: E402
import psycopg  # noqa: E402
import wrk  # noqa: E402
from owners import cookies_for  # noqa: E402
from routes import BOUNDARY, multipart_body, reference_jpeg  # noqa: E402
from server import SECRET_KEY, Server, bench_env  # noqa: E402

PG_DATABASE = "genkeep_accept_cost"
OWNERS = 1_000


@contextmanager
def fresh_database(backend: str, work_dir: Path) -> Iterator[str]:
    """An empty database for one server (the server migrates it as it starts)."""
    if backend == "sqlite":
        yield f"sqlite:///{work_dir / 'genkeep.db'}"
        return
    with psycopg.connect(dataset.PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    try:
        yield dataset.pg_url(PG_DATABASE)
    finally:
        with psycopg.connect(dataset.PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def owner_lines(work_dir: Path) -> Path:
    owners = [dataset.owner_id(n) for n in range(OWNERS)]
    cookies = cookies_for(SECRET_KEY, owners)
    return wrk.write_lines(work_dir / "accept.lines", [(cookies[owner], "") for owner in owners])


def one_run(backend: str, src: Path | None, load: wrk.Load, work_dir: Path) -> tuple[float, float, int]:
    """(accepts per second, server CPU ms per accept, non-2xx answers) of one fresh server."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    lines = owner_lines(work_dir)
    body = work_dir / "accept.body"
    body.write_bytes(multipart_body([reference_jpeg()]))
    with fresh_database(backend, work_dir) as url:
        env = bench_env(url, work_dir)
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(src), env["PYTHONPATH"]])
        with Server(env, work_dir / "serve.log") as server:
            accept_env = {"BENCH_BODY": str(body), "BENCH_BOUNDARY": BOUNDARY}
            wrk.run("accept", server.base_url, "accept.lua", lines, wrk.Load(load.threads, load.connections, 2),
                    accept_env)
            before = server.cpu_seconds()
            measured = wrk.run("accept", server.base_url, "accept.lua", lines, load, accept_env)
            spent = server.cpu_seconds() - before
    return measured.rps, spent * 1000 / max(1, measured.requests), measured.non_2xx + measured.errors


def compare(backends: list[str], sources: list[Path | None], runs: int, load: wrk.Load) -> None:
    root = Path(tempfile.mkdtemp(prefix="genkeep-accept-cost-"))
    try:
        for backend in backends:
            seen: dict[Path | None, list[tuple[float, float]]] = {src: [] for src in sources}
            for run in range(runs):
                for src in sources:
                    rps, cpu_ms, failed = one_run(backend, src, load, root / backend)
                    seen[src].append((rps, cpu_ms))
                    print(f"{backend} run {run + 1} {src or 'installed'}: {rps:.0f}/s, {cpu_ms:.2f} ms CPU per "
                          f"accept" + (f", {failed} failed" if failed else ""), flush=True)
            for src, numbers in seen.items():
                print(f"{backend} {src or 'installed'}: median {statistics.median(n[0] for n in numbers):.0f}/s, "
                      f"{statistics.median(n[1] for n in numbers):.2f} ms CPU per accept", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _accepts(app: Any, body: bytes, cookies: list[str], count: int) -> None:
    """count POST /api/tasks calls straight through ASGI, 64 KB body chunks as uvicorn hands them over."""
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    for n in range(count):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/api/tasks", "raw_path": b"/api/tasks", "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"),
                        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"cookie", f"genkeep_owner={cookies[n % len(cookies)]}".encode())],
        }
        pending = list(chunks)
        status: list[int] = []

        async def receive(pending: list[bytes] = pending) -> dict[str, Any]:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

        async def send(message: dict[str, Any], status: list[int] = status) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [201]:
            raise RuntimeError(f"accept answered {status}")


def profile(backend: str, requests: int, clock: str, sort: str) -> None:
    from fastapi import concurrency
    from pyinstrument import Profiler

    from genkeep.config import Settings
    from genkeep.web import task_routes
    from genkeep.web.app import create_app

    async def inline(function: Any, *args: Any) -> Any:
        return function(*args)

    task_routes.run_in_threadpool = inline  # type: ignore[assignment]
    concurrency.run_in_threadpool = inline  # type: ignore[assignment]
    work_dir = Path(tempfile.mkdtemp(prefix="genkeep-accept-profile-"))
    try:
        with fresh_database(backend, work_dir) as url:
            settings = Settings(data_dir=work_dir / "data", database_url=url, secret_key=SECRET_KEY, workers=0,
                                max_unfinished_per_owner=1_000_000, max_unfinished=10_000_000)
            app = create_app(settings, run_workers=False)
            owners = [dataset.owner_id(n) for n in range(OWNERS)]
            cookies = list(cookies_for(SECRET_KEY, owners).values())
            random.Random(3).shuffle(cookies)
            body = multipart_body([reference_jpeg()])

            async def main() -> None:
                async with app.router.lifespan_context(app):
                    await _accepts(app, body, cookies, 50)
                    started = time.process_time()
                    if clock == "wall":
                        profiler = Profiler(interval=0.0002, async_mode="disabled")
                        profiler.start()
                        await _accepts(app, body, cookies, requests)
                        profiler.stop()
                    else:
                        cpu_profiler = cProfile.Profile(time.thread_time)
                        cpu_profiler.enable()
                        await _accepts(app, body, cookies, requests)
                        cpu_profiler.disable()
                    spent = time.process_time() - started
                    print(f"{backend}: {spent * 1000 / requests:.2f} ms CPU per accept (profiled, inline)")
                    if clock == "wall":
                        print(profiler.output_text(unicode=False, color=False, show_all=False))
                    else:
                        stats = pstats.Stats(cpu_profiler).sort_stats(sort)
                        stats.print_stats(45)

            asyncio.run(main())
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", type=Path, action="append", help="a checkout's src folder (repeatable)")
    parser.add_argument("--profile", choices=("wall", "cpu"),
                        help="profile in this process: pyinstrument's wall clock, or cProfile's thread CPU time")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--sort", default="cumulative", help="the cpu profile's order (pstats: tottime, ...)")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if args.profile:
        for backend in backends:
            profile(backend, args.requests, args.profile, args.sort)
        return 0
    sources: list[Path | None] = [src.resolve() for src in args.src] if args.src else [None]
    compare(backends, sources, args.runs, wrk.Load(2, args.connections, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
