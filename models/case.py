"""Cases and their obligations: the rows every process shares.

A case is one instance of a process (incident, rectification, accountability,
assessment). An obligation is a deadline someone must meet; the sweep finds the ones
whose ``next_action_at`` has come (indexed, so its cost follows what is due).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlalchemy.orm import declared_attr
from sqlmodel import Field, Session, SQLModel

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
        """Take a ``tasks.deadlines.Deadline``: due time, flag, and (while the flag is set)
        how it was computed, so that loading the year's calendar can compute it again."""
        self.due_at, self.calendar_unconfirmed = deadline.due_at, deadline.calendar_unconfirmed
        self.data = {**{k: v for k, v in (self.data or {}).items() if k != "basis"}, **deadline.obligation_data()}


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
    from models import batch

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
    from models import batch

    batch.watch_versioned((Case, Obligation))  # a sweep batch writes these in bulk


_watch_batches()
