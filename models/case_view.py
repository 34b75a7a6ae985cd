"""The case JSON of SPEC §5 (``dutyflow show ID --json``)."""
from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from models.audit import AuditEvent
from models.case import Case, Obligation
from models.clock import iso
from models.errors import DomainError
from models.masking import mask
from models.notice import Notice, Notification


def case_json(s: Session, case: Case, *, full: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case.id, "kind": case.kind, "state": case.state, "unit": case.unit,
        "title": case.title, "classified": case.classified,
        "created_at": iso(case.created_at), "updated_at": iso(case.updated_at),
        "proposed_from": case.proposed_from, "warnings": list(case.warnings),
        "data": dict(case.data),
    }
    if not full:
        return out
    out["obligations"] = [
        {"kind": o.kind, "due_at": iso(o.due_at), "status": o.status, "step": o.step,
         "calendar_unconfirmed": o.calendar_unconfirmed, "met_at": iso(o.met_at),
         "next_action_at": iso(o.next_action_at), "role": o.role, "unit": o.unit, **(
             {"late_minutes": o.data["late_minutes"]} if "late_minutes" in o.data else {})}
        for o in s.exec(select(Obligation).where(Obligation.case_id == case.id).order_by(Obligation.id)).all()
    ]
    out["events"] = [
        {"seq": e.seq, "type": e.type, "from_state": e.from_state, "to_state": e.to_state,
         "actor": e.actor, "effective_at": iso(e.effective_at), "recorded_at": iso(e.recorded_at),
         "flow_run_id": e.flow_run_id}
        for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.seq)).all()
    ]
    out["notices"] = [
        {"id": n.id, "kind": n.kind, "doc_number": n.doc_number, "title": n.title,
         "recipients": list(n.recipients), "issued_at": iso(n.issued_at)}
        for n in s.exec(select(Notice).where(Notice.case_id == case.id).order_by(Notice.issued_at, Notice.id)).all()
    ]
    out["notifications"] = [
        {"person": n.person, "channel": mask(n.channel), "status": n.status, "notice": n.notice_id,
         "attempts": n.attempts, "last_error": n.last_error}
        for n in s.exec(select(Notification).where(Notification.case_id == case.id).order_by(Notification.id)).all()
    ]
    if case.kind == "accountability":
        out["chain"] = list(case.data.get("chain", []))
    return out


def load_case(s: Session, case_id: str) -> Case:
    case = s.get(Case, case_id)
    if case is None:
        raise DomainError(f"未找到案件 '{case_id}'", "case_id")
    return case
