"""Task backends: one per database behind one interface, chosen from the URL.

The task manager is their only caller. A backend owns its connections (pool, timeouts, health), its dialect and
its event channel; every statement it runs is named once in `queries.sql`. Nothing outside this package knows
which database is underneath.
"""

from __future__ import annotations

from genkeep.tasks.backends.base import (
    CapReached,
    DuplicateIdempotencyKey,
    ListQuery,
    TaskBackend,
)


def open_backend(url: str, *, pool_size: int = 8) -> TaskBackend:
    """The backend for a database URL: sqlite:///… (the default, one machine) or postgresql://… (many)."""
    from genkeep.tasks.database import is_sqlite, normalize_url

    url = normalize_url(url)
    if url.startswith("memory:"):
        from genkeep.tasks.backends.memory import MemoryBackend

        return MemoryBackend()
    if is_sqlite(url):
        from genkeep.tasks.backends.sqlite import SqliteBackend

        return SqliteBackend(url)
    from genkeep.tasks.backends.postgres import PostgresBackend

    return PostgresBackend(url, pool_size=pool_size)


__all__ = ["CapReached", "DuplicateIdempotencyKey", "ListQuery", "TaskBackend", "open_backend"]
