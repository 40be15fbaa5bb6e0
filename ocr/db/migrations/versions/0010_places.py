"""Records of schema 5: where a result belongs (issue 20): each submission's TPS identity (desa code, TPS number,
election) in columns of its own, and the region registry (`ocr/db/regions.py`), filled on first use.

Submissions saved before keep NULL there: they have no place, and the dashboard names their region as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("regions",
                    sa.Column("code", sa.String(10), nullable=False),
                    sa.Column("name", sa.Text(), nullable=False),
                    sa.Column("level", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("code", name="pk_regions"))
    op.create_index("ix_regions_level", "regions", ["level"])
    with op.batch_alter_table("submissions") as table:
        table.add_column(sa.Column("desa", sa.String(10), nullable=True))
        table.add_column(sa.Column("tps", sa.Integer(), nullable=True))
        table.add_column(sa.Column("election", sa.String(16), nullable=True))
        table.create_index("ix_submissions_desa", ["desa"])
        table.create_index("ix_submissions_election", ["election"])


def downgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.drop_index("ix_submissions_election")
        table.drop_index("ix_submissions_desa")
        table.drop_column("election")
        table.drop_column("tps")
        table.drop_column("desa")
    op.drop_table("regions")
