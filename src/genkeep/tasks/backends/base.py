"""The backend interface, and the shared SQL implementation the SQLite and PostgreSQL backends build on.

A backend changes rows only as the task manager asks; it decides nothing (no messages, no rules). Faults of the
database (unreachable, timed out, locked too long) surface as `DatabaseUnavailable`, never as anything else.

One clock: every time that decides a task's fate (created, lease, deadline, time left, sweep, retention) is the
backend's own now, taken where the row is written: the database server's on PostgreSQL, the process's on SQLite and
in memory (one machine). Callers pass durations; `now=` makes a backend act at a given moment instead (tests).
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from genkeep.tasks.events import CHANNEL, EVENT_ACCEPTED
from genkeep.tasks.model import ResultNote, Task, TaskStatus, TaskType, now_millis
from genkeep.tasks.schema import tasks
from genkeep.tasks.task_fields import TASK_KEYS, Key, task_view_sql
from genkeep.tasks.view import TaskView

COLUMNS = [column.name for column in tasks.c]
QUERIES_FILE = Path(__file__).with_name("queries.sql")
_HEADER = re.compile(r"^-- ([a-z_]+)(?:@([a-z]+))? --$", re.MULTILINE)


class DuplicateIdempotencyKey(Exception):
    """The owner already has a task with this Idempotency-Key."""


class CapReached(Exception):
    """Accepting would pass a cap on unfinished tasks; `scope` is "owner" (running and waiting) or "studio"."""

    def __init__(self, scope: str, cap: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.cap = cap


@dataclass(frozen=True)
class ListQuery:
    """One page of an owner's tasks: filters, and the keyset cursor (created_at, id) to continue after."""

    owner_id: str
    type: TaskType | None = None
    statuses: tuple[TaskStatus, ...] = ()
    batch: str | None = None
    limit: int = 50
    after: tuple[int, str] | None = None


@dataclass(frozen=True)
class UnfinishedCount:
    """Unfinished tasks of one type and status, held by a worker (`running`) or waiting for one."""

    type: str
    status: str
    running: bool
    count: int


@dataclass(frozen=True)
class Caps:
    """Tasks one owner may have processing at once (`per_owner`) and waiting in line behind those (`waiting`), and
    unfinished tasks the whole studio may have."""

    per_owner: int
    studio: int
    waiting: int = 0

    @property
    def owner_unfinished(self) -> int:
        """Unfinished tasks one owner may have, running and waiting."""
        return self.per_owner + self.waiting


class Inserted(NamedTuple):
    """A new row: the backend's moment it was created at, and whether it is processing or waiting in line."""

    created_at: int
    status: TaskStatus


def load_statements(dialect: str, keys: Sequence[Key] = TASK_KEYS) -> dict[str, str]:
    """The named statements of queries.sql for one dialect ("sqlite" or "postgresql"); `keys` are the task JSON's
    (tests add some)."""
    text = QUERIES_FILE.read_text()
    headers = list(_HEADER.finditer(text))
    statements: dict[str, str] = {}
    overrides: dict[str, str] = {}
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = "\n".join(line for line in text[header.end():end].splitlines()
                         if not line.startswith("--")).strip("\n")
        name, only = header.group(1), header.group(2)
        if only is None:
            statements[name] = body
        elif only == dialect:
            overrides[name] = body
    statements.update(overrides)
    columns = ", ".join(COLUMNS)
    # The task's JSON (see task_fields), written from fragments that are no statements themselves.
    task_view = task_view_sql(statements, keys)
    for name in [name for name in statements if name == "task_view" or name.startswith("shown_")]:
        del statements[name]
    # Fragments, innermost last: a fragment may use the ones substituted after it.
    fragments = [(f"{{{name}}}", statements.pop(name)) for name in ("owned", "finished", "unfinished", "now")]

    def substituted(body: str) -> str:
        for placeholder, fragment in fragments:
            body = body.replace(placeholder, fragment)
        return body

    task_view = substituted(task_view)
    return {name: substituted(body).replace("{columns}", columns)
            .replace("{tasks_columns}", ", ".join(f"tasks.{column}" for column in COLUMNS))
            .replace("{task_view}", task_view)
            .replace("{channel}", CHANNEL)
            for name, body in statements.items()}


