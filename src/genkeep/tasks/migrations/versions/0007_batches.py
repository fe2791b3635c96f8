"""Batches and waiting in line: a task's batch, and when it began processing (its timeout counts from there).

A catalog dropped at once becomes one task per photo, grouped by the owner's batch id; the photos beyond what the
owner may have processing wait in line as `pending`, and their timeout starts when their turn comes. Claiming and
the sweeper now look at `processing_since` rather than `created_at`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNFINISHED_SQL = "status IN ('pending', 'processing')"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("batch", sa.String(64), nullable=True))
    op.add_column("tasks", sa.Column("processing_since", sa.BigInteger, nullable=True))
    op.execute("UPDATE tasks SET processing_since = created_at WHERE status <> 'pending'")
    op.drop_index("ix_tasks_unfinished_created", "tasks")
    op.create_index("ix_tasks_unfinished_since", "tasks", ["processing_since"],
                    sqlite_where=sa.text(UNFINISHED_SQL), postgresql_where=sa.text(UNFINISHED_SQL))
    op.create_index("ix_tasks_owner_batch", "tasks", ["owner_id", "batch", "created_at", "id"],
                    sqlite_where=sa.text("batch IS NOT NULL"), postgresql_where=sa.text("batch IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_batch", "tasks")
    op.drop_index("ix_tasks_unfinished_since", "tasks")
    op.create_index("ix_tasks_unfinished_created", "tasks", ["created_at"],
                    sqlite_where=sa.text(UNFINISHED_SQL), postgresql_where=sa.text(UNFINISHED_SQL))
    # Waiting tasks would have no timeout without their own clock: they start it now, as they were.
    op.execute("UPDATE tasks SET status = 'processing' WHERE status = 'pending'")
    op.drop_column("tasks", "processing_since")
    op.drop_column("tasks", "batch")
