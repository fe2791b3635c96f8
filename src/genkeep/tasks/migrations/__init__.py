"""Alembic migrations of the task store, applied on start."""