class Connection(Protocol):
    """What the shared SQL code needs of one database connection inside a transaction."""

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...

    def count(self, statement: str, params: Mapping[str, Any]) -> int:
        """Rows changed by a write."""

    def batch(self, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[tuple[Any, ...]]]:
        """Run statements in order and give the rows each returned; on PostgreSQL they travel together, in one
        round trip."""


class TaskBackend(abc.ABC):
    """Every read and write of the tasks table that the task manager needs."""

    #: True when `notify` reaches other processes (PostgreSQL LISTEN/NOTIFY); else events stay in-process.
    notifies_across_processes: bool = False

    # ---- the user's side ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def insert(self, task: Task, caps: Caps, *, now: int | None = None) -> Inserted:
        """Insert a new task (accepted or retried), atomically with both caps, the owner's and the studio's,
        whatever other processes insert meanwhile; raises CapReached or DuplicateIdempotencyKey. The row is created
        at the backend's now (the task's own created_at, updated_at and status are not stored): processing, or
        pending when the owner has `caps.per_owner` processing (or, for a batch's task, others already waiting)."""

    @abc.abstractmethod
    def promote(self, owner_id: str | None, per_owner: int, *, now: int | None = None) -> list[str]:
        """Begin processing the owner's next tasks in line (every owner's, with None), as many as leave at most
        `per_owner` processing: lone tasks first, then by arrival. The ids promoted."""

    @abc.abstractmethod
    def results(self, owner_id: str, *, batch: str | None = None, task_ids: Sequence[str] = (),
                limit: int = 1000) -> list[Task]:
        """The owner's completed tasks of a batch, or with these ids, oldest first."""

    @abc.abstractmethod
    def get(self, task_id: str, owner_id: str | None = None) -> Task | None:
        """One task; with owner_id, only if that owner's."""

    @abc.abstractmethod
    async def aview(self, task_id: str, owner_id: str) -> TaskView | None:
        """One of the owner's tasks as the API shows it, for the event loop: never blocks it, gives up within
        seconds when the database is away."""

    @abc.abstractmethod
    def get_by_idempotency_key(self, owner_id: str, key: str) -> Task | None: ...

    @abc.abstractmethod
    def get_many(self, task_ids: Sequence[str]) -> list[Task]:
        """The tasks with these ids that exist, in no particular order."""

    @abc.abstractmethod
    def clock(self) -> int:
        """The backend's now: the moment it would stamp a row with."""

    @abc.abstractmethod
    def unfinished_counts(self, now: int | None = None) -> list[UnfinishedCount]:
        """How many tasks are unfinished, by type, status and whether a worker holds a live lease on them."""

    @abc.abstractmethod
    async def alist(self, query: ListQuery) -> list[TaskView]:
        """Up to limit + 1 tasks as the API shows them (the extra one says there is a next page), newest first."""

    @abc.abstractmethod
    async def acount_unfinished(self, owner_id: str | None, upto: int) -> int:
        """Unfinished tasks of one owner, or of the whole studio (None), counted no further than `upto`."""

    @abc.abstractmethod
    def delete_finished(self, task_id: str, owner_id: str, *, now: int | None = None) -> bool:
        """Remove one of the owner's finished tasks' row and, in the same transaction, record its images as due
        for removal (see pending_removals)."""

    @abc.abstractmethod
    def existing_ids(self, task_ids: Sequence[str]) -> set[str]: ...

    @abc.abstractmethod
    def expired_finished(self, retention_ms: int, limit: int, *, now: int | None = None) -> list[str]:
        """Ids of tasks finished more than `retention_ms` ago (retention)."""

    @abc.abstractmethod
    def delete_expired(self, task_id: str, *, now: int | None = None) -> bool:
        """Remove a finished task's row (retention), whoever owns it, recording its images as due for removal."""

    @abc.abstractmethod
    def pending_removals(self, limit: int) -> list[str]:
        """Ids of deleted tasks whose images the storage has not removed yet, oldest first."""

    @abc.abstractmethod
    def removal_done(self, task_id: str) -> None:
        """The storage removed this task's images."""

    # ---- the worker's side ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def claim(self, worker_id: str, engine: str, types: Sequence[TaskType], *, limit: int, lease_ms: int,
              max_age_ms: int, max_attempts: int, now: int | None = None) -> list[Task]:
        """Take up to `limit` claimable tasks of these types created less than `max_age_ms` ago, oldest first,
        leased for `lease_ms` from now."""

    @abc.abstractmethod
    def renew(self, worker_id: str, task_ids: Sequence[str], lease_ms: int, *, now: int | None = None) -> set[str]:
        """Extend this worker's leases to `lease_ms` from now; the ids it still holds."""

    # The writes below that finish or hand back a task return the moment they recorded (None: nothing changed).

    @abc.abstractmethod
    def release(self, task_id: str, worker_id: str, *, refund_attempt: bool, now: int | None = None) -> int | None:
        ...

    @abc.abstractmethod
    def save_provider_job(self, task_id: str, worker_id: str, provider_job_id: str, *,
                          now: int | None = None) -> bool: ...

    @abc.abstractmethod
    def set_progress(self, task_id: str, worker_id: str, progress: float, *, now: int | None = None) -> bool: ...

    @abc.abstractmethod
    def set_preview(self, task_id: str, worker_id: str, preview_name: str, progress: float | None, *,
                    now: int | None = None) -> bool: ...

    @abc.abstractmethod
    def complete(self, task_id: str, worker_id: str, result_name: str, notes: tuple[ResultNote, ...] = (), *,
                 now: int | None = None) -> int | None: ...

    @abc.abstractmethod
    def fail(self, task_id: str, code: str, message: str, *, worker_id: str | None = None,
             owner_id: str | None = None, now: int | None = None) -> int | None:
        """Compare-and-set to failed, held by `worker_id` or owned by `owner_id`."""

    @abc.abstractmethod
    def sweep_timed_out(self, timeout_ms: int, message: str, task_id: str | None = None, *,
                        now: int | None = None) -> list[str]:
        """Fail the unfinished tasks (or this one) created more than `timeout_ms` ago."""

    @abc.abstractmethod
    def sweep_exhausted(self, max_attempts: int, message: str, *, now: int | None = None) -> list[str]: ...

    @abc.abstractmethod
    def sweep_waited_too_long(self, wait_ms: int, message: str, *, now: int | None = None) -> list[str]:
        """Fail (as timed out) the tasks waiting in line for more than `wait_ms` since they were created."""

    # ---- health and events ----------------------------------------------------------------------------------

    @abc.abstractmethod
    async def aping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers (readiness)."""

    def notify(self, event: str) -> None:  # noqa: B027 - in-process backends have nobody else to tell
        """Tell other processes' workers (a new task, a finished one): best effort, after commit."""

    def listen(self, on_event: Callable[[str], None], stopped: Callable[[], bool]) -> None:  # noqa: B027
        """Deliver other processes' events until `stopped()`; returns at once where there are none."""

    async def open_async(self) -> None:  # noqa: B027 - only pooled backends have something to open
        """Open what the event loop reads through (called from the web app's lifespan)."""

    async def close_async(self) -> None:  # noqa: B027
        """Close what `open_async` opened."""

    def close(self) -> None:  # noqa: B027
        """Close every connection."""


