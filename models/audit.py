"""Append-only audit log with a SHA-256 hash chain.

Each ``audit_event`` holds the hash of the previous one. ``audit_head`` (one row) keeps
the last id and hash; appending locks it, so events get gapless ids in commit order even
with several writers. A DB trigger refuses UPDATE and DELETE; ``verify`` detects any
edited, deleted or inserted row.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, event, text
from sqlmodel import Field, Session, SQLModel, select

from models import batch
from models.case import _dt
from models.clock import iso
from models.db import JSONDict

GENESIS = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_case_seq", "case_id", "seq", unique=True),)
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    case_id: str = Field(foreign_key="case.id")
    seq: int  # per case, from 1
    type: str
    from_state: str | None = None
    to_state: str | None = None
    actor: str
    effective_at: datetime = _dt(nullable=False)
    recorded_at: datetime = _dt(nullable=False)
    flow_run_id: str | None = None
    payload: dict = Field(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    last_id: int = 0
    last_hash: str = GENESIS


_HASHED = ("id", "case_id", "seq", "type", "from_state", "to_state", "actor", "effective_at",
           "recorded_at", "flow_run_id", "payload", "prev_hash")


def _digest(ev: AuditEvent | dict) -> str:
    """SHA-256 of an event (a stored row, or the dict of one being appended)."""
    get = ev.get if isinstance(ev, dict) else ev.__getattribute__
    body = {k: get(k) for k in _HASHED}
    body["effective_at"], body["recorded_at"] = iso(body["effective_at"]), iso(body["recorded_at"])
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _lock_head(s: Session) -> AuditHead:
    """The chain head, locked for the rest of the transaction (once per transaction)."""
    head = s.info.get("audit_head")
    if head is not None and head in s:
        return head
    s.execute(
        text("INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, :g) ON CONFLICT (id) DO NOTHING"),
        {"g": GENESIS},
    )
    head = s.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()
                  .execution_options(populate_existing=True)).one()
    s.info["audit_head"] = head
    return head


def append(s: Session, *, case_id: str, type: str, from_state: str | None, to_state: str | None,
           actor: str, effective_at: datetime, recorded_at: datetime,
           payload: dict[str, Any] | None = None, flow_run_id: str | None = None,
           seq: int | None = None) -> int:
    """Append one event inside the caller's transaction (``seq``: the case's next event
    number, looked up when not given). Returns the event's ``seq``."""
    head = _lock_head(s)
    if seq is None:
        seq = (s.exec(
            select(AuditEvent.seq).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq.desc()).limit(1)
        ).first() or 0) + 1
    ev = dict(
        id=head.last_id + 1, case_id=case_id, seq=seq, type=type, from_state=from_state,
        to_state=to_state, actor=actor, effective_at=effective_at, recorded_at=recorded_at,
        flow_run_id=flow_run_id, payload=json.loads(json.dumps(payload or {}, default=str)),
        prev_hash=head.last_hash,
    )
    ev["hash"] = _digest(ev)
    head.last_id, head.last_hash = ev["id"], ev["hash"]
    s.add(head)
    if not batch.defer(s, AuditEvent.__table__, [ev]):  # a sweep batch inserts them in bulk
        s.add(AuditEvent(**ev))
    return seq


def verify(s: Session) -> tuple[bool, str]:
    """Recompute the chain. Returns (ok, message naming the first bad event)."""
    prev, expected_id, count = GENESIS, 1, 0
    for ev in s.exec(select(AuditEvent).order_by(AuditEvent.id)).yield_per(2000):
        if ev.id != expected_id:
            return False, f"事件 {expected_id} 缺失（下一条为 {ev.id}）：审计链被删改"
        if ev.prev_hash != prev:
            return False, f"事件 {ev.id}（案件 {ev.case_id} 第 {ev.seq} 条）的前序哈希不符：审计链被删改"
        if _digest(ev) != ev.hash:
            return False, f"事件 {ev.id}（案件 {ev.case_id} 第 {ev.seq} 条，{ev.type}）的内容与哈希不符：已被修改"
        prev, expected_id, count = ev.hash, ev.id + 1, count + 1
    head = s.get(AuditHead, 1)
    if head is not None and (head.last_id != count or head.last_hash != prev):
        return False, f"审计链末端不符：记录 {head.last_id} 条，实有 {count} 条（末尾事件被删除或插入）"
    return True, f"审计链完整：{count} 条事件"


# ---------------------------------------------------------------- append-only guard

TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event",
        "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    ],
}


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session, _ctx, _instances):
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("audit_event is append-only")
