"""Connecting to the task database and migrating it: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary but fixed: every genkeep process takes this advisory lock while it migrates PostgreSQL.
MIGRATION_LOCK_ID = 7_412_305_118


def normalize_url(url: str) -> str:
    """Plain postgresql:// URLs use psycopg 3, the driver genkeep ships with."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets status polls read while a worker writes; the busy timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def connect(url: str, *, pool_size: int = 8) -> Engine:
    """A SQLAlchemy engine for the task database, tuned for its backend."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 4,
            connect_args={"check_same_thread": False, "timeout": 10},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Autocommit at the driver level: genkeep's writes are single statements or explicit transactions.
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 4, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


@contextmanager
def _migration_lock(url: str, lock_dir: Path) -> Iterator[None]:
    """One process migrates at a time: several may start together (serve, workers)."""
    if is_sqlite(url):
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / "migrate.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    else:
        yield


def upgrade(url: str, lock_dir: Path) -> None:
    """Apply every migration not yet applied."""
    url = normalize_url(url)
    cfg = alembic_config(url)
    with _migration_lock(url, lock_dir):
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                if not is_sqlite(url):
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()
