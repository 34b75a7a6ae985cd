"""逐级倒查: the responsibility chain, computed from the posts held on the date of the facts.

当事人 → the unit's cyber_officer → cyber_lead → principal → (weak supervision) the head of
the supervising unit → up the territorial line while the parent's own obligations on the
same facts were also missed. A vacant post appears as vacant, never skipped. Then
分清集体责任和个人责任 assigns each link its responsibility, and the policy table suggests
forms per person and per organisation.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, select

from models import policy
from models.case import Case, Obligation, ObligationStatus
from models.clock import TZ
from models.notice import Notification
from models.org import OrgUnit, Person, get_unit, holders

ROLE_LABELS = {
    "involved": "当事人",
    "cyber_officer": "网络安全负责人",
    "cyber_lead": "主管网络安全的领导班子成员（直接责任人）",
    "principal": "主要负责人（第一责任人）",
    "supervisor_head": "综合协调或监管部门负责人",
    "member": "领导班子其他成员",
}
LEADER_ROLES = ("cyber_officer", "cyber_lead", "principal")
MAIN, IMPORTANT, DIRECT, LEADING, NONE = "主要领导责任", "重要领导责任", "直接责任", "领导责任", "无"


def _link(s: Session, person: str | None, role: str, unit: str, why: str = "") -> dict[str, Any]:
    name = None
    if person:
        p = s.get(Person, person)
        name = p.name if p else person
    return {"person": person, "name": name, "role": role, "role_label": ROLE_LABELS[role], "unit": unit,
            "vacant": person is None, "note": why, "responsibility": NONE, "suggested_forms": []}


def _unit_leaders(s: Session, unit: str, on: date, why: str = "") -> list[dict]:
    out = []
    for role in LEADER_ROLES:
        people = holders(s, unit, role, on)
        out += [_link(s, p, role, unit, why) for p in people] or [_link(s, None, role, unit, why or "岗位空缺")]
    return out


def supervision_was_weak(s: Session, unit: OrgUnit, on: date, window_days: int = 365) -> str:
    """Derived weak supervision: the supervising unit knew of a risk at ``unit`` (its staff
    were notified about one of the unit's cases within the window) and issued no 整改通知 to
    it. Returns the reason, or '' when supervision cannot be shown to be weak. Two queries,
    whatever the number of the unit's cases."""
    if not unit.supervisor:
        return ""
    start = datetime.combine(on - timedelta(days=window_days), time.min, TZ)
    end = datetime.combine(on + timedelta(days=1), time.min, TZ)
    staff = {p for role in ("principal", "cyber_lead", "cyber_officer", "office", "member")
             for p in holders(s, unit.supervisor, role, on)}
    if not staff:
        return ""
    in_window = (Case.unit == unit.code) & (Case.created_at >= start) & (Case.created_at < end)
    knew = s.exec(select(Notification.case_id).join(Case, Case.id == Notification.case_id)
                  .where(in_window, Notification.person.in_(staff)).distinct().limit(5)).all()
    if not knew:
        return ""
    issued = s.exec(select(Case.id).where(in_window, Case.kind == "rectification",
                                          Case.data["issuer"].as_string() == unit.supervisor).limit(1)).first()
    if issued:
        return ""
    return f"监管单位已知悉风险（{', '.join(sorted(knew))}）但未下发整改通知"


def _parent_missed(s: Session, source_id: str | None, parent: str) -> bool:
    if not source_id:
        return False
    return s.exec(select(Obligation.id).where(
        Obligation.case_id == source_id, Obligation.unit == parent,
        Obligation.status == ObligationStatus.missed)).first() is not None


def trace(s: Session, *, unit: str, facts_date: date, involved: list[str], weak_supervision: bool,
          source_id: str | None = None) -> list[dict[str, Any]]:
    """The computed chain (before operator edits), in order."""
    u = get_unit(s, unit)
    chain = [_link(s, p, "involved", unit) for p in involved]
    chain += _unit_leaders(s, unit, facts_date)
    derived = "" if weak_supervision else supervision_was_weak(s, u, facts_date)
    if u.supervisor and (weak_supervision or derived):
        heads = holders(s, u.supervisor, "principal", facts_date)
        why = "协调监管不力（经办人认定）" if weak_supervision else derived
        chain += [_link(s, p, "supervisor_head", u.supervisor, why) for p in heads] or [
            _link(s, None, "supervisor_head", u.supervisor, why)]
    parent = u.parent
    while parent and _parent_missed(s, source_id, parent):
        chain += _unit_leaders(s, parent, facts_date, f"上级单位 {parent} 对同一事实的义务同样逾期")
        parent = get_unit(s, parent).parent
    out: list[dict] = []
    by_person: dict[str, dict] = {}
    for link in chain:  # one person, one link: the first (closest) role, the others noted
        first = by_person.get(link["person"]) if link["person"] else None
        if first is not None:
            first["note"] = "；".join(x for x in (first["note"], f"同时为{link['role_label']}") if x)
            continue
        if link["person"]:
            by_person[link["person"]] = link
        out.append(link)
    return out


def apply_edits(s: Session, chain: list[dict], unit: str, add: list[dict], remove: list[dict]) -> list[dict]:
    """Operator edits (each with a reason) on top of the computed chain."""
    removed = {e["person"]: e["reason"] for e in remove}
    out = [dict(link) for link in chain if link["person"] not in removed]
    present = {link["person"] for link in out}
    for e in add:
        if e["person"] not in present:
            link = _link(s, e["person"], e.get("role") or "involved", unit, f"经办人增列：{e['reason']}")
            out.append(link)
            present.add(e["person"])
    return out


def assign_responsibility(s: Session, chain: list[dict], *, unit: str, collective: dict | None,
                          circumstance: str) -> list[dict]:
    """分清集体责任和个人责任, then the suggested forms of the policy table."""
    out = [dict(link) for link in chain]
    if collective:
        participants, dissenters = set(collective["participants"]), set(collective["dissenters"])
        present = {link["person"] for link in out}
        for pid in collective["participants"]:
            if pid not in present:
                out.append(_link(s, pid, "member", unit, "参与集体决策"))
        for link in out:
            pid = link["person"]
            if link["vacant"]:
                continue
            if pid in dissenters:
                link["responsibility"], link["note"] = NONE, "集体决策时明确表示不同意见"
            elif link["role"] in ("principal", "cyber_lead"):
                link["responsibility"] = MAIN
            elif pid in participants:
                link["responsibility"] = IMPORTANT
            else:
                link["responsibility"] = DIRECT if link["role"] == "involved" else LEADING
    else:
        for link in out:
            if not link["vacant"]:
                link["responsibility"] = DIRECT if link["role"] == "involved" else LEADING
    table = policy.get("accountability", "suggested_forms", default={})
    forms = {**table.get("default", {}), **table.get(circumstance, {})}
    for link in out:
        link["suggested_forms"] = [] if link["vacant"] else list(forms.get(link["responsibility"], []))
    return out


def organisation_forms(circumstance: str) -> list[str]:
    table = policy.get("accountability", "organisation_forms", default={})
    return list(table.get(circumstance, table.get("default", [])))
