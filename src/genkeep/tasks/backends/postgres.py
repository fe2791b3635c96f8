"""The PostgreSQL backend: many API and worker processes on many machines around one database.

Two psycopg pools: a thread-safe one for workers, the sweeper and the user's writes (run off the event loop), and an
asyncio one that the event loop reads through. Every connection carries server-side statement and lock timeouts,
and every statement a client-side deadline: when the database stops answering (packets held by a broken network,
not refused) the server-side timeouts never fire, so a watchdog shuts the connection's socket down and the call
fails within seconds instead of hanging. The pools then replace the dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from sqlalchemy.engine import make_url

from genkeep.errors import DatabaseUnavailable
from genkeep.tasks.backends.base import ListQuery, SqlBackend
from genkeep.tasks.backends.shared_reads import SharedReads
from genkeep.tasks.events import CHANNEL, EVENT_ACCEPTED
from genkeep.tasks.model import TaskStatus
from genkeep.tasks.view import TaskView

log = logging.getLogger(__name__)

# The budgets below keep every database route's answer (an error included) well within 5 s when the database
# stops answering: a read gives up after READ_TIMEOUT_S, a write transaction's statement after STATEMENT_TIMEOUT_S,
# waiting for a pooled connection after POOL_WAIT_S, opening one after CONNECT_TIMEOUT_S.
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_S = 2.5
READ_TIMEOUT_S = 2.0
POOL_WAIT_S = 1.5
# Statements over many rows (a mass sweep, retention) may take longer, on the sweeper's thread only.
SLOW_STATEMENTS = ("sweep_timed_out", "sweep_exhausted", "expired_finished")
SLOW_STATEMENT_TIMEOUT_S = 30.0
# A read whose connection failed this fast met a connection the server had dropped: one retry is worth it.
STALE_CONNECTION_S = 0.5
DEADLINE_TICK_S = 0.25
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_]+)")


def _is_first_page_of_a_type(query: ListQuery) -> bool:
    """The lists pages open with: one type's history, or its unfinished tasks (recovery), the first page."""
    return (query.type is not None and query.after is None and query.batch is None
            and not any(status.is_final for status in query.statuses))


def connection_kwargs() -> dict[str, Any]:
    statement_ms = int(STATEMENT_TIMEOUT_S * 1000)
    return {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms // 2} "
                   f"-c idle_in_transaction_session_timeout={statement_ms * 3}",
        # A peer that vanished (no RST) is noticed by the kernel too, not only by the watchdog.
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
        "tcp_user_timeout": statement_ms * 2,
    }


