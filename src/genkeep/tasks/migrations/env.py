"""Alembic environment: genkeep passes its connection in; `alembic` on the command line uses the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from genkeep.tasks.schema import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from genkeep.config import Settings
    from genkeep.tasks.database import normalize_url

    engine = create_engine(normalize_url(Settings.from_env().resolved_database_url))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
