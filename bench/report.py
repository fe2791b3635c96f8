"""The table `make bench` prints and writes to docs/benchmarks.md, with the machine it ran on and how."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dataset
import psycopg
from dispatch import Dispatch
from fixed_rate import DRAIN_MS, SHARE, SOCKETS, FixedRate
from fixed_rate import SECONDS as FIXED_SECONDS
from routes import RouteRun
from sweep import Sweep
from worker_memory import IDLE_SETTLE_SECONDS, WorkerMemory
from wrk import Measured

# Targets from issue 10, as (SQLite, PostgreSQL): the minimum ratio to the same server's ceiling, accepts per second.
RATIO_TARGETS = {"poll": (0.8, 0.6), "recovery": (0.7, 0.5), "history": (0.3, 0.3)}
ACCEPT_TARGET_RPS = (400.0, 300.0)
# Issue 10: p99 under an open-loop load at a fixed rate (bench/fixed_rate.py), on both databases.
FIXED_RATE_P99_TARGET_MS = 20.0
DISPATCH_TARGET_MS = 20.0
# The mass sweep on the time-ordered dataset (the production layout); the scattered one is reported, not judged.
SWEEP_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0
LOCAL_TARGET_S = 1.0


@dataclass(frozen=True)
class Layout:
    """The sweep measured on another layout of the dataset, on a copy of its own."""

    build_seconds: float
    build_cached: bool
    sweep: Sweep


@dataclass
class BackendResult:
    name: str
    build_seconds: float
    build_cached: bool
    routes: RouteRun | None = None
    fixed_rate: list[FixedRate] | None = None
    dispatch: Dispatch | None = None
    sweep: Sweep | None = None
    scattered: Layout | None = None
    box: dict[str, Measured] | None = None
    box_processes: int = 0
    failures: list[str] = field(default_factory=list)


def machine(load_at_start: float | None = None) -> dict[str, str]:
    """Cores, CPU model, RAM, load and software versions; no host names, paths or credentials."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    with psycopg.connect(dataset.PG_ADMIN_DSN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        postgres = str(row[0]) if row else "unknown"
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False,
                                  timeout=10).stdout.strip() or "not installed"
    wrk_version = subprocess.run(["/usr/bin/wrk", "--version"], capture_output=True, text=True, check=False,
                                 timeout=10).stdout.split(" [")[0].replace("wrk ", "")
    return {
        "CPU": f"{os.cpu_count()} cores, {model}",
        "RAM": f"{total_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres,
        "wrk": wrk_version,
        "Node.js": node_version,
        # Other processes take CPU from the server and the load generators alike: say how busy the machine was.
        "Load average (1 min)": (f"{load_at_start:.1f} at the start of the run, " if load_at_start is not None else "")
        + f"{os.getloadavg()[0]:.1f} at its end",
    }


def _ok(passed: bool) -> str:
    return "met" if passed else "MISSED"


def _route_rows(result: BackendResult, label: str, measured: dict[str, Measured],
                cpu_us: dict[str, float] | None = None) -> list[str]:
    ceiling = measured["ceiling"].rps
    side = 0 if result.name == "SQLite" else 1
    lines = []
    for route, run in measured.items():
        ratio = "" if route == "ceiling" else f"{run.rps / ceiling:.2f}"
        cpu = cpu_ratio = ""
        if cpu_us and route in cpu_us:
            cpu = f"{cpu_us[route]:,.0f}"
            if route != "ceiling" and "ceiling" in cpu_us:
                cpu_ratio = f"{cpu_us['ceiling'] / cpu_us[route]:.2f}"
        targets = []
        if route in RATIO_TARGETS:
            wanted = RATIO_TARGETS[route][side]
            targets.append(f"≥{wanted} {_ok(run.rps / ceiling >= wanted)}")
        if route == "accept":
            targets.append(f"≥{ACCEPT_TARGET_RPS[side]:.0f}/s {_ok(run.rps >= ACCEPT_TARGET_RPS[side])}")
        lines.append(f"| {label} | {route} | {run.rps:,.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | "
                     f"{ratio} | {'; '.join(targets)} | {cpu} | {cpu_ratio} | {run.errors + run.non_2xx} |")
    return lines


