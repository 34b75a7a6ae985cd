"""督办台账: open obligations, soonest first (``dutyflow ledger``, the sweep's artifact).

A row carries the obligation keys of ``dutyflow show`` (``case_id``, ``kind``, ``due_at``,
``status``, ``step``, ``calendar_unconfirmed``) and the ledger's own columns (unit name,
the deadline as people read it — its last day, ``due_text`` —, overdue by, responsible
persons resolved from today's posts).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from models.case import Case, Obligation, ObligationStatus
from models.clock import deadline_text, iso, local, now
from models.deadlines import overdue_by
from models.org import OrgUnit, Person, holders
from models.processes import obligation_label, step_label

#: Not yet fulfilled: open, or missed and still to do.
_PENDING = (Obligation.met_at.is_(None), Obligation.status.in_([ObligationStatus.open, ObligationStatus.missed]))


def overdue_text(due_at: datetime, at: datetime) -> str:
    return overdue_by(due_at, at) if at > due_at else ""


def ledger_rows(s: Session, *, unit: str | None = None, overdue: bool = False,
                at: datetime | None = None, limit: int | None = None) -> list[dict]:
    """Obligations not yet fulfilled (open, or missed and still to do), soonest first."""
    at = at or now()
    q = (
        select(Obligation, Case.title, OrgUnit.name)
        .join(Case, Case.id == Obligation.case_id)
        .join(OrgUnit, OrgUnit.code == Obligation.unit)
        .where(*_PENDING)
    )
    if unit:
        q = q.where(Obligation.unit == unit)
    if overdue:
        q = q.where(Obligation.due_at < at)
    q = q.order_by(Obligation.due_at, Obligation.id)
    if limit:
        q = q.limit(limit)
    on = local(at).date()
    names: dict[str, str] = {}
    rows = []
    for ob, title, unit_name in s.exec(q).all():
        people = [ob.data["person"]] if ob.data.get("person") else holders(s, ob.unit, ob.role, on) if ob.role else []
        for p in people:
            if p not in names:
                person = s.get(Person, p)
                names[p] = person.name if person else p
        due = iso(ob.due_at)
        rows.append({
            "unit": ob.unit, "unit_name": unit_name, "case": ob.case_id, "case_id": ob.case_id,
            "case_title": title, "obligation": ob.kind, "obligation_label": obligation_label(ob.kind),
            "kind": ob.kind, "status": ob.status,
            "due": due, "due_at": due, "due_text": f"{deadline_text(ob.due_at)}前",
            "overdue_by": overdue_text(ob.due_at, at), "step": ob.step, "step_label": step_label(ob.kind, ob.step),
            "responsible": [{"person": p, "name": names[p], "role": ob.role} for p in people]
            or [{"person": None, "name": "（空缺）", "role": ob.role}],
            "calendar_unconfirmed": ob.calendar_unconfirmed,
        })
    return rows


def overdue_counts(s: Session, at: datetime | None = None) -> Counter:
    """(unit name, obligation, ladder step) → number of overdue obligations, over all of them
    (one GROUP BY: the summary stays whole when the table artifact shows only the first rows).
    Obligation and step are Chinese labels: step 1 of 签收 (催签收) is not step 1 of 整改 (临期提醒)."""
    at = at or now()
    q = (
        select(OrgUnit.name, Obligation.kind, Obligation.step, func.count())
        .join(OrgUnit, OrgUnit.code == Obligation.unit)
        .where(*_PENDING, Obligation.due_at < at)
        .group_by(OrgUnit.name, Obligation.kind, Obligation.step)
    )
    return Counter({(name, obligation_label(kind), f"{step} {step_label(kind, step)}"): n
                    for name, kind, step, n in s.exec(q).all()})
