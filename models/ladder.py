"""Escalation ladders: what the sweep does when an obligation's time comes.

A ladder is a list of steps, each with the time it becomes due (computed from the
obligation) and what it does (notices, a proposal). The sweep takes the LATEST step whose
time has come: steps skipped while the service was down are recorded as implied, never
sent as a burst of stale reminders. Each step is taken once: the obligation is re-read
under a lock and its ``step`` compared, inside the same transaction as the audit event.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from models.case import Obligation, ObligationStatus
from models.deadlines import calendar
from models.statemachine import Machine, Result, Step, lock_due_obligation, transition


@dataclass(frozen=True)
class LadderStep:
    step: int  # 1, 2, … (obligation.step after it is taken)
    name: str  # id used in event types: reminder, urge, interview, proposal, missed
    label: str  # Chinese name
    when: Callable[[Obligation, object], datetime]  # (obligation, calendar) -> time it is due
    act: Callable[[Step, Obligation, list["LadderStep"]], None]  # (step, obligation, implied steps)
    marks_missed: bool = False  # taken at or after the due time: the obligation is missed


def first_action_at(ladder: list[LadderStep], ob: Obligation, cal) -> datetime | None:
    return ladder[0].when(ob, cal) if ladder else None


def next_action_at(ladder: list[LadderStep], ob: Obligation, cal) -> datetime | None:
    """When the next step after ``ob.step`` is due (None at the top of the ladder)."""
    for ls in ladder:
        if ls.step > ob.step:
            return ls.when(ob, cal)
    return None


def escalate(machine: Machine, ladders: dict[str, list[LadderStep]], ob_id: int, case_id: str,
             flow_run_id: str | None = None, session=None) -> Result | None:
    """Take the due ladder step of one obligation (or nothing, if another sweep did)."""
    def effect(step: Step) -> None:
        ob = lock_due_obligation(step, ob_id)
        ladder = ladders.get(ob.kind) or []
        cal = calendar(step.s)
        due = [ls for ls in ladder if ls.step > ob.step and ls.when(ob, cal) <= step.recorded_at]
        if not due:
            ob.next_action_at = next_action_at(ladder, ob, cal)
            step.event_type = f"{ob.kind}_rescheduled"
            return
        target, implied = due[-1], due[:-1]
        if any(ls.marks_missed for ls in due) and ob.status == ObligationStatus.open:
            step.miss(ob)
        target.act(step, ob, implied)
        ob.step = target.step
        ob.next_action_at = next_action_at(ladder, ob, cal)
        ob.data = {**ob.data, "ladder": [*ob.data.get("ladder", []), *(
            {"step": ls.step, "name": ls.name, "at": step.recorded_at.isoformat(), "implied": ls is not target}
            for ls in due)]}
        step.event_type = f"{ob.kind}_{target.name}"
        step.payload["ladder"] = {"step": target.step, "name": target.name,
                                  "implied": [ls.name for ls in implied]}

    return transition(machine, "escalate", actor="system", case_id=case_id, effect=effect,
                      flow_run_id=flow_run_id, session=session)