# Closed loop: wrk's latencies are those of a saturated server, its queue's length; reported, never judged.
ROUTE_HEADER = ["| backend | route | requests/s | p50 ms (saturated) | p99 ms (saturated) | ratio to ceiling | target "
                "| server CPU µs/request | ceiling's CPU / route's | errors |",
                "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]


def route_table(results: list[BackendResult]) -> list[str]:
    lines = list(ROUTE_HEADER)
    for result in results:
        if result.routes is not None:
            lines += _route_rows(result, result.name, result.routes.results, result.routes.cpu_us)
    return lines


def box_table(results: list[BackendResult]) -> list[str]:
    """The read routes on one server of several processes sharing the port: the ratios for the whole box."""
    lines = list(ROUTE_HEADER)
    for result in results:
        if result.box is not None:
            lines += _route_rows(result, f"{result.name}, {result.box_processes} processes", result.box)
    return lines


def _latency_ms(value: float, run: FixedRate) -> str:
    """A latency cell; "≥" where requests left unanswered make it only a lower bound."""
    if value != value:  # NaN: nothing was measured
        return "-"
    if run.unanswered and value >= run.unanswered_min_ms:
        return f"≥{value:,.0f}"
    return f"{value:.1f}"


def fixed_rate_table(results: list[BackendResult]) -> list[str]:
    lines = ["| backend | route | rate /s | load | p50 ms | p99 ms | p99.9 ms | max ms | errors | achieved /s "
             f"| sender lag p99 ms | p99 < {FIXED_RATE_P99_TARGET_MS:.0f} ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    late: list[str] = []
    for result in results:
        if result.fixed_rate is None or result.routes is None:
            continue
        for run in result.fixed_rate:
            closed = result.routes.results[run.route].rps
            load = f"{run.rate / closed:.0%}" if closed else ""
            verdict = _ok(run.p99_ms < FIXED_RATE_P99_TARGET_MS and run.errors == 0)
            rate = f"{run.rate:,.0f}"
            if run.basis == "route":
                rate, verdict = f"{rate} (own)", f"({verdict})"
            lines.append(
                f"| {result.name} | {run.route} | {rate} | {load} | {_latency_ms(run.p50_ms, run)} | "
                f"{_latency_ms(run.p99_ms, run)} | {_latency_ms(run.p999_ms, run)} | {_latency_ms(run.max_ms, run)} | "
                f"{run.errors:,} | {run.achieved_rps:,.0f} | {run.lag_p99_ms:.1f}{'' if run.kept_up else ' (late)'} | "
                f"{verdict} |")
            if not run.kept_up:
                late.append(f"{result.name} {run.route}{' (own)' if run.basis == 'route' else ''}")
    lines += [
        "",
        f"Rate: {SHARE:.0%} of the same server's ceiling (its closed-loop /api/ping requests/s), the issue's rule; "
        f"\"(own)\": {SHARE:.0%} of the route's own closed-loop requests/s, measured as well where the route cannot "
        "carry the rule's rate, and judged only in parentheses. Load: the rate over the route's closed-loop "
        "requests/s; past 100% requests queue for as long as the run lasts, so those latencies measure the run's "
        f"length. Errors: answers other than 2xx, and requests still unanswered {DRAIN_MS / 1000:g} s after the "
        "last one was due, which enter the percentiles at the time they had waited: a \"≥\" cell is a lower bound. "
        "Sender lag: how late the generator itself sent, already part of every latency.",
    ]
    if late:
        lines.append(f"The generator fell behind its schedule on {', '.join(late)} (see sender lag): "
                     "those latencies include its own delay on this machine, so they overstate the server's.")
    return lines


def other_table(results: list[BackendResult], local: dict[str, object], memory: list[WorkerMemory] | None = None,
                memory_note: str | None = None) -> list[str]:
    lines = ["| backend | measurement | value | target |", "|---|---|---:|---|"]
    for result in results:
        name = result.name
        if result.dispatch is not None:
            d = result.dispatch
            verdict = _ok(d.median_ms < DISPATCH_TARGET_MS)
            lines.append(f"| {name} | dispatch latency, median ({len(d.samples_ms)} tasks one at a time) | "
                         f"{d.median_ms:.1f} ms | <{DISPATCH_TARGET_MS:.0f} ms {verdict} |")
            lines.append(f"| {name} | dispatch latency, p99 | {d.p99_ms:.1f} ms | |")
        if result.sweep is not None:
            s = result.sweep
            verdict = _ok(s.sweep_ms < SWEEP_TARGET_MS)
            lines.append(f"| {name} | one sweep, {s.swept:,} of {s.expired:,} expired tasks failed, 1M rows in time "
                         f"order | {s.sweep_ms:.0f} ms | <{SWEEP_TARGET_MS:.0f} ms {verdict} |")
            lines.append(f"| {name} | one sweep with nothing due (TaskManager.sweep) | {s.idle_sweep_ms:.1f} ms | |")
        if result.scattered is not None:
            s = result.scattered.sweep
            lines.append(f"| {name} | one sweep, {s.swept:,} of {s.expired:,} expired tasks failed, 1M rows "
                         f"scattered (unfinished among each owner's history) | {s.sweep_ms:.0f} ms | |")
        if result.routes is not None:
            r = result.routes
            lines.append(f"| {name} | server RSS at start | {r.rss_start_mb:.0f} MB | |")
            lines.append(f"| {name} | server RSS after the load, {r.unfinished_at_end:,} unfinished tasks | "
                         f"{r.rss_end_mb:.0f} MB | <{RSS_TARGET_MB:.0f} MB {_ok(r.rss_end_mb < RSS_TARGET_MB)} |")
        for failure in result.failures:
            lines.append(f"| {name} | FAILED | {failure} | |")
    seconds = local.get("seconds")
    if local.get("available") and isinstance(seconds, dict):
        for task_type, value in seconds.items():
            lines.append(f"| local engine | {task_type} at 1024 px | {value:.2f} s | "
                         f"<{LOCAL_TARGET_S:.0f} s {_ok(value < LOCAL_TARGET_S)} |")
    else:
        lines.append(f"| local engine | time per type | {local.get('note', 'local engine not available')} | |")
    lines += worker_memory_rows(memory or [], memory_note)
    return lines


def worker_memory_rows(memory: list[WorkerMemory], note: str | None) -> list[str]:
    """A `genkeep worker`'s resident size: idle, then for each type a fresh worker's peak and what it kept."""
    if not memory:
        return [f"| local worker | memory | {note or 'not measured'} | |"]
    first = memory[0]
    lines = [f"| local worker | RSS idle, a fresh `genkeep worker` ({first.threads} threads) | "
             f"{first.idle_mb:.0f} MB | |"]
    for measured in memory:
        lines.append(f"| local worker | peak RSS during one {measured.task_type} at 1024 px ({measured.peak_source}) "
                     f"| {measured.peak_mb:.0f} MB | |")
        lines.append(f"| local worker | RSS idle after that task | {measured.idle_after_mb:.0f} MB | |")
    return lines


HOW = """\
## How it was measured
- `make bench` (`bench/run.py`). The dataset: 1,000,000 tasks of 1,000 owners (1,000 each, the three types in
  turn), 70% completed, 28% failed, 2% (20,000) processing; the history spreads over a year, the processing tasks
  started in the last 10 minutes and are held by a lease of another (absent) worker. Rows are stored in created_at
  order, as production inserts them, so the unfinished tasks are the newest, contiguous rows. Schema and indexes
  come from the real migrations; rows are bulk-loaded with the raw driver (sqlite3 executemany, psycopg COPY,
  through a staging table sorted by created_at) and cached between runs (a SQLite file, a PostgreSQL template
  database), then copied fresh for every run; moving the unfinished tasks to "now" updates them, and on PostgreSQL
  a VACUUM then removes the dead versions that left, which are the benchmark's, not the workload's.
- One `genkeep serve` process (uvicorn, one event loop) with GENKEEP_WORKERS=0, no sweeps during the run, and the
  per-owner cap raised. wrk {threads} threads, {connections} connections, {seconds} s per route, after a 3 s
  warm-up of each GET route; wrk runs on the same machine, so it takes CPU from the server. Each request carries a
  signed owner cookie picked at random by a Lua script (bench/lua): the ceiling is GET /api/ping (no database,
  same middleware); poll is GET /api/tasks/{{id}} over the 20,000 unfinished tasks, each with its owner's cookie;
  recovery is GET /api/tasks?type=T&status=processing and history GET /api/tasks?type=T (first page, 50 tasks)
  for random owners and types; accept is POST /api/tasks, WHITE_BACKGROUND with one {image_kb} KB JPEG, spread
  over the 1,000 owners. p50 and p99 come from wrk's latency histogram (Lua `done`); with every connection
  busy they measure how long the server's queue is at saturation, so they are reported but judge nothing. Ratios
  divide by the ceiling of the same server in the same run. Server CPU per request is the serve process's user +
  system time (/proc/<pid>/stat) over a route's run divided by its requests: what the route costs the server
  whatever else the machine does (PostgreSQL's own processes not included), and its ratio to the ceiling's CPU is
  the ratio the server would reach with a core to itself.
- The whole box: after the one-process server, one `genkeep serve --processes N` (a process per core, at most 4;
  uvicorn's workers sharing the port) on the same database, the ceiling, poll, recovery, history and accept for
  {box_seconds} s each after a 2 s warm-up, with the same wrk load; its ratios divide by its own ceiling.
- Fixed-rate latency (bench/fixed_rate.py, bench/openloop.mjs, Node.js with no packages): after the wrk routes,
  on the same server, poll, recovery and history each for {fixed_seconds} s (after a 1 s warm-up) at half the
  ceiling's requests/s, and a route that cannot carry that again at half its own; owners and tasks are picked
  from the same files as the Lua scripts. The generator is open loop: request i is due at start + i/rate and is
  sent then whether or not earlier ones were answered (keep-alive sockets, up to {sockets}; if none is free it
  waits in the queue), and its latency runs from that due time to the end of its response. A closed-loop tool
  (wrk, hey) stops sending while the server stalls, so a stall costs it one slow sample instead of one for every
  request that would have arrived meanwhile: coordinated omission, which makes tails look far better than users
  see them. The generator reports how late it itself sent (Node's timers fire in 1 ms steps; on a busy machine
  later), which is part of every latency, never subtracted. Percentiles are nearest-rank over every measured
  request; answers are awaited up to {drain_s:g} s after the last request was due, and one still unanswered then
  enters at the time it had waited (a lower bound).
- Dispatch: a second server with GENKEEP_WORKERS=2 and a probe engine (bench/dispatch_engine.py) that logs
  time.time() when run() starts; 100 tasks submitted one at a time, each after the previous one started;
  latency = start - created_at (created_at has millisecond resolution).
- Sweep: the accepted tasks finished, then the backend's sweep_timed_out timed in-process (it fails them all in
  one UPDATE ... RETURNING), called with a clock 2 h past a 1 h timeout of the 20,000 dataset tasks (moving the
  clock rather than aging the rows leaves them as the workload left them). Then again on a fresh copy of the
  scattered layout: the same rows stored owner by owner, so each owner's unfinished tasks sit among its history
  (on SQLite they stay there; on PostgreSQL moving them to "now" already wrote their live versions to the newest
  pages, so what differs is mostly the order and the pages their old versions left).
- What bounds the sweep (measured apart on 2026-11-30, 2 shared cores, the time-ordered dataset, the same
  UPDATE in rolled-back transactions; medians of 3; CPU time, since the machine was busy). PostgreSQL: the
  backend spends about 400 ms of CPU and writes 17 MB of WAL (about 100 MB with full-page images right after a
  checkpoint). Failing a task changes status, which the partial indexes' WHERE names, so no update can be HOT:
  every row gets a new version in all four full indexes (primary key, owner and idempotency key, owner with
  type, owner). Dropping all four in the transaction leaves 40 ms; each alone: primary key -130 to -220 ms
  (ids made time-ordered did not lower it: the unique check on every new version costs, not where it lands),
  owner with type -120, owner and key -70, owner -30. Not levers: RETURNING (no measurable cost), commit
  (under 10 ms, so synchronous_commit off would win nothing), batches (2,000 per statement: 54 ms each, 590 ms
  in all). SQLite: 90 ms of CPU with the commit, 9 MB of WAL (2,214 pages); the ids alone take 11 ms to select,
  RETURNING 13 ms, the partial indexes 35 ms, and the commit 30 ms, of which 24 ms is the WAL auto-checkpoint
  that the commit crossing 1,000 pages runs (after the write lock is released, so no other write waits on it).
- Memory: VmRSS of the serve process from /proc, at start and after all the wrk routes.
- Worker memory (bench/worker_memory.py): for each local type a fresh `genkeep worker` (the shipped defaults,
  local engine) on a fresh SQLite studio, fed one task through a `genkeep serve` without workers, inputs drawn at
  1024 px; idle is VmRSS after {idle_s:g} s of rest before and after the task; the peak is VmHWM, reset to the
  current size through /proc/<pid>/clear_refs just before the task.
- Local engine: bench/local_timing.py in its own process, drawn inputs, median of 3 warm runs per type.
"""


def markdown(results: list[BackendResult], local: dict[str, object], info: dict[str, str], threads: int,
             connections: int, seconds: int, image_kb: int, total_seconds: float,
             memory: list[WorkerMemory] | None = None, memory_note: str | None = None, box_seconds: int = 0) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks",
        "",
        f"What durability costs, measured against the server's own ceiling. Written by `make bench` on {when} "
        f"(the whole run took {total_seconds / 60:.1f} minutes). Targets from issue 10; they guide the design and "
        "are never test assertions.",
        "",
        "## Routes (one server per backend, one run)",
        *route_table(results),
        "",
        "## The whole box (one `genkeep serve --processes N` per backend, its own ceiling)",
        *box_table(results),
        "",
        f"## Tail latency at a fixed rate (open loop; goal from issue 10: p99 < {FIXED_RATE_P99_TARGET_MS:.0f} ms)",
        *fixed_rate_table(results),
        "",
        "## Dispatch, sweep, memory, local engine",
        *other_table(results, local, memory, memory_note),
        "",
        "## Machine",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        HOW.format(threads=threads, connections=connections, seconds=seconds, image_kb=image_kb,
                   box_seconds=box_seconds, fixed_seconds=FIXED_SECONDS, sockets=SOCKETS, drain_s=DRAIN_MS / 1000,
                   idle_s=IDLE_SETTLE_SECONDS),
    ]
    for result in results:
        parts.append(f"Dataset on {result.name}: ready in {result.build_seconds:.0f} s "
                     f"({'copied from the cache' if result.build_cached else 'built, then cached'}).  ")
        if result.scattered is not None:
            parts.append(f"Scattered dataset on {result.name}: ready in {result.scattered.build_seconds:.0f} s "
                         f"({'copied from the cache' if result.scattered.build_cached else 'built, then cached'}).  ")
    return "\n".join(parts).rstrip() + "\n"
