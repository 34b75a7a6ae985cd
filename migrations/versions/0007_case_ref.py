"""case_ref: what a case refers to (problem code, case ids its text names), indexed

Revision ID: 0007
Revises: 0006

Tracing (same facts, same risk) and recurrence looked rectifications up by a JSON field or
by a case id inside their free text, scanning every rectification of a unit. The refs make
each lookup one index range. Existing rectifications get their refs here.
"""
import re
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# as models.case.CASE_ID_IN_TEXT / rectification_refs (a migration keeps its own copy)
_CASE_ID = re.compile(r"(?<![A-Za-z0-9])(?:INC|RECT|ACC|ASM|ACT)-\d{4}-\d{4,}(?!\d)")


def _refs(data: dict) -> set:
    code = (data.get("problem_code") or "").strip()
    text = " ".join(str(data.get(k) or "") for k in ("source", "problem_code", "problem"))
    return ({f"code:{code}"} if code else set()) | {f"case:{m}" for m in _CASE_ID.findall(text)}


def upgrade() -> None:
    ref = op.create_table(
        'case_ref',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_case_ref_ref', 'case_ref', ['ref', 'case_id'], unique=False)
    case = sa.table('case', sa.column('id', sa.String), sa.column('kind', sa.String), sa.column('data', sa.JSON))
    conn = op.get_bind()
    rows = []
    for case_id, data in conn.execute(sa.select(case.c.id, case.c.data).where(case.c.kind == 'rectification')):
        rows += [{"case_id": case_id, "ref": r} for r in sorted(_refs(data or {}))]
        if len(rows) >= 10_000:
            conn.execute(ref.insert(), rows)
            rows = []
    if rows:
        conn.execute(ref.insert(), rows)


def downgrade() -> None:
    op.drop_index('ix_case_ref_ref', table_name='case_ref')
    op.drop_table('case_ref')
