"""case event count

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 07:29:51.935924
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text

import models.db



revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # no table rebuild on SQLite: add with a server default, then count existing events
    op.add_column("case", sa.Column("event_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute('UPDATE "case" SET event_count = '
               '(SELECT count(*) FROM audit_event WHERE audit_event.case_id = "case".id)')


def downgrade() -> None:
    op.drop_column("case", "event_count")
