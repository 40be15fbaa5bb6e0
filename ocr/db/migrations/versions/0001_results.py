"""Results: submissions, their pages and their fields (ocr/db/store.py).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photos_key", sa.String(64), nullable=False),
        sa.Column("submission", sa.Text(), nullable=False),
        sa.Column("template", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_submissions"),
        sa.UniqueConstraint("photos_key", name="uq_submissions_photos_key"),
    )
    op.create_index("ix_submissions_status", "submissions", ["status"])

    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("quality", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pages"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], name="fk_pages_submission_id_submissions",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_pages_submission_id", "pages", ["submission_id"])
    op.create_index("ix_pages_sha256", "pages", ["sha256"])

    op.create_table(
        "fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("field_id", sa.String(100), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("read_value", sa.Integer(), nullable=True),
        sa.Column("digits", sa.JSON(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fields"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], name="fk_fields_submission_id_submissions",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("submission_id", "field_id", name="uq_fields_submission_id_field_id"),
    )
    op.create_index("ix_fields_status", "fields", ["status"])


def downgrade() -> None:
    op.drop_table("fields")
    op.drop_table("pages")
    op.drop_table("submissions")
