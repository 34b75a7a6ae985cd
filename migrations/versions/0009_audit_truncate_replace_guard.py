"""audit guard: refuse TRUNCATE (PostgreSQL), INSERT OR REPLACE (SQLite), moving the head back

Revision ID: 0009
Revises: 0008

The row-level trigger of 0001 refuses UPDATE and DELETE of ``audit_event``, but PostgreSQL
does not fire row triggers on TRUNCATE, and SQLite's INSERT OR REPLACE deletes the row it
conflicts with without firing delete triggers. ``audit_head`` had no guard at all: deleted,
truncated or set back, the chain would restart at genesis or lose its tail. Now the head can
only move forward. Databases made before this revision get the missing triggers here (new
ones already have them from 0001, which installs ``models.audit.TRIGGERS``; every statement
below is idempotent).
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# as models.audit.TRIGGERS (a migration keeps its own copy)
_SQLITE_REFUSE = "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
UPGRADE = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_replace BEFORE INSERT ON audit_event "
        "WHEN EXISTS (SELECT 1 FROM audit_event WHERE id = NEW.id) "
        "OR EXISTS (SELECT 1 FROM audit_event WHERE case_id = NEW.case_id AND seq = NEW.seq) " + _SQLITE_REFUSE,
        "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head "
        "BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NEW.id != OLD.id OR NEW.last_id < OLD.last_id "
        "OR (NEW.last_id = OLD.last_id AND NEW.last_hash != OLD.last_hash) "
        "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END",
        # REPLACE INTO audit_head deletes the row without firing the delete trigger; the
        # append's own INSERT … ON CONFLICT DO NOTHING meets this trigger too, hence IGNORE
        "CREATE TRIGGER IF NOT EXISTS audit_head_no_replace BEFORE INSERT ON audit_head "
        "WHEN EXISTS (SELECT 1 FROM audit_head WHERE id = NEW.id) BEGIN SELECT RAISE(IGNORE); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
        "CREATE OR REPLACE FUNCTION audit_head_keep() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_head cannot be deleted'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head",
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_keep()",
        "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head",
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_keep()",
        "CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger AS $$ "
        "BEGIN IF NEW.id <> OLD.id OR NEW.last_id < OLD.last_id "
        "OR (NEW.last_id = OLD.last_id AND NEW.last_hash <> OLD.last_hash) THEN "
        "RAISE EXCEPTION 'audit_head only moves forward'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()",
    ],
}
DOWNGRADE = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_event_no_replace", "DROP TRIGGER IF EXISTS audit_head_no_delete",
               "DROP TRIGGER IF EXISTS audit_head_forward_only", "DROP TRIGGER IF EXISTS audit_head_no_replace"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
        "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head",
        "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head",
        "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
        "DROP FUNCTION IF EXISTS audit_head_keep()",
        "DROP FUNCTION IF EXISTS audit_head_forward_only()",
    ],
}


def upgrade() -> None:
    for stmt in UPGRADE.get(op.get_bind().dialect.name, []):
        op.execute(stmt)


def downgrade() -> None:
    for stmt in DOWNGRADE.get(op.get_bind().dialect.name, []):
        op.execute(stmt)
