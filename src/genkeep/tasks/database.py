"""The task database's URL and its migrations: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
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
