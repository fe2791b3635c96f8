"""The migrations build exactly the schema the code declares, on both databases, and can run concurrently."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from genkeep.tasks import database
from genkeep.tasks.schema import metadata
from tests.support.database import connect as connect_database


def test_migrations_match_the_declared_schema(database_url: str, tmp_path: Path) -> None:
    database.upgrade(database_url, tmp_path)
    engine = connect_database(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_several_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'genkeep.db'}"
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            database.upgrade(url, tmp_path)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
