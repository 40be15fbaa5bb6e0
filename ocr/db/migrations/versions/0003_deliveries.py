"""Cluster: deliveries of each submission's task that have not finished, to stop a poison photo (ocr/run/cluster.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("photos_key", sa.String(64), nullable=False),
        sa.Column("retry", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("photos_key", "retry", name="pk_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
