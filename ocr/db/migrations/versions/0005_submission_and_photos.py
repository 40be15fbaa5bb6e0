"""One row per submission (name + photos), as in the JSONL: identical photos under two names are two rows.

Submissions are unique by (submission, photos_key) instead of photos_key alone, which keeps an index (the review
app looks uploads up by it). The cluster's delivery counts are per submission too; the counts of tasks in flight
while upgrading are dropped (a crash count starts again: at most two more deliveries of a poison photo).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.drop_constraint("uq_submissions_photos_key", type_="unique")
        table.create_unique_constraint("uq_submissions_submission_photos_key", ["submission", "photos_key"])
        table.create_index("ix_submissions_photos_key", ["photos_key"])
    op.drop_table("deliveries")
    _deliveries(per_submission=True)


def downgrade() -> None:
    # Fails while two submissions share their photos: which of them to keep is a person's call.
    with op.batch_alter_table("submissions") as table:
        table.drop_index("ix_submissions_photos_key")
        table.drop_constraint("uq_submissions_submission_photos_key", type_="unique")
        table.create_unique_constraint("uq_submissions_photos_key", ["photos_key"])
    op.drop_table("deliveries")
    _deliveries(per_submission=False)


def _deliveries(per_submission: bool) -> None:
    submission = ["submission"] if per_submission else []
    op.create_table(
        "deliveries",
        *[sa.Column(name, sa.Text(), nullable=False) for name in submission],
        sa.Column("photos_key", sa.String(64), nullable=False),
        sa.Column("retry", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*submission, "photos_key", "retry", name="pk_deliveries"),
    )
