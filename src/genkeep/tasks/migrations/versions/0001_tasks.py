"""The tasks table.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UNFINISHED_SQL = "status IN ('pending', 'processing')"


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("reference_images", sa.Text, nullable=False, server_default="[]"),
        sa.Column("result_name", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("engine", sa.String(64), nullable=True),
        sa.Column("provider_job_id", sa.String(256), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_owner_idempotency_key"),
    )
    op.create_index("ix_tasks_owner_type_status_created", "tasks",
                    ["owner_id", "type", "status", "created_at", "id"])
    op.create_index("ix_tasks_owner_type_created", "tasks", ["owner_id", "type", "created_at", "id"])
    op.create_index("ix_tasks_owner_status_created", "tasks", ["owner_id", "status", "created_at"])
    op.create_index("ix_tasks_unfinished_created", "tasks", ["created_at"],
                    sqlite_where=sa.text(UNFINISHED_SQL), postgresql_where=sa.text(UNFINISHED_SQL))


def downgrade() -> None:
    op.drop_table("tasks")
