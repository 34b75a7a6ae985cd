"""account: login accounts of registry persons (Argon2id hashes, failures, lock-out)

Revision ID: 0012
Revises: 0011

The served UI and API require login by default (issue 18): an account belongs to one person
of the registry; its password is stored only as an Argon2id hash; repeated failures lock it
for a while; a disabled account cannot log in.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.db

revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("person", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", models.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", models.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", models.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person"], ["person.id"], ),
        sa.PrimaryKeyConstraint("person"),
    )


def downgrade() -> None:
    op.drop_table("account")
