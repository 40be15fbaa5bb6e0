"""Finding any TPS (issue 19): indexes for the filters of the queue, the list of submissions and the audit log
(ocr/review/search.py): when a submission was read, who verified or corrected it, when and by whom an action was
logged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (("submissions", "created_at"), ("reviews", "verified_by"), ("corrections", "user_id"),
           ("audit_log", "at"), ("audit_log", "user_id"))


def upgrade() -> None:
    for table, column in INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in INDEXES:
        op.drop_index(f"ix_{table}_{column}", table)
