"""Previews: the latest intermediate picture of an unfinished task, kept across a refresh.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("preview_name", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "preview_name")
