"""case dedupe key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:55:11.804289
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text

import models.db



revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # add_column + a unique index: no table rebuild on SQLite
    op.add_column("case", sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_index("ix_case_dedupe_key", "case", ["dedupe_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_case_dedupe_key", table_name="case")
    op.drop_column("case", "dedupe_key")
