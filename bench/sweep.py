"""One sweep over the 1M-row history with 20,000 expired tasks, timed around the real TaskStore/TaskService calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import dataset
import routes

from genkeep.config import Settings
from genkeep.storage import ImageStorage
from genkeep.tasks import database
from genkeep.tasks.service import TaskService
from genkeep.tasks.store import TaskStore

HOUR_MS = 3600 * 1000


@dataclass(frozen=True)
class Sweep:
    expired: int
    swept: int
    sweep_ms: float
    idle_sweep_ms: float


def settle(url: str) -> None:
    """Finish the tasks earlier phases accepted (no worker holds them), so only the dataset's tasks stay unfinished."""
    moment = int(time.time() * 1000)
    conn = routes.connect_raw(url)
    mark = "?" if url.startswith("sqlite") else "%s"
    try:
        conn.execute(
            f"UPDATE tasks SET status = 'completed', finished_at = {mark}, updated_at = {mark}, worker_id = NULL, "
            f"lease_expires_at = NULL WHERE status IN ('pending', 'processing') AND "
            f"(worker_id IS NULL OR worker_id <> {mark})",
            (moment, moment, dataset.GHOST_WORKER))
    finally:
        conn.close()


def measure(url: str, data_dir: Path, timeout_seconds: float = 3600) -> Sweep:
    """Age the dataset's unfinished tasks past the timeout, then time TaskStore.sweep_timed_out once."""
    settle(url)
    moment = int(time.time() * 1000)
    conn = routes.connect_raw(url)
    mark = "?" if url.startswith("sqlite") else "%s"
    try:
        conn.execute(f"UPDATE tasks SET created_at = {mark} WHERE status IN ('pending', 'processing')",
                     (moment - int(timeout_seconds * 1000) - 2 * HOUR_MS,))
        if not url.startswith("sqlite"):
            conn.execute("ANALYZE tasks")
    finally:
        conn.close()
    expired = routes.count_unfinished(url)
    settings = Settings(data_dir=data_dir, database_url=url, task_timeout=timeout_seconds)
    store = TaskStore(database.connect(url))
    try:
        service = TaskService(store, ImageStorage(settings.images_dir, "bench-sweep-secret"), settings)
        store.count_unfinished("warm-the-connection")
        started = time.perf_counter()
        swept = store.sweep_timed_out(timeout_seconds, service.timeout_message())
        sweep_ms = (time.perf_counter() - started) * 1000
        # What every GENKEEP_SWEEP_INTERVAL costs when nothing is due: TaskService.sweep() with both statements.
        started = time.perf_counter()
        service.sweep()
        idle_ms = (time.perf_counter() - started) * 1000
    finally:
        store.close()
    return Sweep(expired, len(swept), sweep_ms, idle_ms)
