"""Cases and their obligations: the rows every process shares.

A case is one instance of a process (incident, rectification, accountability,
assessment). An obligation is a deadline someone must meet; the sweep finds the ones
whose ``next_action_at`` has come (indexed, so its cost follows what is due).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlalchemy.orm import declared_attr
from sqlmodel import Field, Session, SQLModel, select

from models import batch
from models.db import JSONDict, JSONList, UTCDateTime


def _dt(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Case(SQLModel, table=True):
    __tablename__ = "case"
    __table_args__ = (Index("ix_case_kind_state", "kind", "state"),)
    id: str = Field(primary_key=True)
    kind: str
    state: str
    unit: str = Field(foreign_key="org_unit.code", index=True)
    title: str = ""
    classified: bool = False
    proposed_from: str | None = Field(default=None, foreign_key="case.id")
    # "once per source and reason" keys, e.g. an accountability proposal per (source case,
    # circumstance): unique, so whichever flow or sweep notices it first creates it.
    dedupe_key: str | None = Field(default=None, unique=True, index=True)
    data: dict = Field(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    warnings: list = Field(default_factory=list, sa_column=Column(JSONList, nullable=False))
    created_at: datetime = _dt(nullable=False)
    updated_at: datetime = _dt(nullable=False)
    event_count: int = 0  # audit events of this case (the next event's seq - 1)
    version_id: int = Field(default=1)

    @declared_attr
    def __mapper_args__(cls):  # optimistic locking (LIBRARIES.md: the string form fails)
        return {"version_id_col": cls.__table__.c.version_id}


#: A case id as operators write it in free text (``INC-2026-0001事件``: CJK text around it,
#: so no \b, which counts 汉字 as word characters).
CASE_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])(?:INC|RECT|ACC|ASM|ACT)-\d{4}-\d{4,}(?!\d)")


class CaseRef(SQLModel, table=True):
    """What a case refers to, for lookups that would otherwise scan free text and JSON:
    ``code:<problem code>`` (same problem), ``case:<case id>`` (a case its text names).
    Indexed by ref: "the rectifications on this problem / naming this case" is one index
    range, however many cases a unit has."""

    __tablename__ = "case_ref"
    __table_args__ = (Index("ix_case_ref_ref", "ref", "case_id"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="case.id")
    ref: str


def rectification_refs(data: dict) -> set[str]:
    """The refs of a rectification's data: its problem code and the case ids its source,
    problem code or problem name."""
    code = (data.get("problem_code") or "").strip()
    text = " ".join(str(data.get(k) or "") for k in ("source", "problem_code", "problem"))
    return ({f"code:{code}"} if code else set()) | {f"case:{m}" for m in CASE_ID_IN_TEXT.findall(text)}


def add_refs(s: Session, case_id: str, refs) -> None:
    for ref in sorted(set(refs)):
        s.add(CaseRef(case_id=case_id, ref=ref))


def cases_with_ref(s: Session, refs, *, kind: str, units, since: datetime, until: datetime | None = None) -> list["Case"]:
    """Cases of ``kind`` at ``units`` created in [since, until] that carry one of ``refs``."""
    refs = list(refs)
    if not refs:
        return []
    q = (select(Case).join(CaseRef, CaseRef.case_id == Case.id)
         .where(CaseRef.ref.in_(refs), Case.kind == kind, Case.unit.in_(list(units)), Case.created_at >= since))
    if until is not None:
        q = q.where(Case.created_at <= until)
    return list({c.id: c for c in s.exec(q.order_by(Case.created_at, Case.id)).all()}.values())


class ObligationStatus:
    open = "open"
    met = "met"
    missed = "missed"
    waived = "waived"


class Obligation(SQLModel, table=True):
    __tablename__ = "obligation"
    __table_args__ = (
        Index("ix_obligation_case_kind", "case_id", "kind"),
        # the sweep's due query: WHERE next_action_at <= now, keyset (next_action_at, id) > (…)
        Index("ix_obligation_next_action", "next_action_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="case.id")
    unit: str = Field(foreign_key="org_unit.code", index=True)
    kind: str
    role: str = ""  # who must act: a post role at ``unit`` (or "office", "issuer")
    status: str = ObligationStatus.open
    step: int = 0  # escalation ladder steps taken
    due_at: datetime = _dt(nullable=False)
    next_action_at: datetime | None = _dt()
    met_at: datetime | None = _dt()
    calendar_unconfirmed: bool = False
    data: dict = Field(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    version_id: int = Field(default=1)

    @declared_attr
    def __mapper_args__(cls):
        return {"version_id_col": cls.__table__.c.version_id}

    def set_deadline(self, deadline) -> None:
        """Take a ``models.deadlines.Deadline``: due time, flag, and (while the flag is set)
        how it was computed, so that loading the year's calendar can compute it again."""
        self.due_at, self.calendar_unconfirmed = deadline.due_at, deadline.calendar_unconfirmed
        self.data = {**{k: v for k, v in (self.data or {}).items() if k != "basis"}, **deadline.obligation_data()}


class ActionRun(SQLModel, table=True):
    """An operator action applied by one Prefect flow run: at most one per run. A run that is
    started again after a crash (same flow-run id, same parameters) finds its row and
    replays the recorded outcome (:func:`models.statemachine.transition`) instead of acting
    twice. ``seq``: the action's audit event on the case; ``notice_ids``: the notices it
    issued, in order."""

    __tablename__ = "action_run"
    flow_run_id: str = Field(primary_key=True)
    case_id: str = Field(foreign_key="case.id", index=True)
    seq: int
    action: str  # "<machine kind>.<action>"
    notice_ids: list = Field(default_factory=list, sa_column=Column(JSONList, nullable=False))
    recorded_at: datetime = _dt(nullable=False)


class Counter(SQLModel, table=True):
    """Gapless sequences (case ids, 发文字号): incremented inside the caller's transaction."""

    __tablename__ = "counter"
    __table_args__ = (UniqueConstraint("name", "year"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str
    year: int
    value: int = 0


def next_number(s: Session, name: str, year: int) -> int:
    """Next number of the (name, year) sequence; a rollback gives the number back.

    The increment locks the counter row until the transaction ends; inside a sweep batch
    (``models.batch``) later numbers are handed out from memory and written back once."""
    kept = batch.counters(s)
    if kept is not None and (name, year) in kept:
        kept[(name, year)] += 1
        return kept[(name, year)]
    value = s.execute(
        text("INSERT INTO counter (name, year, value) VALUES (:n, :y, 1) "
             "ON CONFLICT (name, year) DO UPDATE SET value = counter.value + 1 RETURNING value"),
        {"n": name, "y": year},
    ).scalar_one()
    if kept is not None:
        kept[(name, year)] = value
    return value


def _watch_batches() -> None:
    batch.watch_versioned((Case, Obligation))  # a sweep batch writes these in bulk


_watch_batches()
