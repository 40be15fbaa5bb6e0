"""More than one source per TPS (issue 21): numbers imported from outside (`external_sources`) and reviewers'
choices of a TPS's result among its sources (`source_choices`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("external_sources",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("source", sa.String(100), nullable=False),
                    sa.Column("tps_key", sa.Text(), nullable=False),
                    sa.Column("template", sa.String(100), nullable=False),
                    sa.Column("values", sa.JSON(), nullable=False),
                    sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                              nullable=False),
                    sa.PrimaryKeyConstraint("id", name="pk_external_sources"),
                    sa.UniqueConstraint("source", "tps_key", name="uq_external_sources_source_tps_key"))
    op.create_index("ix_external_sources_tps_key", "external_sources", ["tps_key"])
    op.create_table("source_choices",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("tps_key", sa.Text(), nullable=False),
                    sa.Column("chosen", sa.String(40), nullable=False),
                    sa.Column("reason", sa.Text(), nullable=False),
                    sa.Column("user_id", sa.Integer(), nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                              nullable=False),
                    sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_source_choices_user_id_users"),
                    sa.PrimaryKeyConstraint("id", name="pk_source_choices"))
    op.create_index("ix_source_choices_tps_key", "source_choices", ["tps_key"])


def downgrade() -> None:
    op.drop_table("source_choices")
    op.drop_table("external_sources")
