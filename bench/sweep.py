"""One sweep over the 1M-row history with 20,000 expired tasks, timed around the real backend and TaskManager calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import dataset
import routes

from genkeep.config import Settings
from genkeep.storage import FolderStorage
from genkeep.tasks.backends import open_backend
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.model import now_millis

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
    """Time the backend's sweep_timed_out once, as it would run two hours after the timeout of every unfinished task.

    The clock is moved instead of the rows: aging them would be one more UPDATE of all 20,000, leaving a dead version
    of each for the sweep to step over, which is the benchmark's doing, not the workload's.
    """
    settle(url)
    expired = routes.count_unfinished(url)
    settings = Settings(data_dir=data_dir, database_url=url, task_timeout=timeout_seconds)
    backend = open_backend(url)
    try:
        manager = TaskManager(backend, FolderStorage(settings.images_dir, "bench-sweep-secret"), settings)
        backend.get_by_idempotency_key("warm-the-connection", "none")
        later = now_millis() + int(timeout_seconds * 1000) + 2 * HOUR_MS
        started = time.perf_counter()
        swept = backend.sweep_timed_out(int(timeout_seconds * 1000), manager.timeout_message(), now=later)
        sweep_ms = (time.perf_counter() - started) * 1000
        # What every GENKEEP_SWEEP_INTERVAL costs when nothing is due: TaskManager.sweep() with both statements.
        started = time.perf_counter()
        manager.sweep()
        idle_ms = (time.perf_counter() - started) * 1000
    finally:
        backend.close()
    return Sweep(expired, len(swept), sweep_ms, idle_ms)
