"""Driving the task manager and workers directly, without HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import case, update

from genkeep.config import Settings
from genkeep.engines.base import Engine
from genkeep.studio import Studio
from genkeep.tasks.backends.memory import MemoryBackend
from genkeep.tasks.model import Task, TaskType, now, to_millis
from genkeep.tasks.new_task import NewTask
from genkeep.tasks.schema import tasks
from genkeep.workers.pool import WorkerPool
from tests.support.database import connect as connect_database


def accept(studio: Studio, prompt: str | None = "a kite", owner: str = "owner-a",
           task_type: TaskType = TaskType.CREATE) -> Task:
    """A new image-less task, accepted the way the API accepts one."""
    return studio.manager.accept(owner, NewTask(task_type, prompt, 0), []).task


def row(studio: Studio, task_id: str) -> Task | None:
    """The task's row as it is now."""
    return studio.backend.get(task_id)


def age(studio: Studio, task_id: str, minutes: float) -> None:
    """Pretend the task was accepted `minutes` ago (the test's own write, outside the manager)."""
    created_at = to_millis(now() - timedelta(minutes=minutes))
    if isinstance(studio.backend, MemoryBackend):
        with studio.backend._lock:
            task = studio.backend.tasks[task_id]
            studio.backend.tasks[task_id] = dataclasses.replace(
                task, created_at=created_at,
                processing_since=None if task.processing_since is None else created_at)
        return
    engine = connect_database(studio.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            # A task waiting in line has not begun processing: only its creation moves back.
            conn.execute(update(tasks).where(tasks.c.id == task_id).values(
                created_at=created_at,
                processing_since=case((tasks.c.processing_since.is_(None), None), else_=created_at)))
    finally:
        engine.dispose()


def pool_of(studio: Studio, engine: Engine, settings: Settings | None = None, concurrency: int = 1) -> WorkerPool:
    """A worker pool running every type on one engine."""
    return WorkerPool(studio.manager, dict.fromkeys(TaskType, engine), settings or studio.settings, concurrency)
