"""Database faults the test injects from outside the processes."""

from __future__ import annotations

import threading

import psycopg

TERMINATE = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = %s AND pid <> pg_backend_pid()")


class BackendTerminator:
    """Terminates every connection to one database every `every` seconds, from an administrator connection to
    another database (so it never terminates itself), until stopped."""

    def __init__(self, admin_url: str, database: str, every: float = 0.05) -> None:
        self.admin_url = admin_url
        self.database = database
        self.every = every
        self.terminated = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backend-terminator", daemon=True)

    def __enter__(self) -> BackendTerminator:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            while not self._stop.wait(self.every):
                row = conn.execute(TERMINATE, (self.database,)).fetchone()
                self.terminated += int(row[0]) if row else 0
                self.rounds += 1
