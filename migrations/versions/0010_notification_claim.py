"""notification claim: who is sending a row, until when, and whether its request has left

Revision ID: 0010
Revises: 0009

The delivery lease used to push ``next_attempt_at`` (the domain clock, which a drill pins) and
could not tell a row whose request had left from one never tried. A deliverer now claims rows
by name on the real clock and marks each row just before its request leaves; a row left
"leaving" by a dead deliverer becomes 结果不明 (unconfirmed) instead of being sent again.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.db

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("claim_expires", models.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("send_started_at", models.db.UTCDateTime(), nullable=True))
    op.create_index("ix_notification_claimed_by", "notification", ["claimed_by"])


def downgrade() -> None:
    op.drop_index("ix_notification_claimed_by", "notification")
    with op.batch_alter_table("notification") as batch:
        batch.drop_column("send_started_at")
        batch.drop_column("claim_expires")
        batch.drop_column("claimed_by")
