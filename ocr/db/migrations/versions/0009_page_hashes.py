"""Records of schema 4: each page's perceptual hash (PageResult.photo_hash, ocr/reader/page_hash.py) in the pages table.

Pages saved before keep NULL there and load with no hash, as pages that were not aligned; `formc integrity` passes
them by.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pages") as table:
        table.add_column(sa.Column("photo_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages") as table:
        table.drop_column("photo_hash")
