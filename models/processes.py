"""The processes by case kind: their state machines (SPEC §3) and obligation labels.

One place that knows every process, for the generic code that works across them (the CLI's
filters, the deadline re-computation after a calendar load).
"""
from __future__ import annotations

#: The case kinds of SPEC §5, in order; 工作记录 (``activity``, record-activity) come after.
PROCESS_KINDS = ("incident", "rectification", "accountability", "assessment")


def machines() -> dict:
    """case kind → its :class:`models.statemachine.Machine`."""
    from models import accountability, assessment, incident, rectification

    return {m.kind: m for m in (incident.MACHINE, rectification.MACHINE, accountability.MACHINE,
                                assessment.MACHINE, assessment.ACTIVITY)}


def obligation_label(kind: str) -> str:
    """Chinese name of an obligation kind (the id itself when no process names it)."""
    from models import accountability, incident, rectification

    for labels in (incident.OBLIGATION_LABELS, rectification.OBLIGATION_LABELS, accountability.OBLIGATION_LABELS):
        if kind in labels:
            return labels[kind]
    return {"self_assessment": "提交年度自评"}.get(kind, kind)
