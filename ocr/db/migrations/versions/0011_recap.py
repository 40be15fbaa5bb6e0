"""Recapitulation (issue 20): how many TPS each kelurahan/desa has (an imported list: the registry has no TPS
counts), and indexes that let a recap find each TPS's newest read and sum its values without reading the tables.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("tps_counts",
                    sa.Column("desa", sa.String(10), nullable=False),
                    sa.Column("count", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("desa", name="pk_tps_counts"))
    op.create_index("ix_submissions_place", "submissions", ["election", "desa", "tps", "id"])
    op.create_index("ix_fields_recap", "fields", ["submission_id", "field_id", "value"])


def downgrade() -> None:
    op.drop_index("ix_fields_recap", "fields")
    op.drop_index("ix_submissions_place", "submissions")
    op.drop_table("tps_counts")
