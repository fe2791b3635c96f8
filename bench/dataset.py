"""The benchmark's task history: 1,000,000 tasks of 1,000 owners, on SQLite and on PostgreSQL.

The schema and indexes come from the real migrations; rows go in through the raw driver in big batches
(sqlite3 executemany in one transaction, psycopg COPY). Two layouts of the same rows: "time-ordered" stores them in
created_at order, so the unfinished tasks are the newest, contiguous rows, as in production where rows arrive in
time order; "scattered" stores them owner by owner, so each owner's 20 unfinished tasks sit among its history (the
layout of the datasets before version 4). Every copy is cached between runs, keyed by DATASET_VERSION and
layout: a SQLite file under bench/results/cache and a PostgreSQL template database, so a run only copies them (a
file copy, CREATE DATABASE ... TEMPLATE) and then moves the unfinished tasks to "now".
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from genkeep.tasks import database

# Bump when the rows below change: the caches are rebuilt.
DATASET_VERSION = 4
OWNERS = 1_000
TASKS_PER_OWNER = 1_000
PROCESSING_SHARE = 0.02
COMPLETED_SHARE = 0.70
SEED = 20_261_129
TYPES = ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE")
# Every dataset task that is still processing is held by a live worker of some other machine: its lease runs far
# past the benchmark, so the bench server's own workers never claim it (as in production, where they are running).
GHOST_WORKER = "bench-ghost-worker"
DAY_MS = 24 * 3600 * 1000

COLUMNS = (
    "id", "owner_id", "type", "status", "prompt", "reference_images", "result_name", "error_code",
    "error_message", "progress", "engine", "provider_job_id", "attempts", "worker_id", "lease_expires_at",
    "idempotency_key", "created_at", "updated_at", "finished_at",
)
Row = tuple[object, ...]
Layout = Literal["time-ordered", "scattered"]
LAYOUTS: tuple[Layout, ...] = ("time-ordered", "scattered")
# The layout of the routes' server; the other one is prepared for the sweep only.
MAIN_LAYOUT: Layout = "time-ordered"

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_TEMPLATE_PREFIX = "genkeep_bench_v"
PG_DATABASE = "genkeep_bench"


def _tag(layout: Layout) -> str:
    return layout.split("-")[-1]  # "ordered" or "scattered": fits file and database names


def pg_template(layout: Layout) -> str:
    return f"{PG_TEMPLATE_PREFIX}{DATASET_VERSION}_{_tag(layout)}"


def pg_database(layout: Layout) -> str:
    return PG_DATABASE if layout == MAIN_LAYOUT else f"{PG_DATABASE}_{_tag(layout)}"


def owner_id(index: int) -> str:
    return f"bench-owner-{index:04d}"


def _reference_images(task_type: str, rng: random.Random) -> str:
    count = {"CREATE": rng.choice((0, 0, 1, 2)), "WHITE_BACKGROUND": 1, "CLOTHING_CHANGE": 2}[task_type]
    images = [{"name": f"reference-{n + 1}.jpg", "width": 1024, "height": 768, "content_type": "image/jpeg"}
              for n in range(count)]
    return json.dumps(images)


def rows(base_ms: int) -> Iterator[Row]:
    """Every task, owner by owner, deterministic for a seed; created_at spreads each owner's history over the year
    before base_ms."""
    rng = random.Random(SEED)
    processing_per_owner = round(TASKS_PER_OWNER * PROCESSING_SHARE)
    for owner_index in range(OWNERS):
        owner = owner_id(owner_index)
        history = TASKS_PER_OWNER - processing_per_owner
        step = 365 * DAY_MS // history
        for n in range(TASKS_PER_OWNER):
            task_type = TYPES[n % 3]
            task_id = f"{rng.getrandbits(128):032x}"
            prompt = "a ceramic mug on a wooden table, morning light" if task_type == "CREATE" else None
            refs = _reference_images(task_type, rng)
            if n >= history:
                # Unfinished: started in the last 10 minutes (run() moves them to "now" on every run).
                created = base_ms - rng.randrange(600_000)
                yield (task_id, owner, task_type, "processing", prompt, refs, None, None, None,
                       round(rng.random(), 2), "local", None, 1, GHOST_WORKER, base_ms + 30 * DAY_MS, None,
                       created, created, None)
                continue
            created = base_ms - 366 * DAY_MS + n * step + rng.randrange(step)
            finished = created + rng.randrange(2_000, 60_000)
            if rng.random() < COMPLETED_SHARE / (1 - PROCESSING_SHARE):
                yield (task_id, owner, task_type, "completed", prompt, refs, f"result-1-{task_id[:8]}.png", None,
                       None, 1.0, "local", None, 1, None, None, None, created, finished, finished)
            else:
                code, message = rng.choice((
                    ("engine_error", "The local engine failed; try again, or try another photo."),
                    ("timeout", "The generation took longer than the 5 minutes limit and was stopped; retry it."),
                    ("canceled", "You canceled this generation."),
                ))
                yield (task_id, owner, task_type, "failed", prompt, refs, None, code, message, None, "local", None,
                       1, None, None, None, created, finished, finished)


def _batches(source: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in source:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Built:
    url: str
    seconds: float
    cached: bool


# ---- SQLite ---------------------------------------------------------------------------------------------------------

def _build_sqlite(path: Path, lock_dir: Path, layout: Layout) -> None:
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    database.upgrade(url, lock_dir)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("PRAGMA temp_store=FILE")
        columns = ", ".join(COLUMNS)
        # Time order: the rows go through a staging table and are copied sorted, so rowids follow created_at.
        target = "tasks" if layout == "scattered" else "staging"
        conn.execute("BEGIN")
        if target == "staging":
            conn.execute(f"CREATE TEMP TABLE staging AS SELECT {columns} FROM tasks WHERE 0")
        statement = f"INSERT INTO {target} ({columns}) VALUES ({', '.join('?' for _ in COLUMNS)})"
        for batch in _batches(rows(int(time.time() * 1000)), 50_000):
            conn.executemany(statement, batch)
        if target == "staging":
            conn.execute(f"INSERT INTO tasks ({columns}) SELECT {columns} FROM staging ORDER BY created_at, id")
            conn.execute("DROP TABLE staging")
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def prepare_sqlite(cache_dir: Path, work_dir: Path, layout: Layout = MAIN_LAYOUT) -> Built:
    """A fresh working copy of the cached SQLite dataset (built first if missing), unfinished tasks at "now"."""
    started = time.perf_counter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = f"tasks-v{DATASET_VERSION}-{_tag(layout)}"
    cached = cache_dir / f"{name}.db"
    was_cached = cached.exists()
    if not was_cached:
        # Caches of earlier dataset versions only take disk space.
        for old in cache_dir.glob("tasks-v*.db"):
            if not old.name.startswith(f"tasks-v{DATASET_VERSION}-"):
                old.unlink()
        partial = cache_dir / f"{name}.partial.db"
        _build_sqlite(partial, cache_dir, layout)
        partial.replace(cached)
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / ("genkeep.db" if layout == MAIN_LAYOUT else f"genkeep-{_tag(layout)}.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(cached, target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        _refresh_unfinished(conn, "?")
    finally:
        conn.close()
    return Built(f"sqlite:///{target}", time.perf_counter() - started, was_cached)


# ---- PostgreSQL -----------------------------------------------------------------------------------------------------

def pg_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _build_pg_template(lock_dir: Path, layout: Layout) -> None:
    template = pg_template(layout)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{template}"')
    database.upgrade(pg_url(template), lock_dir)
    columns = ", ".join(COLUMNS)
    with psycopg.connect(pg_url(template)) as conn:
        # Time order: COPY into a staging table, then one INSERT ... ORDER BY lays the heap out by created_at.
        target = "tasks" if layout == "scattered" else "staging"
        if target == "staging":
            conn.execute(f"CREATE TEMP TABLE staging AS SELECT {columns} FROM tasks WITH NO DATA")
        with conn.cursor() as cursor, cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
            for row in rows(int(time.time() * 1000)):
                copy.write_row(row)
        if target == "staging":
            conn.execute("SET LOCAL work_mem = '256MB'")
            conn.execute(f"INSERT INTO tasks ({columns}) SELECT {columns} FROM staging ORDER BY created_at, id")
            conn.execute("DROP TABLE staging")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("COMMENT ON TABLE tasks IS 'genkeep bench dataset complete'")


def _pg_template_ready(template: str) -> bool:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone() is None:
            return False
    with psycopg.connect(pg_url(template), autocommit=True) as conn:
        row = conn.execute("SELECT obj_description('tasks'::regclass, 'pg_class')").fetchone()
        return row is not None and row[0] == "genkeep bench dataset complete"


def drop_old_pg_templates() -> None:
    """Templates of earlier dataset versions only take disk space."""
    current = {pg_template(layout) for layout in LAYOUTS}
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                     (f"{PG_TEMPLATE_PREFIX}%",)).fetchall():
            if name not in current:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_postgres(lock_dir: Path, layout: Layout = MAIN_LAYOUT) -> Built:
    """The layout's working database, dropped and recreated from its cached template (built first if missing)."""
    started = time.perf_counter()
    template, target = pg_template(layout), pg_database(layout)
    was_cached = _pg_template_ready(template)
    if not was_cached:
        drop_old_pg_templates()
        _build_pg_template(lock_dir, layout)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{template}"')
    with psycopg.connect(pg_url(target), autocommit=True) as conn:
        _refresh_unfinished(conn, "%s")
        # The refresh left a dead version of every unfinished row: an artefact of moving times, not of the
        # workload, which every later scan of those rows would pay for.
        conn.execute("VACUUM ANALYZE tasks")
    return Built(pg_url(target), time.perf_counter() - started, was_cached)


