"""督办台账: open obligations, soonest first (``dutyflow ledger``, the sweep's artifact).

A row carries the obligation keys of ``dutyflow show`` (``case_id``, ``kind``, ``due_at``,
``status``, ``step``, ``calendar_unconfirmed``) and the ledger's own columns (unit name,
the deadline as people read it — its last day, ``due_text`` —, overdue by, responsible
persons resolved from today's posts).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import func
from sqlmodel import Session, select

from models import policy
from models.case import Case, Obligation, ObligationStatus
from models.clock import deadline_text, iso, local, now, pinned_note
from models.db import session
from models.deadlines import overdue_by
from models.org import OrgUnit, Person, holders
from models.outbox import unconfirmed_count
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


def count_overdue() -> int:
    """How many obligations are overdue now (the 督办台账's total)."""
    with session() as s:
        return sum(overdue_counts(s).values())


@task(name="refresh-overdue-ledger")
def refresh_ledger() -> int:
    """刷新督办台账（表格）和汇总（Markdown）。"""
    limit = policy.get("sweep", "ledger_artifact_rows", default=1000)
    with session() as s:
        rows = ledger_rows(s, overdue=True, limit=limit)
        per_unit = overdue_counts(s)
    total = sum(per_unit.values())
    table = [
        {"单位": f"{r['unit']} {r['unit_name']}", "案件": r["case"], "义务": r["obligation"],
         "义务名称": r["obligation_label"], "时限": r["due_text"], "逾期": r["overdue_by"], "阶梯": r["step"],
         "督办环节": r["step_label"],
         "责任人": "、".join(p["name"] for p in r["responsible"]),
         "日历未确认": "是" if r["calendar_unconfirmed"] else ""}
        for r in rows
    ]
    shown = f"（表格显示时限最早的 {len(rows)} 项，全部见 dutyflow ledger --overdue）" if total > len(rows) else ""
    create_table_artifact(table, key="overdue-ledger", description=f"督办台账（逾期事项）{shown}{pinned_note()}")
    md = ["# 督办台账汇总", "", f"逾期事项 {total} 项{shown}。{pinned_note()}", "",
          "| 单位 | 义务 | 督办环节 | 数量 |", "|---|---|---|---|"]
    md += [f"| {u} | {ob} | {st} | {n} |" for (u, ob, st), n in sorted(per_unit.items())]
    unknown = unconfirmed_count()
    if unknown:  # the request left, no answer came: a person asks the recipient and settles it
        md += ["", f"另有结果不明的通知 {unknown} 条：不自动重发，请向收件人核实后用 "
                   "`dutyflow outbox settle` 处理（`dutyflow outbox` 列出）。"]
    create_markdown_artifact("\n".join(md), key="overdue-summary", description="督办台账汇总")
    return total
