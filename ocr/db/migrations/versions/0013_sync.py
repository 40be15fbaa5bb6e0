"""Offline offices, then sync (issue 21): the office keys the centre trusts (`sync_keys`), the bundles a database
wrote or imported (`sync_bundles`) and the ledger of office rows imported (`sync_ledger`), see ocr/review/sync.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("sync_keys",
                    sa.Column("office", sa.String(40), nullable=False),
                    sa.Column("public_key", sa.String(64), nullable=False),
                    sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
                    sa.PrimaryKeyConstraint("office", name="pk_sync_keys"))
    op.create_table("sync_bundles",
                    sa.Column("id", sa.String(36), nullable=False),
                    sa.Column("direction", sa.String(8), nullable=False),
                    sa.Column("origin", sa.String(40), nullable=False),
                    sa.Column("since", sa.DateTime(timezone=True), nullable=True),
                    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("submissions", sa.Integer(), nullable=False),
                    sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
                    sa.PrimaryKeyConstraint("id", "direction", name="pk_sync_bundles"))
    op.create_index("ix_sync_bundles_origin", "sync_bundles", ["origin"])
    op.create_table("sync_ledger",
                    sa.Column("origin", sa.String(40), nullable=False),
                    sa.Column("kind", sa.String(16), nullable=False),
                    sa.Column("ref", sa.String(64), nullable=False),
                    sa.Column("local_id", sa.Integer(), nullable=True),
                    sa.Column("digest", sa.String(64), nullable=True),
                    sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
                    sa.PrimaryKeyConstraint("origin", "kind", "ref", name="pk_sync_ledger"))


def downgrade() -> None:
    op.drop_table("sync_ledger")
    op.drop_table("sync_bundles")
    op.drop_table("sync_keys")
