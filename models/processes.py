"""The processes by case kind: their state machines (SPEC §3) and obligation labels.

One place that knows every process, for the generic code that works across them (the CLI's
filters, the deadline re-computation after a calendar load).
"""
from __future__ import annotations

from functools import lru_cache

#: The case kinds of SPEC §5, in order; 工作记录 (``activity``, record-activity) come after.
PROCESS_KINDS = ("incident", "rectification", "accountability", "assessment")


def machines() -> dict:
    """case kind → its :class:`models.statemachine.Machine`."""
    from models import accountability, assessment, incident, rectification

    return {m.kind: m for m in (incident.MACHINE, rectification.MACHINE, accountability.MACHINE,
                                assessment.MACHINE, assessment.ACTIVITY)}


@lru_cache(maxsize=1)
def _step_labels() -> dict[tuple[str, int], str]:
    """(obligation kind, step) → label, from every process's ladders (read once: labels are code)."""
    from models import assessment, incident, rectification

    return {(kind, ls.step): ls.label for process in (incident, rectification, assessment)
            for kind, ladder in process.ladders().items() for ls in ladder}


def step_label(kind: str, step: int) -> str:
    """Chinese name of ladder step ``step`` of an obligation kind (催办, 约谈 …); '未督办' before
    the first step, '逾期' for a kind without a ladder."""
    return "未督办" if step <= 0 else _step_labels().get((kind, step), "逾期")


def obligation_label(kind: str) -> str:
    """Chinese name of an obligation kind (the id itself when no process names it)."""
    from models import accountability, assessment, incident, rectification

    for process in (incident, rectification, accountability, assessment):
        if kind in process.OBLIGATION_LABELS:
            return process.OBLIGATION_LABELS[kind]
    return kind
