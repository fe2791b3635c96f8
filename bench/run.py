"""`make bench`: what durability costs, measured against the server's own ceiling, on SQLite and PostgreSQL.

Prints one table and writes it to docs/benchmarks.md. Options: --seconds N (per wrk route, default 10),
--backends sqlite,postgres, --skip-local (no local-engine timing), --no-write (print only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import catalog  # noqa: E402 - bench/ goes on the path first
import dataset  # noqa: E402
import dispatch  # noqa: E402
import fixed_rate  # noqa: E402
import idle_page  # noqa: E402
import page_weight  # noqa: E402
import report  # noqa: E402
import routes  # noqa: E402
import storage_serve  # noqa: E402
import sweep  # noqa: E402
import worker_memory  # noqa: E402
import wrk  # noqa: E402
from server import Server, bench_env  # noqa: E402

ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
DOC = ROOT / "docs" / "benchmarks.md"
# The whole box: one `genkeep serve --processes N` with a process per core; at most 4, so that on a big machine
# the processes' database pools stay within PostgreSQL's default 100 connections.
BOX_PROCESSES = max(2, min(os.cpu_count() or 2, 4))
# Per route of the whole-box run (after a 2 s warm-up): short, to keep `make bench` under 8 minutes.
BOX_SECONDS = 5


def say(message: str) -> None:
    print(message, flush=True)


def prepare(name: str, layout: dataset.Layout) -> dataset.Built:
    say(f"{name}: preparing 1,000,000 tasks, {layout}")
    if name == "SQLite":
        built = dataset.prepare_sqlite(RESULTS / "cache", RESULTS / name.lower(), layout)
    else:
        built = dataset.prepare_postgres(RESULTS / "cache", layout)
    say(f"{name}: dataset ready in {built.seconds:.0f} s ({'cached' if built.cached else 'built'})")
    return built


def measure_box(name: str, built: dataset.Built, work_dir: Path, files: dict[str, Path] | None,
                load: wrk.Load) -> dict[str, wrk.Measured]:
    say(f"{name}: the whole box, genkeep serve --processes {BOX_PROCESSES}")
    box_load = wrk.Load(load.threads, load.connections, min(load.seconds, BOX_SECONDS))
    with Server(bench_env(built.url, work_dir), work_dir / "serve-box.log", processes=BOX_PROCESSES) as server:
        return routes.measure_box(server, files or routes.write_route_files(built.url, work_dir), work_dir,
                                  box_load, say)


def measure_scattered_sweep(name: str) -> report.Layout:
    """The sweep's other case: a fresh copy whose unfinished tasks sit among the history, dropped once measured."""
    built = prepare(name, "scattered")
    try:
        return report.Layout(built.seconds, built.cached, sweep.measure(built.url, RESULTS / name.lower()))
    finally:
        dataset.discard(built)


def run_backend(name: str, load: wrk.Load) -> report.BackendResult:
    work_dir = RESULTS / name.lower()
    built = prepare(name, dataset.MAIN_LAYOUT)
    result = report.BackendResult(name, built.seconds, built.cached)
    try:
        with Server(bench_env(built.url, work_dir), work_dir / "serve.log") as server:
            result.routes = routes.measure(server, built.url, work_dir, load, say)
            say(f"{name}: fixed-rate latency")
            try:
                closed = {route: measured.rps for route, measured in result.routes.results.items()}
                result.fixed_rate = fixed_rate.measure(server.base_url, result.routes.files, closed, progress=say)
            except Exception as error:
                traceback.print_exc()
                result.failures.append(f"fixed rate: {error}")
    except Exception as error:
        traceback.print_exc()
        result.failures.append(f"routes: {error}")
    try:
        result.box = measure_box(name, built, work_dir, result.routes.files if result.routes else None, load)
        result.box_processes = BOX_PROCESSES
    except Exception as error:
        traceback.print_exc()
        result.failures.append(f"whole box: {error}")
    say(f"{name}: dispatch latency")
    try:
        sweep.settle(built.url)
        result.dispatch = dispatch.measure(built.url, work_dir)
    except Exception as error:
        traceback.print_exc()
        result.failures.append(f"dispatch: {error}")
    say(f"{name}: sweep")
    try:
        result.sweep = sweep.measure(built.url, work_dir)
    except Exception as error:
        traceback.print_exc()
        result.failures.append(f"sweep: {error}")
    say(f"{name}: sweep on the scattered layout")
    try:
        result.scattered = measure_scattered_sweep(name)
    except Exception as error:
        traceback.print_exc()
        result.failures.append(f"sweep, scattered layout: {error}")
    return result


def time_local_engine() -> dict[str, object]:
    say("local engine: timing each type at 1024 px")
    try:
        completed = subprocess.run([sys.executable, str(BENCH_DIR / "local_timing.py"), str(RESULTS / "local")],
                                   capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return {"available": False, "note": "local engine timing took over 5 minutes"}
    for line in completed.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            parsed: dict[str, object] = json.loads(line[len("BENCHJSON "):])
            return parsed
    tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
    return {"available": False, "note": f"local engine failed: {tail}"}


def measure_worker_memory() -> tuple[list[worker_memory.WorkerMemory], str | None]:
    say("local engine: a worker's memory per type at 1024 px")
    try:
        return worker_memory.measure(RESULTS / "worker-memory", progress=say), None
    except Exception as error:
        traceback.print_exc()
        return [], f"worker memory: {error}"


def measure_page_weight() -> str:
    """The page weight section (a browser, before and after thumbnails); the last one kept if it cannot run."""
    if not page_weight.CHROMIUM.exists():
        say(f"page weight: skipped, no browser at {page_weight.CHROMIUM}")
        return page_weight.kept_section(DOC)
    try:
        return page_weight.run(progress=say)
    except Exception:
        traceback.print_exc()
        return page_weight.kept_section(DOC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per route")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be between 1 and 120")
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    load = wrk.Load(threads=2, connections=args.connections, seconds=args.seconds)
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    results = [run_backend(names[key.strip()], load) for key in args.backends.split(",") if key.strip()]
    local = {"available": False, "note": "skipped (--skip-local)"} if args.skip_local else time_local_engine()
    memory, memory_failure = ([], "skipped (--skip-local)") if args.skip_local else measure_worker_memory()
    weight = measure_page_weight()
    image_kb = round(len(routes.reference_jpeg()) / 1024)
    text = report.markdown(results, local, report.machine(load_at_start), load.threads, load.connections, load.seconds,
                           image_kb, time.perf_counter() - started, memory, memory_failure,
                           min(args.seconds, BOX_SECONDS))
    say("")
    say(text)
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        # Sections measured apart keep their numbers, in the document's order: the idle page's (a browser), the
        # storage benchmark's, then the page weight (measured here) and the catalog's (a browser, minutes).
        text = (text + idle_page.kept_section(DOC) + storage_serve.kept_section(DOC) + weight
                + catalog.kept_section(DOC))
        DOC.write_text(text)
        say(f"written to {DOC.relative_to(ROOT)}")
    return 1 if any(result.failures for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