def discard(built: Built) -> None:
    """A working copy that is no longer needed (the cache stays): its file, or its database."""
    if built.url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{built.url[len('sqlite:///'):]}{suffix}").unlink(missing_ok=True)
        return
    name = built.url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- both -----------------------------------------------------------------------------------------------------------

def _refresh_unfinished(conn: sqlite3.Connection | psycopg.Connection, mark: str) -> None:
    """Unfinished tasks started in the last 10 minutes, held by a lease that outlives the benchmark."""
    moment = int(time.time() * 1000)
    modulo = "%" if mark == "?" else "%%"
    # The cached copy stores each unfinished task's age in its offset from the build time; keep the spread.
    conn.execute(
        f"UPDATE tasks SET created_at = {mark} - (created_at {modulo} 600000), updated_at = {mark}, "
        f"lease_expires_at = {mark} WHERE status = 'processing'",
        (moment, moment, moment + 30 * DAY_MS),
    )


def unfinished_tasks(conn: sqlite3.Connection | psycopg.Connection) -> list[tuple[str, str]]:
    """(task id, owner id) of every unfinished task."""
    result = conn.execute("SELECT id, owner_id FROM tasks WHERE status IN ('pending', 'processing')").fetchall()
    return [(str(task_id), str(owner)) for task_id, owner in result]
