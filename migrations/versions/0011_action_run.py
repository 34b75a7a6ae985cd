"""action_run: the operator action each Prefect flow run applied (at most one)

Revision ID: 0011
Revises: 0010

A flow run that the system starts again after its worker died keeps its flow-run id and
parameters. The action it applied before the crash is recorded here (the case, its audit
event's seq, the notices it issued), so the second attempt replays that outcome instead of
applying the action twice. Sweep escalations and automatic proposals (actor "system") are
not recorded: they take many steps per run.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import models.db

revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "action_run",
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("notice_ids", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                  nullable=False),
        sa.Column("recorded_at", models.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ),
        sa.PrimaryKeyConstraint("flow_run_id"),
    )
    op.create_index("ix_action_run_case_id", "action_run", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_action_run_case_id", "action_run")
    op.drop_table("action_run")
