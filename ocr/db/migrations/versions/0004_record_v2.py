"""Records of schema 2: the record's schema and reader versions, and each read page's geometry (ocr/record.py).

Rows saved before keep NULL there and load as records of schema 1 (no geometry).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.add_column(sa.Column("schema_version", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("reader_version", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("pages") as table:
        table.add_column(sa.Column("geometry", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages") as table:
        table.drop_column("geometry")
    with op.batch_alter_table("submissions") as table:
        table.drop_column("reader_version")
        table.drop_column("schema_version")
