"""Deadlines computed again once their year's working-day calendar is loaded.

A deadline that reaches a year whose holidays are not yet announced is computed Monday–
Friday and flagged ``calendar_unconfirmed``; its obligation keeps how it was computed
(``data.basis``). ``dutyflow calendar load FILE`` then calls :func:`reconfirm_deadlines`:
every open obligation still flagged is computed again with the loaded calendar, in its own
transaction with an audit event ``<kind>_deadline_confirmed`` (old and new due time), the
flag cleared when the year is now known, a warning on the case when the due time moved, and
its next action brought forward to now so that the next sweep re-plans the ladder with the
process's own rules. Idempotent: nothing changes on a second call.
"""
from __future__ import annotations

from sqlmodel import select

from models.case import Case, Obligation, ObligationStatus
from models.clock import beijing, iso
from models.db import session
from models.processes import machines, obligation_label
from models.statemachine import Skip, Step, transition


def flagged() -> list[tuple[int, str, str]]:
    """(obligation id, case id, case kind) of open obligations whose calendar was a guess."""
    with session() as s:
        q = (select(Obligation.id, Obligation.case_id, Case.kind).join(Case, Case.id == Obligation.case_id)
             .where(Obligation.calendar_unconfirmed.is_(True), Obligation.met_at.is_(None),
                    Obligation.status == ObligationStatus.open)
             .order_by(Obligation.id))
        return [tuple(r) for r in s.exec(q).all()]


def _reconfirm_one(ob_id: int, outcome: dict):
    from tasks.deadlines import calendar, recompute

    def effect(step: Step) -> None:
        ob = step.s.exec(select(Obligation).where(Obligation.id == ob_id).with_for_update()
                         .execution_options(populate_existing=True)).first()
        basis = (ob.data or {}).get("basis") if ob is not None else None
        if basis is None or ob.met_at is not None or not ob.calendar_unconfirmed:
            raise Skip  # met meanwhile, or computed before bases were kept
        new = recompute(basis, calendar(step.s))
        old = ob.due_at
        if new.calendar_unconfirmed and new.due_at == old:
            raise Skip  # its year is still unknown
        ob.set_deadline(new)
        if new.due_at != old:
            if ob.next_action_at is not None:
                ob.next_action_at = min(ob.next_action_at, step.recorded_at)  # the sweep re-plans it
            step.warn(f"节假日安排载入后，{obligation_label(ob.kind)}期限由 {beijing(old)} 调整为 {beijing(new.due_at)}")
        step.s.add(ob)
        step.event_type = f"{ob.kind}_deadline_confirmed"
        step.payload["deadline"] = {"kind": ob.kind, "old_due_at": iso(old), "due_at": iso(new.due_at),
                                    "calendar_unconfirmed": new.calendar_unconfirmed}
        outcome.update(confirmed=not new.calendar_unconfirmed, moved=new.due_at != old)

    return effect


def reconfirm_deadlines() -> dict:
    """Compute every flagged open deadline again with the calendar as it is now. Returns
    counts: ``checked`` (flagged open obligations), ``confirmed`` (flag cleared), ``moved``
    (due time changed)."""
    by_kind = machines()
    counts = {"checked": 0, "confirmed": 0, "moved": 0}
    for ob_id, case_id, kind in flagged():
        counts["checked"] += 1
        outcome: dict = {}
        transition(by_kind[kind], "escalate", actor="system", case_id=case_id, effect=_reconfirm_one(ob_id, outcome))
        counts["confirmed"] += bool(outcome.get("confirmed"))
        counts["moved"] += bool(outcome.get("moved"))
    return counts
