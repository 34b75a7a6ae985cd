"""the sweep's due index covers its keyset: (next_action_at, id)

Revision ID: 0006
Revises: 0005

The sweep pages through due obligations by (next_action_at, id). With an index on
next_action_at alone, each later batch re-read the due range from its start and sorted
it; the composite index answers each batch from where the last one stopped, and replaces
the single-column one (one index to maintain on every step, not two).
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.create_index('ix_obligation_next_action', ['next_action_at', 'id'], unique=False)
        batch_op.drop_index('ix_obligation_next_action_at')


def downgrade() -> None:
    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.create_index('ix_obligation_next_action_at', ['next_action_at'], unique=False)
        batch_op.drop_index('ix_obligation_next_action')
