"""Result notes: what the engine said about a result besides the picture (a product cut by the photo's edge).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("notes", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "notes")
