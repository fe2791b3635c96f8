"""The task store: every SQL statement genkeep runs lives here.

The tasks table is both the truth and the work queue. Claiming writes a worker id and a lease expiry in one
statement; finishing is compare-and-set on status = 'processing', so a late result after a timeout or a cancel
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from genkeep.tasks.database import is_sqlite
from genkeep.tasks.model import (
    UNFINISHED,
    ReferenceImage,
    Task,
    TaskError,
    TaskStatus,
    TaskType,
    now_millis,
)
from genkeep.tasks.schema import UNFINISHED_SQL, tasks

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "genkeep_tasks"


class DuplicateIdempotencyKey(Exception):
    """The owner already has a task with this Idempotency-Key."""


class InvalidCursor(ValueError):
    """A list cursor that genkeep did not make."""


@dataclass(frozen=True)
class Page:
    items: list[Task]
    next_cursor: str | None


def encode_cursor(task: Task) -> str:
    raw = f"{task.created_at}:{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, task_id = raw.split(":", 1)
        if not task_id or len(task_id) > 32 or not task_id.isalnum() or not 0 <= int(millis) < 2**62:
            raise ValueError(task_id)
        return int(millis), task_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor(cursor) from None


# Rows already turned into tasks: polls and lists read the same unchanged rows again and again, and an identical
# row always gives the same (immutable) Task object. Bounded by clearing: a miss only costs a conversion.
_TASKS_BY_ROW: dict[tuple[Any, ...], Task] = {}
TASK_CACHE_SIZE = 20_000


def _cached_task(row: tuple[Any, ...]) -> Task:
    task = _TASKS_BY_ROW.get(row)
    if task is None:
        if len(_TASKS_BY_ROW) >= TASK_CACHE_SIZE:
            _TASKS_BY_ROW.clear()
        task = _TASKS_BY_ROW[row] = _row_to_task(row)
    return task


def _row_to_task(row: Sequence[Any]) -> Task:
    """A task from a row in COLUMNS order (a driver tuple or a SQLAlchemy row)."""
    (task_id, owner_id, task_type, status, prompt, reference_images, result_name, error_code, error_message,
     progress, engine, provider_job_id, attempts, worker_id, lease_expires_at, idempotency_key, created_at,
     updated_at, finished_at) = row
    return Task(
        id=task_id,
        owner_id=owner_id,
        type=TaskType(task_type),
        status=TaskStatus(status),
        prompt=prompt,
        reference_images=tuple(ReferenceImage(**image) for image in json.loads(reference_images)),
        created_at=created_at,
        updated_at=updated_at,
        finished_at=finished_at,
        result_name=result_name,
        error=TaskError(error_code, error_message or "") if error_code else None,
        progress=progress,
        engine=engine,
        provider_job_id=provider_job_id,
        attempts=attempts,
        worker_id=worker_id,
        lease_expires_at=lease_expires_at,
        idempotency_key=idempotency_key,
    )


def _unfinished() -> Any:
    # Literal SQL, word for word the partial index's predicate: SQLite only uses a partial index whose WHERE
    # terms appear in the query itself.
    return text(UNFINISHED_SQL)


COLUMNS = [column.name for column in tasks.c]
SELECT_TASK = f"SELECT {', '.join(COLUMNS)} FROM tasks"


class DirectReads:
    """Hot-path reads straight on the database driver, one connection per thread.

    Status polls, recovery and history are most of the traffic; SQLAlchemy's per-call overhead costs more than
    the indexed point read itself, so these few statements skip it (writes and migrations keep SQLAlchemy).
    """

    def __init__(self, engine: Engine) -> None:
        self.sqlite = is_sqlite(str(engine.url))
        self.url = engine.url
        self.placeholder = "?" if self.sqlite else "%s"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.sqlite:
                conn = sqlite3.connect(self.url.database or ":memory:", check_same_thread=False,
                                       isolation_level=None, timeout=10)
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("PRAGMA query_only=1")
            else:
                import psycopg

                dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
                conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def sql(self, statement: str) -> str:
        return statement if self.sqlite else statement.replace("?", "%s")

    def rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self._connection().execute(statement, params).fetchall())
        except Exception:
            # A broken connection (server restart): drop it, the next call opens a fresh one.
            self._discard()
            raise

    def _discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


class TaskStore:
    """All reads and writes of generation tasks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(str(engine.url))
        self.reads = DirectReads(engine)
        reads = self.reads
        self._get = reads.sql(f"{SELECT_TASK} WHERE id = ?")
        self._get_owned = reads.sql(f"{SELECT_TASK} WHERE id = ? AND owner_id = ?")
        self._get_by_key = reads.sql(f"{SELECT_TASK} WHERE owner_id = ? AND idempotency_key = ?")
        # SQLite's planner, without statistics, would walk the owner's whole history instead of the partial index.
        hint = " INDEXED BY ix_tasks_unfinished_owner_type_created" if self.sqlite else ""
        self._count_unfinished = reads.sql(
            f"SELECT count(*) FROM tasks{hint} WHERE owner_id = ? AND {UNFINISHED_SQL}")

    def close(self) -> None:
        self.reads.close()
        self.engine.dispose()

    # ---- accepting and reading -------------------------------------------------------------------------------

    def create(self, task: Task) -> None:
        """Insert a new task; raises DuplicateIdempotencyKey if the owner already used its key."""
        values = {
            "id": task.id,
            "owner_id": task.owner_id,
            "type": task.type.value,
            "status": task.status.value,
            "prompt": task.prompt,
            "reference_images": json.dumps([image.__dict__ for image in task.reference_images]),
            "attempts": 0,
            "idempotency_key": task.idempotency_key,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
            # 0, not NULL: "claimable since forever", so claiming is one range scan of the lease index.
            "lease_expires_at": 0,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(tasks).values(**values))
                if not self.sqlite:
                    # Delivered on commit: idle workers on every machine wake at once.
                    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        except IntegrityError:
            if task.idempotency_key is not None and self.get_by_idempotency_key(
                task.owner_id, task.idempotency_key
            ):
                raise DuplicateIdempotencyKey(task.idempotency_key) from None
            raise

    def get(self, task_id: str, owner_id: str | None = None) -> Task | None:
        """One task; with owner_id, only if that owner's."""
        if owner_id is None:
            rows = self.reads.rows(self._get, (task_id,))
        else:
            rows = self.reads.rows(self._get_owned, (task_id, owner_id))
        return _cached_task(rows[0]) if rows else None

    def get_by_idempotency_key(self, owner_id: str, key: str) -> Task | None:
        rows = self.reads.rows(self._get_by_key, (owner_id, key))
        return _cached_task(rows[0]) if rows else None

    def list_tasks(
        self,
        owner_id: str,
        *,
        task_type: TaskType | None = None,
        statuses: Sequence[TaskStatus] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """The owner's tasks, newest first, keyset-paged (on the indexes that start with owner, type, status)."""
        where = ["owner_id = ?"]
        params: list[Any] = [owner_id]
        if task_type is not None:
            where.append("type = ?")
            params.append(task_type.value)
        if statuses:
            if set(statuses) <= set(UNFINISHED):
                # Word for word the partial index's predicate, so the recovery query uses it (SQLite needs that).
                where.append(UNFINISHED_SQL)
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += [status.value for status in statuses]
        if cursor:
            millis, task_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [millis, millis, task_id]
        statement = self.reads.sql(
            f"{SELECT_TASK} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?")
        rows = self.reads.rows(statement, [*params, limit + 1])
        items = [_cached_task(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
        return Page(items, next_cursor)

    def count_unfinished(self, owner_id: str) -> int:
        return int(self.reads.rows(self._count_unfinished, (owner_id,))[0][0])

    def delete_finished(self, task_id: str, owner_id: str) -> bool:
        """Remove a finished task's row; False if it is not finished (or not there)."""
        statement = delete(tasks).where(
            tasks.c.id == task_id,
            tasks.c.owner_id == owner_id,
            tasks.c.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]),
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def existing_ids(self, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return set(conn.execute(select(tasks.c.id).where(tasks.c.id.in_(ids))).scalars())

    # ---- the work queue ------------------------------------------------------------------------------------------

    def claim(self, worker_id: str, engine_name: str, *, limit: int, lease_seconds: float,
              max_attempts: int) -> list[Task]:
        """Take up to `limit` processing tasks nobody holds (or whose holder's lease ran out)."""
        moment = now_millis()
        candidates = (
            select(tasks.c.id)
            .where(
                _unfinished(),
                tasks.c.lease_expires_at < moment,
                tasks.c.status == TaskStatus.PROCESSING.value,
                tasks.c.attempts < max_attempts,
            )
            # The lease index's order: never-claimed tasks (lease 0) first, then the longest-abandoned ones.
            .order_by(tasks.c.lease_expires_at, tasks.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(tasks)
            .where(tasks.c.id.in_(candidates.scalar_subquery()))
            .values(
                worker_id=worker_id,
                lease_expires_at=moment + int(lease_seconds * 1000),
                attempts=tasks.c.attempts + 1,
                engine=engine_name,
                updated_at=moment,
            )
            .returning(*tasks.c)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(statement).all()
        return sorted((_row_to_task(row) for row in rows), key=lambda task: task.created_at)

    def renew(self, worker_id: str, task_ids: Sequence[str], lease_seconds: float) -> set[str]:
        """Extend this worker's leases; returns the ids it still holds (the rest finished or were taken)."""
        if not task_ids:
            return set()
        moment = now_millis()
        statement = (
            update(tasks)
            .where(
                tasks.c.id.in_(list(task_ids)),
                tasks.c.worker_id == worker_id,
                tasks.c.status == TaskStatus.PROCESSING.value,
            )
            .values(lease_expires_at=moment + int(lease_seconds * 1000))
            .returning(tasks.c.id)
        )
        with self.engine.begin() as conn:
            return set(conn.execute(statement).scalars())

    def release(self, task_id: str, worker_id: str, *, count_attempt: bool = False) -> bool:
        """Hand a task back unfinished (worker shutting down): another worker takes it at once."""
        attempts = tasks.c.attempts if count_attempt else tasks.c.attempts - 1
        statement = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.worker_id == worker_id,
                   tasks.c.status == TaskStatus.PROCESSING.value)
            .values(worker_id=None, lease_expires_at=0, attempts=attempts,
                    updated_at=now_millis())
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def save_provider_job(self, task_id: str, provider_job_id: str) -> bool:
        statement = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.PROCESSING.value)
            .values(provider_job_id=provider_job_id, updated_at=now_millis())
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def set_progress(self, task_id: str, progress: float) -> None:
        statement = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.PROCESSING.value)
            .values(progress=progress, updated_at=now_millis())
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    # ---- finishing: compare-and-set on processing ----------------------------------------------------------------

    def complete(self, task_id: str, result_name: str, *, worker_id: str | None = None) -> bool:
        """Mark completed with its image; False (and nothing changed) if the task had already finished, or if
        `worker_id` no longer holds it."""
        moment = now_millis()
        return self._finish(task_id, holder=worker_id, status=TaskStatus.COMPLETED.value, result_name=result_name,
                            progress=1.0, finished_at=moment, updated_at=moment, worker_id=None,
                            lease_expires_at=None)

    def fail(self, task_id: str, code: str, message: str, *, owner_id: str | None = None,
             worker_id: str | None = None) -> bool:
        """Mark failed with a reason; False (and nothing changed) if the task had already finished, or if
        `worker_id` no longer holds it (a worker whose lease ran out must not fail its successor's run)."""
        moment = now_millis()
        return self._finish(task_id, owner_id=owner_id, holder=worker_id, status=TaskStatus.FAILED.value,
                            error_code=code, error_message=message, finished_at=moment, updated_at=moment,
                            worker_id=None, lease_expires_at=None)

    def _finish(self, task_id: str, owner_id: str | None = None, holder: str | None = None,
                **values: Any) -> bool:
        statement = update(tasks).where(tasks.c.id == task_id, _unfinished())
        if owner_id is not None:
            statement = statement.where(tasks.c.owner_id == owner_id)
        if holder is not None:
            statement = statement.where(tasks.c.worker_id == holder)
        with self.engine.begin() as conn:
            changed = conn.execute(statement.values(**values)).rowcount == 1
        if not changed:
            log.warning("task %s had already finished; %s ignored", task_id, values["status"])
        return changed

    # ---- the sweeper ---------------------------------------------------------------------------------------------

    def sweep_timed_out(self, timeout_seconds: float, message: str, task_id: str | None = None) -> list[str]:
        """Fail every unfinished task older than the timeout (one indexed UPDATE); returns their ids."""
        moment = now_millis()
        statement = (
            update(tasks)
            .where(_unfinished(), tasks.c.created_at < moment - int(timeout_seconds * 1000))
            .values(status=TaskStatus.FAILED.value, error_code="timeout", error_message=message,
                    finished_at=moment, updated_at=moment, worker_id=None, lease_expires_at=None)
            .returning(tasks.c.id)
        )
        if task_id is not None:
            statement = statement.where(tasks.c.id == task_id)
        with self.engine.begin() as conn:
            return list(conn.execute(statement).scalars())

    def sweep_exhausted(self, max_attempts: int, message: str) -> list[str]:
        """Fail tasks whose workers died `max_attempts` times: nobody may claim them again."""
        moment = now_millis()
        statement = (
            update(tasks)
            .where(_unfinished(), tasks.c.attempts >= max_attempts, tasks.c.lease_expires_at < moment)
            .values(status=TaskStatus.FAILED.value, error_code="interrupted", error_message=message,
                    finished_at=moment, updated_at=moment, worker_id=None, lease_expires_at=None)
            .returning(tasks.c.id)
        )
        with self.engine.begin() as conn:
            return list(conn.execute(statement).scalars())