class SqlBackend(TaskBackend):
    """The statements of queries.sql run through a dialect's connections (the hooks below)."""

    #: True where the database's own clock stamps rows (PostgreSQL's `now` fragment); else the process's clock is
    #: passed as :now.
    server_clock: bool = False

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.sql = self.prepare(load_statements(dialect))

    def at(self, now: int | None) -> int | None:
        """The :now parameter: the caller's moment if given, else none where the database has its own clock."""
        return now if now is not None or self.server_clock else now_millis()

    @staticmethod
    def _moment(rows: list[tuple[Any, ...]]) -> int | None:
        return int(rows[0][0]) if rows else None

    # ---- hooks ----------------------------------------------------------------------------------------------

    def prepare(self, statements: dict[str, str]) -> dict[str, str]:
        """The statements in the driver's parameter style (queries.sql uses :name)."""
        return statements

    @abc.abstractmethod
    def transaction(self, *, write: bool) -> AbstractContextManager[Connection]:
        """A connection in a transaction (committed on success); `write` for one that will write."""

    @abc.abstractmethod
    async def arows(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a read, awaited without blocking the loop."""

    def rows(self, name: str, params: Mapping[str, Any], *, write: bool = False) -> list[tuple[Any, ...]]:
        with self.transaction(write=write) as conn:
            return conn.rows(self.sql[name], params)

    def count(self, name: str, params: Mapping[str, Any]) -> int:
        with self.transaction(write=True) as conn:
            return conn.count(self.sql[name], params)

    # ---- the interface --------------------------------------------------------------------------------------

    def insert(self, task: Task, caps: Caps, *, now: int | None = None) -> Inserted:
        # The owner's lock, the insert that checks the cap and the key itself, and the notification, sent
        # together: on PostgreSQL an accept's transaction takes 4 round trips (the pool's check, BEGIN, these,
        # COMMIT) instead of 7, and the server's CPU per accept went from 5.7 to 5.2 ms (bench/accept_cost.py,
        # medians of 3 runs). The lock stays a statement of its own: a statement sees the rows committed
        # before it started, so a count in the statement that waits for the lock could miss an accept that
        # committed meanwhile. (SQLite's write transactions are serial anyway.)
        statements: list[tuple[str, Mapping[str, Any]]] = []
        if "lock_accepts" in self.sql:
            statements.append((self.sql["lock_accepts"], {}))
        inserting = len(statements)
        statements.append((self.sql["insert"], {**task.insert_params(), "per_owner": caps.per_owner,
                                                "owner_cap": caps.owner_unfinished, "studio": caps.studio,
                                                "now": self.at(now)}))
        if "notify" in self.sql:
            # Delivered only if the transaction commits, so it goes along even when nothing is inserted.
            statements.append((self.sql["notify"], {"event": EVENT_ACCEPTED}))
        with self.transaction(write=True) as conn:
            inserted = conn.batch(statements)[inserting]
            if inserted:
                return Inserted(int(inserted[0][0]), TaskStatus(inserted[0][1]))
            if task.idempotency_key is not None and conn.rows(
                    self.sql["get_by_idempotency_key"], {"owner_id": task.owner_id, "key": task.idempotency_key}):
                raise DuplicateIdempotencyKey(task.idempotency_key)
            owned = conn.rows(self.sql["count_unfinished_of_owner"], {"owner_id": task.owner_id})[0][0]
            if owned >= caps.owner_unfinished:
                raise CapReached("owner", caps.owner_unfinished)
            raise CapReached("studio", caps.studio)

    def get(self, task_id: str, owner_id: str | None = None) -> Task | None:
        if owner_id is None:
            rows = self.rows("get", {"id": task_id})
        else:
            rows = self.rows("get_owned", {"id": task_id, "owner_id": owner_id})
        return Task.from_row(rows[0]) if rows else None

    async def aview(self, task_id: str, owner_id: str) -> TaskView | None:
        rows = await self.arows(self.sql["view_owned"], {"id": task_id, "owner_id": owner_id})
        return TaskView._make(rows[0]) if rows else None

    def get_by_idempotency_key(self, owner_id: str, key: str) -> Task | None:
        rows = self.rows("get_by_idempotency_key", {"owner_id": owner_id, "key": key})
        return Task.from_row(rows[0]) if rows else None

    def get_many(self, task_ids: Sequence[str]) -> list[Task]:
        if not task_ids:
            return []
        return [Task.from_row(row) for row in self.rows("get_many", {"ids": list(task_ids)})]

    def clock(self) -> int:
        return int(self.rows("clock", {"now": self.at(None)})[0][0])

    def unfinished_counts(self, now: int | None = None) -> list[UnfinishedCount]:
        return [UnfinishedCount(str(kind), str(status), bool(running), int(count))
                for kind, status, running, count in self.rows("unfinished_counts", {"now": self.at(now)})]

    def list_statement(self, query: ListQuery) -> tuple[str, dict[str, Any]]:
        filters = []
        params: dict[str, Any] = {"owner_id": query.owner_id, "limit": query.limit + 1}
        if query.type is not None:
            filters.append(self.sql["list_filter_type"])
            params["type"] = query.type.value
        if query.batch is not None:
            filters.append(self.sql["list_filter_batch"])
            params["batch"] = query.batch
        if query.statuses:
            if all(not status.is_final for status in query.statuses):
                filters.append(self.sql["list_filter_unfinished"])
            filters.append(self.sql["list_filter_statuses"])
            params["statuses"] = [status.value for status in query.statuses]
        if query.after is not None:
            filters.append(self.sql["list_filter_cursor"])
            params["cursor_created"], params["cursor_id"] = query.after
        statement = self.sql["list"].replace("{filters}", "".join(" " + f.strip() for f in filters))
        return statement, params

    async def alist(self, query: ListQuery) -> list[TaskView]:
        statement, params = self.list_statement(query)
        return list(map(TaskView._make, await self.arows(statement, params)))

    async def acount_unfinished(self, owner_id: str | None, upto: int) -> int:
        if owner_id is None:
            rows = await self.arows(self.sql["count_unfinished_upto"], {"upto": upto})
        else:
            rows = await self.arows(self.sql["count_unfinished_of_owner"], {"owner_id": owner_id})
        return min(int(rows[0][0]), upto)

    def _delete_recording_removal(self, name: str, params: Mapping[str, Any], now: int | None) -> bool:
        with self.transaction(write=True) as conn:
            if conn.count(self.sql[name], params) != 1:
                return False
            conn.count(self.sql["record_removal"], {"id": params["id"], "now": self.at(now)})
            return True

    def delete_finished(self, task_id: str, owner_id: str, *, now: int | None = None) -> bool:
        return self._delete_recording_removal("delete_finished", {"id": task_id, "owner_id": owner_id}, now)

    def pending_removals(self, limit: int) -> list[str]:
        return [row[0] for row in self.rows("pending_removals", {"limit": limit})]

    def removal_done(self, task_id: str) -> None:
        self.count("removal_done", {"id": task_id})

    def expired_finished(self, retention_ms: int, limit: int, *, now: int | None = None) -> list[str]:
        return [row[0] for row in self.rows("expired_finished", {"retention_ms": retention_ms, "limit": limit,
                                                                 "now": self.at(now)})]

    def delete_expired(self, task_id: str, *, now: int | None = None) -> bool:
        return self._delete_recording_removal("delete_one_finished", {"id": task_id}, now)

    def existing_ids(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        return {row[0] for row in self.rows("existing_ids", {"ids": list(task_ids)})}

    def claim(self, worker_id: str, engine: str, types: Sequence[TaskType], *, limit: int, lease_ms: int,
              max_age_ms: int, max_attempts: int, now: int | None = None) -> list[Task]:
        rows = self.rows("claim", {
            "worker_id": worker_id, "engine": engine, "types": [t.value for t in types], "limit": limit,
            "lease_ms": lease_ms, "max_age_ms": max_age_ms, "max_attempts": max_attempts, "now": self.at(now),
        }, write=True)
        return sorted((Task.from_row(row) for row in rows), key=lambda task: task.created_at)

    def renew(self, worker_id: str, task_ids: Sequence[str], lease_ms: int, *, now: int | None = None) -> set[str]:
        kept: set[str] = set()
        moment = self.at(now)
        with self.transaction(write=True) as conn:
            for task_id in task_ids:
                kept.update(row[0] for row in conn.rows(
                    self.sql["renew"], {"id": task_id, "worker_id": worker_id, "lease_ms": lease_ms, "now": moment}))
        return kept

    def release(self, task_id: str, worker_id: str, *, refund_attempt: bool, now: int | None = None) -> int | None:
        return self._moment(self.rows("release", {"id": task_id, "worker_id": worker_id,
                                                  "refund": int(refund_attempt), "now": self.at(now)}, write=True))

    def save_provider_job(self, task_id: str, worker_id: str, provider_job_id: str, *,
                          now: int | None = None) -> bool:
        return self.count("save_provider_job", {"id": task_id, "worker_id": worker_id,
                                                "provider_job_id": provider_job_id, "now": self.at(now)}) == 1

    def set_progress(self, task_id: str, worker_id: str, progress: float, *, now: int | None = None) -> bool:
        return self.count("set_progress", {"id": task_id, "worker_id": worker_id, "progress": progress,
                                           "now": self.at(now)}) == 1

    def set_preview(self, task_id: str, worker_id: str, preview_name: str, progress: float | None, *,
                    now: int | None = None) -> bool:
        return self.count("set_preview", {"id": task_id, "worker_id": worker_id, "preview_name": preview_name,
                                          "progress": progress, "now": self.at(now)}) == 1

    def complete(self, task_id: str, worker_id: str, result_name: str, notes: tuple[ResultNote, ...] = (), *,
                 now: int | None = None) -> int | None:
        return self._moment(self.rows("complete", {"id": task_id, "worker_id": worker_id, "result_name": result_name,
                                                   "notes": json.dumps(notes) if notes else None,
                                                   "now": self.at(now)}, write=True))

    def fail(self, task_id: str, code: str, message: str, *, worker_id: str | None = None,
             owner_id: str | None = None, now: int | None = None) -> int | None:
        params = {"id": task_id, "code": code, "message": message, "now": self.at(now)}
        if worker_id is not None:
            return self._moment(self.rows("fail_held", {**params, "worker_id": worker_id}, write=True))
        if owner_id is not None:
            return self._moment(self.rows("fail_owned", {**params, "owner_id": owner_id}, write=True))
        raise ValueError("fail needs the worker that holds the task or the owner")

    def sweep_timed_out(self, timeout_ms: int, message: str, task_id: str | None = None, *,
                        now: int | None = None) -> list[str]:
        params = {"timeout_ms": timeout_ms, "message": message, "now": self.at(now)}
        if task_id is not None:
            return [row[0] for row in self.rows("sweep_one_timed_out", {**params, "id": task_id}, write=True)]
        return [row[0] for row in self.rows("sweep_timed_out", params, write=True)]

    def sweep_exhausted(self, max_attempts: int, message: str, *, now: int | None = None) -> list[str]:
        return [row[0] for row in self.rows("sweep_exhausted", {"max_attempts": max_attempts, "message": message,
                                                                "now": self.at(now)}, write=True)]

    def sweep_waited_too_long(self, wait_ms: int, message: str, *, now: int | None = None) -> list[str]:
        return [row[0] for row in self.rows("sweep_waited_too_long", {"wait_ms": wait_ms, "message": message,
                                                                      "now": self.at(now)}, write=True)]

    def promote(self, owner_id: str | None, per_owner: int, *, now: int | None = None) -> list[str]:
        if owner_id is None:
            return [row[0] for row in self.rows("promote_all", {"per_owner": per_owner, "now": self.at(now)},
                                                write=True)]
        return [row[0] for row in self.rows("promote", {"owner_id": owner_id, "per_owner": per_owner,
                                                        "now": self.at(now)}, write=True)]

    def results(self, owner_id: str, *, batch: str | None = None, task_ids: Sequence[str] = (),
                limit: int = 1000) -> list[Task]:
        if batch is not None:
            rows = self.rows("results_of_batch", {"owner_id": owner_id, "batch": batch, "limit": limit})
        else:
            rows = self.rows("results_of_ids", {"owner_id": owner_id, "ids": list(task_ids)[:limit]})
        return [Task.from_row(row) for row in rows]

    async def aping(self) -> None:
        await self.arows(self.sql["ping"], {})