def _cut(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Shut a stuck connection's socket down: its blocked call raises at once, and the pool discards it."""
    with contextlib.suppress(Exception):
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        log.warning("a database call passed its deadline; its connection was cut")


class Watchdog:
    """One thread that cuts connections whose statements run past their deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, psycopg.Connection[Any]]] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count()
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="genkeep-db-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def deadline(self, conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
        token = next(self._tokens)
        with self._wake:
            self._armed.add(token)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, conn))
            if self._heap[0][1] == token:
                self._wake.notify()
        try:
            yield
        finally:
            with self._wake:
                self._armed.discard(token)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                due, token, conn = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(token)
            _cut(conn)


_WATCHDOG: Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def watchdog() -> Watchdog:
    global _WATCHDOG
    with _WATCHDOG_LOCK:
        if _WATCHDOG is None:
            _WATCHDOG = Watchdog()
        return _WATCHDOG


@contextlib.contextmanager
def _faults() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable,
            PoolTimeout) as error:
        raise DatabaseUnavailable(f"PostgreSQL: {type(error).__name__}") from error


class _Connection:
    def __init__(self, conn: psycopg.Connection[Any], slow: frozenset[str]) -> None:
        self.conn = conn
        self.slow = slow

    def _deadline(self, statement: str) -> float:
        if statement in self.slow:
            self.conn.execute(f"SET LOCAL statement_timeout = {int(SLOW_STATEMENT_TIMEOUT_S * 1000)}")
            return SLOW_STATEMENT_TIMEOUT_S
        return STATEMENT_TIMEOUT_S

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with watchdog().deadline(self.conn, self._deadline(statement)):
            cursor = self.conn.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []

    def count(self, statement: str, params: Mapping[str, Any]) -> int:
        with watchdog().deadline(self.conn, self._deadline(statement)):
            return self.conn.execute(statement, params).rowcount

    def batch(self, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[tuple[Any, ...]]]:
        # One deadline for the lot: a lock wait among them gives up after lock_timeout, half of it.
        with watchdog().deadline(self.conn, STATEMENT_TIMEOUT_S), self.conn.pipeline():
            cursors = [self.conn.execute(statement, params) for statement, params in statements]
        return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]


class PostgresBackend(SqlBackend):
    notifies_across_processes = True
    server_clock = True

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        super().__init__("postgresql")
        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool = ConnectionPool(self.conninfo, min_size=1, max_size=pool_size, kwargs=connection_kwargs(),
                                   timeout=POOL_WAIT_S, check=ConnectionPool.check_connection, open=True,
                                   name="genkeep")
        self.apool: AsyncConnectionPool | None = None
        self.apool_size = pool_size
        # Reads in flight on the event loop and when each must give up (see _watch_deadlines).
        self._deadlines: dict[psycopg.AsyncConnection[Any], float] = {}
        self._watching: asyncio.Task[None] | None = None
        # The hot reads of the event loop, sharing round trips (see aview and alist).
        self._polls = SharedReads(self._views)
        self._first_pages = SharedReads(self._first_pages_of_types)

    def prepare(self, statements: dict[str, str]) -> dict[str, str]:
        prepared = {name: _PARAMETER.sub(r"%(\1)s", body) for name, body in statements.items()}
        self.slow = frozenset(prepared[name] for name in SLOW_STATEMENTS)
        return prepared

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Connection]:
        with _faults(), self.pool.connection() as conn, conn.transaction():
            yield _Connection(conn, self.slow)

    # ---- reads on the event loop ----------------------------------------------------------------------------

    async def open_async(self) -> None:
        if self.apool is None:
            self.apool = AsyncConnectionPool(self.conninfo, min_size=1, max_size=self.apool_size,
                                             kwargs=connection_kwargs(), timeout=POOL_WAIT_S, open=False,
                                             name="genkeep-async")
            await self.apool.open()
            self._deadlines = {}
            self._watching = asyncio.create_task(self._watch_deadlines(), name="genkeep-read-deadlines")

    async def close_async(self) -> None:
        if self.apool is not None:
            if self._watching is not None:
                self._watching.cancel()
            self._polls.close()
            self._first_pages.close()
            await self.apool.close()
            self.apool = None

    async def _watch_deadlines(self) -> None:
        """The event loop's watchdog: cuts a read's connection once it passes its deadline.

        One look every DEADLINE_TICK_S instead of a timer per read: a timer armed and cancelled per read cost
        15-30 µs of a 190 µs poll (bench, PostgreSQL on loopback); the deadline may now be late by one tick."""
        while True:
            await asyncio.sleep(DEADLINE_TICK_S)
            moment = time.monotonic()
            for conn, deadline in list(self._deadlines.items()):
                if deadline < moment:
                    self._deadlines.pop(conn, None)
                    _cut(conn)

    @contextlib.asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        # Outside a web app's lifespan (a script, a test): a connection of its own, closed after use, since an
        # asyncio pool belongs to the one event loop that opened it.
        async with await psycopg.AsyncConnection.connect(self.conninfo, **connection_kwargs()) as conn:
            yield conn

    async def arows(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        # One retry: a pooled connection the server dropped (a restart, a blip) fails its first use; the pool
        # replaces it, and a read is safe to repeat.
        for attempt in (1, 2):
            started = time.monotonic()
            try:
                with _faults():
                    pool = self.apool
                    async with pool.connection() if pool is not None else self._own_connection() as conn:
                        self._deadlines[conn] = started + READ_TIMEOUT_S
                        try:
                            cursor = await conn.execute(statement, params)
                            return await cursor.fetchall()
                        finally:
                            self._deadlines.pop(conn, None)
            except DatabaseUnavailable as error:
                stale = time.monotonic() - started < STALE_CONNECTION_S
                if attempt == 2 or not stale or isinstance(error.__cause__, PoolTimeout):
                    raise
        raise AssertionError("unreachable")

    async def aview(self, task_id: str, owner_id: str) -> TaskView | None:
        """The status poll, the most frequent read of all: concurrent polls share round trips (SharedReads)."""
        if self.apool is None:
            return await super().aview(task_id, owner_id)
        return await self._polls.read((task_id, owner_id))

    async def _views(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], TaskView]:
        rows = await self.arows(self.sql["view_many"], {"ids": [task_id for task_id, _ in keys]})
        return {(row[1], row[0]): TaskView._make(row[1:]) for row in rows}

    async def alist(self, query: ListQuery) -> list[TaskView]:
        """The first page of a type's history or of its unfinished tasks (recovery) shares round trips like
        polls; a later page, or a list of finished statuses, is read on its own."""
        if self.apool is None or not _is_first_page_of_a_type(query):
            return await super().alist(query)
        return await self._first_pages.read(query) or []

    async def _first_pages_of_types(self, queries: list[ListQuery]) -> dict[ListQuery, list[TaskView]]:
        found: dict[ListQuery, list[TaskView]] = {}
        shapes: dict[tuple[tuple[TaskStatus, ...], int], list[ListQuery]] = {}
        for query in queries:
            shapes.setdefault((query.statuses, query.limit), []).append(query)
        for (statuses, limit), alike in shapes.items():
            params: dict[str, Any] = {"owners": [query.owner_id for query in alike],
                                      "types": [str(query.type) for query in alike], "limit": limit + 1}
            if statuses:
                params["statuses"] = [status.value for status in statuses]
            rows = await self.arows(self.sql["list_unfinished_many" if statuses else "list_of_type_many"], params)
            by_key = {(query.owner_id, str(query.type)): query for query in alike}
            for row in rows:
                found.setdefault(by_key[(row[0], row[1])], []).append(TaskView._make(row[2:]))
        return found

    # ---- events ---------------------------------------------------------------------------------------------

    def notify(self, event: str) -> None:
        self.rows("notify", {"event": event}, write=True)

    def listen(self, on_event: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        while not stopped():
            try:
                with psycopg.connect(self.conninfo, **connection_kwargs()) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # A wake-up in case a notification was missed while reconnecting.
                    on_event(EVENT_ACCEPTED)
                    while not stopped():
                        for notification in conn.notifies(timeout=1.0):
                            on_event(notification.payload)
                        # Proves the connection is alive; a dead one raises here and is reopened.
                        with watchdog().deadline(conn, STATEMENT_TIMEOUT_S):
                            conn.execute("SELECT 1")
            except Exception as error:
                log.warning("LISTEN connection lost (%s); polling until it is back", type(error).__name__)
                deadline = time.monotonic() + 2.0
                while not stopped() and time.monotonic() < deadline:
                    time.sleep(0.1)

    def close(self) -> None:
        self.pool.close()
