"""notice bodies compressed with lz4 on PostgreSQL

Revision ID: 0005
Revises: 0004

A notice keeps its rendered HTML and text (10–20 KB each). PostgreSQL's default TOAST
compression (pglz) made inserting them the costliest statement of a sweep batch; lz4
(PostgreSQL 14+, when the server was built with it) compresses about three times faster.
Other databases, and servers without lz4, keep their default.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = ("html", "text")


def _lz4_available(conn) -> bool:
    if conn.dialect.name != "postgresql" or conn.dialect.server_version_info < (14,):
        return False
    return "lz4" in (conn.execute(sa.text(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar() or [])


def upgrade() -> None:
    conn = op.get_bind()
    if _lz4_available(conn):
        for col in COLUMNS:
            op.execute(f"ALTER TABLE notice ALTER COLUMN {col} SET COMPRESSION lz4")


def downgrade() -> None:
    conn = op.get_bind()
    if _lz4_available(conn):
        for col in COLUMNS:
            op.execute(f"ALTER TABLE notice ALTER COLUMN {col} SET COMPRESSION default")
