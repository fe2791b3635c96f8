"""Leaner indexes: status leaves the full indexes; claiming gets a lease index; unclaimed leases are 0.

Finishing or sweeping a task used to rewrite four indexes that carry status; now only small partial indexes over
unfinished tasks change. Claiming scanned every held lease; it is now one range scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNFINISHED_SQL = "status IN ('pending', 'processing')"


def upgrade() -> None:
    op.drop_index("ix_tasks_owner_type_status_created", "tasks")
    op.drop_index("ix_tasks_owner_status_created", "tasks")
    op.create_index("ix_tasks_owner_created", "tasks", ["owner_id", "created_at", "id"])
    op.execute(f"UPDATE tasks SET lease_expires_at = 0 WHERE {UNFINISHED_SQL} AND lease_expires_at IS NULL")
    op.create_index("ix_tasks_unfinished_lease", "tasks", ["lease_expires_at", "created_at"],
                    sqlite_where=sa.text(UNFINISHED_SQL), postgresql_where=sa.text(UNFINISHED_SQL))


def downgrade() -> None:
    op.drop_index("ix_tasks_unfinished_lease", "tasks")
    op.execute(f"UPDATE tasks SET lease_expires_at = NULL WHERE {UNFINISHED_SQL} AND lease_expires_at = 0")
    op.drop_index("ix_tasks_owner_created", "tasks")
    op.create_index("ix_tasks_owner_status_created", "tasks", ["owner_id", "status", "created_at"])
    op.create_index("ix_tasks_owner_type_status_created", "tasks",
                    ["owner_id", "type", "status", "created_at", "id"])
