"""An in-memory backend for fast unit tests of the manager and the workers (URL `memory:`).

Same contract as the SQL backends (the contract suite runs on all three); nothing survives the process. A test can
make it unreachable (`down = True`) to see how faults are handled.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from genkeep.errors import DatabaseUnavailable
from genkeep.tasks.backends.base import (
    CapReached,
    Caps,
    DuplicateIdempotencyKey,
    Inserted,
    ListQuery,
    TaskBackend,
    UnfinishedCount,
)
from genkeep.tasks.model import ResultNote, Task, TaskError, TaskStatus, TaskType, now_millis
from genkeep.tasks.view import TaskView


def _at(now: int | None) -> int:
    """The moment to act at: the caller's, else the process's clock (the one machine's)."""
    return now if now is not None else now_millis()


class MemoryBackend(TaskBackend):
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.removals: dict[str, int] = {}
        self.down = False
        self._lock = threading.RLock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.down:
            raise DatabaseUnavailable("memory backend: down")
        with self._lock:
            yield

    def _replace(self, task: Task, **changes: object) -> Task:
        self.tasks[task.id] = changed = dataclasses.replace(task, **changes)  # type: ignore[arg-type]
        return changed

    def _unfinished(self) -> Iterator[Task]:
        return (task for task in self.tasks.values() if not task.is_final)

    # ---- the user's side ------------------------------------------------------------------------------------

    def insert(self, task: Task, caps: Caps, *, now: int | None = None) -> Inserted:
        moment = _at(now)
        with self._locked():
            if task.idempotency_key is not None and self.get_by_idempotency_key(task.owner_id, task.idempotency_key):
                raise DuplicateIdempotencyKey(task.idempotency_key)
            owned = [t.status for t in self._unfinished() if t.owner_id == task.owner_id]
            if len(owned) >= caps.owner_unfinished:
                raise CapReached("owner", caps.owner_unfinished)
            if sum(1 for _ in self._unfinished()) >= caps.studio:
                raise CapReached("studio", caps.studio)
            ready = owned.count(TaskStatus.PROCESSING) < caps.per_owner and (
                task.batch is None or TaskStatus.PENDING not in owned)
            status = TaskStatus.PROCESSING if ready else TaskStatus.PENDING
            self.tasks[task.id] = dataclasses.replace(task, status=status, attempts=0, lease_expires_at=0,
                                                      created_at=moment, updated_at=moment,
                                                      processing_since=moment if ready else None)
            return Inserted(moment, status)

    def promote(self, owner_id: str | None, per_owner: int, *, now: int | None = None) -> list[str]:
        moment = _at(now)
        with self._locked():
            promoted = []
            owners = {t.owner_id for t in self._unfinished() if owner_id in (None, t.owner_id)}
            for owner in sorted(owners):
                mine = [t for t in self._unfinished() if t.owner_id == owner]
                room = per_owner - sum(1 for t in mine if t.status is TaskStatus.PROCESSING)
                waiting = sorted((t for t in mine if t.status is TaskStatus.PENDING),
                                 key=lambda t: (t.batch is not None, t.created_at, t.id))
                for task in waiting[:max(0, room)]:
                    self._replace(task, status=TaskStatus.PROCESSING, processing_since=moment, updated_at=moment)
                    promoted.append(task.id)
            return promoted

    def results(self, owner_id: str, *, batch: str | None = None, task_ids: Sequence[str] = (),
                limit: int = 1000) -> list[Task]:
        with self._locked():
            wanted = set(task_ids)
            found = [t for t in self.tasks.values() if t.owner_id == owner_id and t.status is TaskStatus.COMPLETED
                     and (t.batch == batch if batch is not None else t.id in wanted)]
        return sorted(found, key=lambda t: (t.created_at, t.id))[:limit]

    def get(self, task_id: str, owner_id: str | None = None) -> Task | None:
        with self._locked():
            task = self.tasks.get(task_id)
            return task if task is not None and owner_id in (None, task.owner_id) else None

    async def aview(self, task_id: str, owner_id: str) -> TaskView | None:
        task = self.get(task_id, owner_id)
        return TaskView.of(task) if task is not None else None

    def get_by_idempotency_key(self, owner_id: str, key: str) -> Task | None:
        with self._locked():
            return next((t for t in self.tasks.values() if t.owner_id == owner_id and t.idempotency_key == key),
                        None)

    def get_many(self, task_ids: Sequence[str]) -> list[Task]:
        with self._locked():
            return [self.tasks[task_id] for task_id in set(task_ids) if task_id in self.tasks]

    def clock(self) -> int:
        return now_millis()

    def unfinished_counts(self, now: int | None = None) -> list[UnfinishedCount]:
        now = _at(now)
        with self._locked():
            counts: dict[tuple[str, str, bool], int] = {}
            for task in self._unfinished():
                key = (task.type.value, task.status.value, (task.lease_expires_at or 0) >= now)
                counts[key] = counts.get(key, 0) + 1
        return [UnfinishedCount(*key, count) for key, count in counts.items()]

    async def alist(self, query: ListQuery) -> list[TaskView]:
        with self._locked():
            found = [t for t in self.tasks.values() if t.owner_id == query.owner_id
                     and (query.type is None or t.type is query.type)
                     and (query.batch is None or t.batch == query.batch)
                     and (not query.statuses or t.status in query.statuses)
                     and (query.after is None or (t.created_at, t.id) < query.after)]
        found.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return [TaskView.of(task) for task in found[: query.limit + 1]]

    async def acount_unfinished(self, owner_id: str | None, upto: int) -> int:
        with self._locked():
            return min(upto, sum(1 for t in self._unfinished() if owner_id in (None, t.owner_id)))

    def delete_finished(self, task_id: str, owner_id: str, *, now: int | None = None) -> bool:
        with self._locked():
            task = self.tasks.get(task_id)
            if task is None or task.owner_id != owner_id or not task.is_final:
                return False
            del self.tasks[task_id]
            self.removals[task_id] = _at(now)
            return True

    def pending_removals(self, limit: int) -> list[str]:
        with self._locked():
            return sorted(self.removals, key=self.removals.__getitem__)[:limit]

    def removal_done(self, task_id: str) -> None:
        with self._locked():
            self.removals.pop(task_id, None)

    def expired_finished(self, retention_ms: int, limit: int, *, now: int | None = None) -> list[str]:
        finished_before = _at(now) - retention_ms
        with self._locked():
            return [t.id for t in self.tasks.values() if t.is_final and (t.finished_at or 0) < finished_before][:limit]

    def delete_expired(self, task_id: str, *, now: int | None = None) -> bool:
        with self._locked():
            task = self.tasks.get(task_id)
            if task is None or not task.is_final:
                return False
            del self.tasks[task_id]
            self.removals[task_id] = _at(now)
            return True

    def existing_ids(self, task_ids: Sequence[str]) -> set[str]:
        with self._locked():
            return {task_id for task_id in task_ids if task_id in self.tasks}

    # ---- the worker's side ----------------------------------------------------------------------------------

    def claim(self, worker_id: str, engine: str, types: Sequence[TaskType], *, limit: int, lease_ms: int,
              max_age_ms: int, max_attempts: int, now: int | None = None) -> list[Task]:
        now = _at(now)
        start_after, lease_until = now - max_age_ms, now + lease_ms
        with self._locked():
            claimable = sorted((t for t in self._unfinished() if t.status is TaskStatus.PROCESSING
                                and (t.processing_since or 0) > start_after and (t.lease_expires_at or 0) < now
                                and t.attempts < max_attempts and t.type in types),
                               key=lambda t: t.processing_since or 0)[:limit]
            return [self._replace(t, worker_id=worker_id, lease_expires_at=lease_until, attempts=t.attempts + 1,
                                  engine=engine, updated_at=now) for t in claimable]

    def _held(self, task_id: str, worker_id: str) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None or task.worker_id != worker_id or task.status is not TaskStatus.PROCESSING:
            return None
        return task

    def renew(self, worker_id: str, task_ids: Sequence[str], lease_ms: int, *, now: int | None = None) -> set[str]:
        lease_until = _at(now) + lease_ms
        with self._locked():
            kept = set()
            for task_id in task_ids:
                if (task := self._held(task_id, worker_id)) is not None:
                    self._replace(task, lease_expires_at=lease_until)
                    kept.add(task_id)
            return kept

    def release(self, task_id: str, worker_id: str, *, refund_attempt: bool, now: int | None = None) -> int | None:
        now = _at(now)
        with self._locked():
            if (task := self._held(task_id, worker_id)) is None:
                return None
            self._replace(task, worker_id=None, lease_expires_at=0, updated_at=now,
                          attempts=task.attempts - int(refund_attempt))
            return now

    def save_provider_job(self, task_id: str, worker_id: str, provider_job_id: str, *,
                          now: int | None = None) -> bool:
        now = _at(now)
        with self._locked():
            if (task := self._held(task_id, worker_id)) is None:
                return False
            self._replace(task, provider_job_id=provider_job_id, updated_at=now)
            return True

    def set_progress(self, task_id: str, worker_id: str, progress: float, *, now: int | None = None) -> bool:
        now = _at(now)
        with self._locked():
            if (task := self._held(task_id, worker_id)) is None:
                return False
            self._replace(task, progress=progress, updated_at=now)
            return True

    def set_preview(self, task_id: str, worker_id: str, preview_name: str, progress: float | None, *,
                    now: int | None = None) -> bool:
        now = _at(now)
        with self._locked():
            if (task := self._held(task_id, worker_id)) is None:
                return False
            self._replace(task, preview_name=preview_name, updated_at=now,
                          progress=task.progress if progress is None else progress)
            return True

    def complete(self, task_id: str, worker_id: str, result_name: str, notes: tuple[ResultNote, ...] = (), *,
                 now: int | None = None) -> int | None:
        now = _at(now)
        with self._locked():
            if (task := self._held(task_id, worker_id)) is None:
                return None
            self._replace(task, status=TaskStatus.COMPLETED, result_name=result_name, progress=1.0, notes=notes,
                          finished_at=now, updated_at=now, worker_id=None, lease_expires_at=None, preview_name=None)
            return now

    def _finish_failed(self, task: Task, code: str, message: str, now: int) -> None:
        self._replace(task, status=TaskStatus.FAILED, error=TaskError(code, message), finished_at=now,
                      updated_at=now, worker_id=None, lease_expires_at=None, preview_name=None)

    def fail(self, task_id: str, code: str, message: str, *, worker_id: str | None = None,
             owner_id: str | None = None, now: int | None = None) -> int | None:
        now = _at(now)
        with self._locked():
            task = self.tasks.get(task_id)
            if task is None or task.is_final:
                return None
            if (worker_id is not None and task.worker_id != worker_id) or (
                    owner_id is not None and task.owner_id != owner_id):
                return None
            self._finish_failed(task, code, message, now)
            return now

    def sweep_timed_out(self, timeout_ms: int, message: str, task_id: str | None = None, *,
                        now: int | None = None) -> list[str]:
        now = _at(now)
        started_before = now - timeout_ms
        with self._locked():
            due = [t for t in self._unfinished() if t.status is TaskStatus.PROCESSING
                   and (t.processing_since or 0) < started_before and task_id in (None, t.id)]
            for task in due:
                self._finish_failed(task, "timeout", message, now)
            return [task.id for task in due]

    def sweep_exhausted(self, max_attempts: int, message: str, *, now: int | None = None) -> list[str]:
        now = _at(now)
        with self._locked():
            due = [t for t in self._unfinished() if t.attempts >= max_attempts and (t.lease_expires_at or 0) < now]
            for task in due:
                self._finish_failed(task, "interrupted", message, now)
            return [task.id for task in due]

    def sweep_waited_too_long(self, wait_ms: int, message: str, *, now: int | None = None) -> list[str]:
        now = _at(now)
        with self._locked():
            due = [t for t in self._unfinished() if t.status is TaskStatus.PENDING and t.created_at < now - wait_ms]
            for task in due:
                self._finish_failed(task, "timeout", message, now)
            return [task.id for task in due]

    async def aping(self) -> None:
        with self._locked():
            return

    def listen(self, on_event: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        return
