"""Deadlines computed again once their year's working-day calendar is loaded.

A deadline that reaches a year whose holidays are not yet announced is computed Monday–
Friday and flagged ``calendar_unconfirmed``; its obligation keeps how it was computed
(``data.basis``), and the notice that set it says it may be adjusted ("另行通知").
``dutyflow calendar load FILE`` then calls :func:`reconfirm_deadlines`: per case, in one
transaction, every open obligation still flagged is computed again with the loaded
calendar; the flag is cleared when its year is now known; an audit event
``deadlines_confirmed`` records old and new due times; and when a due time moved, the case
gets a warning, the obligation's next action is brought forward to now (the next sweep
re-plans the ladder with the process's own rules) and the responsible persons get the
期限调整通知 promised — one per case, from the unit that issued the case's first notice.
Idempotent: a second call finds nothing to do.
"""
from __future__ import annotations

from collections import defaultdict

from sqlmodel import select

from models.case import Case, Obligation, ObligationStatus
from models.clock import deadline_text, iso, local
from models.db import session
from models.deadlines import calendar, recompute
from models.notice import Notice
from models.notices import adjustment_notice
from models.org import OrgUnit, get_unit, holders_many
from models.processes import machines, obligation_label
from models.statemachine import Skip, Step, transition

_FLAGGED = (Obligation.calendar_unconfirmed.is_(True), Obligation.met_at.is_(None),
            Obligation.status == ObligationStatus.open)


def flagged_cases() -> list[tuple[str, str]]:
    """(case id, case kind) of cases with an open obligation whose calendar was a guess."""
    with session() as s:
        q = (select(Obligation.case_id, Case.kind).join(Case, Case.id == Obligation.case_id)
             .where(*_FLAGGED).distinct().order_by(Obligation.case_id))
        return [tuple(r) for r in s.exec(q).all()]


def _issuer(s, case: Case) -> OrgUnit:
    """The unit that issued the case's first notice (it set the deadlines), else the case's unit."""
    code = s.exec(select(Notice.issuer_unit).where(Notice.case_id == case.id)
                  .order_by(Notice.issued_at, Notice.id).limit(1)).first()
    return get_unit(s, code or case.unit)


def _notify_moved(step: Step, moved: list, year: int, calendar_source: str) -> None:
    s, case = step.s, step.case
    on = local(step.recorded_at).date()
    units = sorted({ob.unit for ob, _, _ in moved})
    names = {u.code: u.name for u in s.exec(select(OrgUnit).where(OrgUnit.code.in_(units))).all()}
    recipients: list[str] = []
    by_role: dict[str, set[str]] = defaultdict(set)
    for ob, _, _ in moved:
        if ob.data.get("person"):
            recipients.append(ob.data["person"])
        elif ob.role:
            by_role[ob.role].add(ob.unit)
    for role, role_units in by_role.items():
        people = holders_many(s, sorted(role_units), role, on)
        recipients += [p for u in sorted(role_units) for p in people[u]]
    items: dict[tuple, list[str]] = defaultdict(list)
    for ob, old, new in moved:
        items[(obligation_label(ob.kind), deadline_text(old), deadline_text(new.due_at))].append(names[ob.unit])
    adjustment_notice(
        step, reason=f"根据{calendar_source}公布的{year}年节假日安排，此前按周一至周五暂定的",
        items=[{"label": label, "units": us, "old_due": old, "new_due": new} for (label, old, new), us in items.items()],
        request="请按调整后的期限办理。已在原定期限内办结的，不受影响；督办提醒按调整后的期限重新安排",
        fallback={"issuer": _issuer(s, case), "recipients": list(dict.fromkeys(recipients)),
                  "main_to": names[units[0]] if len(units) == 1 else "各有关单位"},
    )


def _reconfirm_case(year: int, calendar_source: str, outcome: dict):
    def effect(step: Step) -> None:
        s = step.s
        obs = s.exec(select(Obligation).where(Obligation.case_id == step.case.id, *_FLAGGED)
                     .order_by(Obligation.id).with_for_update().execution_options(populate_existing=True)).all()
        cal = calendar(s)
        changes = []
        for ob in obs:
            basis = (ob.data or {}).get("basis")
            if basis is None:
                continue  # computed before bases were kept: stays flagged
            new = recompute(basis, cal)
            if new.calendar_unconfirmed and new.due_at == ob.due_at:
                continue  # its year is still unknown
            old = ob.due_at
            ob.set_deadline(new)
            if new.due_at != old and ob.next_action_at is not None:
                ob.next_action_at = min(ob.next_action_at, step.recorded_at)  # the sweep re-plans it
            s.add(ob)
            changes.append((ob, old, new))
        if not changes:
            raise Skip
        moved = [c for c in changes if c[2].due_at != c[1]]
        summary: dict[tuple, int] = defaultdict(int)  # the same change at many units: one line
        for ob, old, new in changes:
            summary[(ob.kind, old, new.due_at, new.calendar_unconfirmed)] += 1
        step.event_type = "deadlines_confirmed"
        step.payload["deadlines"] = [
            {"kind": k, "obligations": n, "old_due_at": iso(o), "due_at": iso(d), "calendar_unconfirmed": u}
            for (k, o, d, u), n in summary.items()]
        for (kind, old, new, _), n in summary.items():
            if old != new:
                step.warn(f"{year}年节假日安排载入后，{obligation_label(kind)}期限由{deadline_text(old)}"
                          f"调整为{deadline_text(new)}" + (f"（{n}个单位）" if n > 1 else ""))
        if moved:
            _notify_moved(step, moved, year, calendar_source)
        outcome.update(confirmed=sum(not new.calendar_unconfirmed for _, _, new in changes), moved=len(moved),
                       notices=1 if moved else 0)

    return effect


def reconfirm_deadlines(year: int, calendar_source: str) -> dict:
    """Compute every flagged open deadline again with the calendar as it is now (after
    loading ``year`` from ``calendar_source``). Returns counts: ``cases``, ``confirmed``
    (flags cleared), ``moved`` (due times changed), ``notices`` (期限调整通知 issued); the
    notices' messages are delivered by the sweep."""
    by_kind = machines()
    counts = {"cases": 0, "confirmed": 0, "moved": 0, "notices": 0}
    for case_id, kind in flagged_cases():
        counts["cases"] += 1
        outcome: dict = {}
        transition(by_kind[kind], "escalate", actor="system", case_id=case_id,
                   effect=_reconfirm_case(year, calendar_source, outcome))
        for key in ("confirmed", "moved", "notices"):
            counts[key] += outcome.get(key, 0)
    return counts
