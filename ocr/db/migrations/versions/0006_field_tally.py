"""Records of schema 3: a row sum's tally marks (FieldResult.tally, ocr/record.py) in the fields table.

Fields saved before keep NULL there and load with no tally, as the fields that are not row sums.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fields") as table:
        table.add_column(sa.Column("tally", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fields") as table:
        table.drop_column("tally")
