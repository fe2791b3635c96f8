"""A partial index for recovery: an owner's unfinished tasks of a type, newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNFINISHED_SQL = "status IN ('pending', 'processing')"


def upgrade() -> None:
    op.create_index("ix_tasks_unfinished_owner_type_created", "tasks", ["owner_id", "type", "created_at", "id"],
                    sqlite_where=sa.text(UNFINISHED_SQL), postgresql_where=sa.text(UNFINISHED_SQL))


def downgrade() -> None:
    op.drop_index("ix_tasks_unfinished_owner_type_created", "tasks")
