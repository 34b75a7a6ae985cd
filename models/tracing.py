"""逐级倒查: the responsibility chain, computed from the posts held on the date of the facts.

当事人 → the unit's cyber_officer → cyber_lead → principal → (weak coordination or supervision)
the head of the supervising unit, or of the coordinating 网信办 when the unit has none → up
the territorial line while the parent's own obligations on the same facts were also missed.
A vacant post appears as vacant, never skipped. Then 分清集体责任和个人责任 assigns each link
its responsibility, and the policy table suggests forms per person and per organisation.

What "the same facts" and "the same risk" are, in this system's records
------------------------------------------------------------------------
The facts of an accountability case come from its source case (``proposed_from``): an
incident, or a rectification left undone. A manual case (no source) is not linked to any
record, so nothing is derived for it: the operator states weak supervision and edits the
chain.

* **Same facts** (:func:`same_facts_cases`, for the climb up the territorial line): the
  source case, and the rectifications (整改通知) *on the same problem* at the unit or at any
  unit up its territorial line — the same non-empty ``problem_code`` (e.g. the district
  notified the street of the weak-password problem its communities also have), or a
  ``source`` / ``problem_code`` / ``problem`` that names the source case's id (a 整改通知
  issued on that incident) — created from ``accountability.same_risk_days`` before the facts
  date until now.
* **The parent's own obligations on the same facts** (:func:`parent_missed`): the obligations
  of those cases whose ``unit`` is the parent itself or one of its offices (a ``department``
  whose territorial parent is the parent: the street 网信办, 综治办 …), missed (late or never
  done, or still open past due). In the flows these are the issuer's ``verify`` (复核验收) of a
  rectification — the street 网信办 checking a community's 整改报告 — and the parent's own
  ``acknowledge`` / ``rectify`` / ``verify`` on the same problem. An incident's obligations
  all sit at the incident's unit, so an incident climbs only through a rectification issued
  on it. The climb goes one level at a time and stops at the first parent that met its
  obligations (or had none on these facts).
* **Same risk** (:func:`same_risk_cases`, for derived weak supervision): the facts above at
  the unit itself, plus the earlier occurrences of the same risk at the unit in the window:
  rectifications with the same ``problem_code``, incidents of the same category, and the
  rectifications issued on any of them (naming their id).
* **Derived weak supervision** (:func:`supervision_was_weak`): the overseeing unit (the
  unit's supervising department; the coordinating 网信办 when it has none) *knew* of the risk
  — one of its staff was a recipient of a notice of a same-risk case issued before the facts
  date — and *issued no notice on it* — no same-risk rectification was issued by it up to the
  facts date. A 整改通知 on another matter does not count, nor does knowledge of another risk.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from models import policy
from models.case import Case, Obligation, ObligationStatus, cases_with_ref
from models.clock import TZ, cn_date, now
from models.notice import Notice
from models.notices import document_reference
from models.org import OrgUnit, Person, ancestors, get_unit, holders, posts_of, role_unit
from models.processes import obligation_label

ROLE_LABELS = {
    "involved": "当事人",
    "cyber_officer": "网络安全负责人",
    "cyber_lead": "主管网络安全的领导班子成员（直接责任人）",
    "principal": "主要负责人（第一责任人）",
    "supervisor_head": "综合协调或监管部门负责人",
    "member": "领导班子其他成员",
}
LEADER_ROLES = ("cyber_officer", "cyber_lead", "principal")
MAIN_ROLES = ("principal", "cyber_lead")  # 主要领导责任 in a collective decision
STAFF_ROLES = ("principal", "cyber_lead", "cyber_officer", "office", "member")
MAIN, IMPORTANT, DIRECT, LEADING, NONE = "主要领导责任", "重要领导责任", "直接责任", "领导责任", "无"


def _link(s: Session, person: str | None, role: str, unit: str, why: str = "") -> dict[str, Any]:
    name = None
    if person:
        p = s.get(Person, person)
        name = p.name if p else person
    return {"person": person, "name": name, "role": role, "role_label": ROLE_LABELS[role], "unit": unit,
            "vacant": person is None, "note": why, "responsibility": NONE, "suggested_forms": []}


def _note(link: dict, text: str) -> None:
    link["note"] = "；".join(x for x in (link["note"], text) if x)


def _unit_leaders(s: Session, unit: str, on: date, why: str = "") -> list[dict]:
    out = []
    for role in LEADER_ROLES:
        people = holders(s, unit, role, on)
        out += [_link(s, p, role, unit, why) for p in people] or [_link(s, None, role, unit, why or "岗位空缺")]
    return out


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, TZ)


def _window_start(facts_date: date) -> datetime:
    days = policy.get("accountability", "same_risk_days", default=365)
    return _day_start(facts_date - timedelta(days=days))


# ---------------------------------------------------------------- same facts, same risk


def _naming(s: Session, units: list[str], ids: list[str], since: datetime) -> list[Case]:
    """Rectifications at ``units`` created since ``since`` whose source, problem code or
    problem names one of the case ``ids`` (a 整改通知 issued on that case)."""
    return cases_with_ref(s, [f"case:{i}" for i in ids], kind="rectification", units=units, since=since)


def _same_code(s: Session, units: list[str], code: str, since: datetime) -> list[Case]:
    code = (code or "").strip()
    return cases_with_ref(s, [f"code:{code}"], kind="rectification", units=units, since=since) if code else []


def _unique(cases) -> list[Case]:
    return list({c.id: c for c in cases}.values())


def same_facts_cases(s: Session, source: Case | None, facts_date: date) -> list[Case]:
    """The source case and the rectifications on the same problem along its unit's territorial
    line (see the module docstring)."""
    if source is None:
        return []
    line = [u.code for u in ancestors(s, source.unit)]
    since = _window_start(facts_date)
    code = source.data.get("problem_code", "") if source.kind == "rectification" else ""
    return _unique([source, *_same_code(s, line, code, since), *_naming(s, line, [source.id], since)])


def same_risk_cases(s: Session, source: Case | None, facts_date: date) -> list[Case]:
    """The source case and the earlier occurrences of the same risk at its unit, with the
    rectifications issued on them (see the module docstring)."""
    if source is None:
        return []
    unit, since = [source.unit], _window_start(facts_date)
    found = [source]
    if source.kind == "rectification":
        found += _same_code(s, unit, source.data.get("problem_code", ""), since)
    elif source.kind == "incident" and source.data.get("category"):
        found += s.exec(select(Case).where(Case.kind == "incident", Case.unit == source.unit,
                                           Case.created_at >= since,
                                           Case.data["category"].as_string() == source.data["category"])).all()
    found = _unique(found)
    return _unique([*found, *_naming(s, unit, [c.id for c in found], since)])


# ---------------------------------------------------------------- weak coordination or supervision


def overseer(s: Session, unit: OrgUnit, on: date) -> tuple[OrgUnit | None, str]:
    """The unit answering for coordination or supervision of ``unit``: its supervising
    department (行业主管/监管部门); when it has none, the coordinating 网信办 serving it
    (统筹协调, SOURCE 三（三）). Returns (unit or None, how it was found)."""
    if unit.supervisor:
        return get_unit(s, unit.supervisor), "监管部门"
    office = role_unit(s, unit.code, "office", on)
    return office, "综合协调部门（网信办）"


def supervision_was_weak(s: Session, unit: OrgUnit, on: date, source: Case | None = None) -> str:
    """Derived weak supervision on the facts of ``source`` (facts date ``on``): the overseeing
    unit knew of the same risk before the facts (one of its staff received a notice of a
    same-risk case) and issued no 整改通知 on it up to the facts date. Returns the reason, or ''
    when it cannot be shown (always '' without a source case: nothing ties it to the facts)."""
    if source is None:
        return ""
    head, _how = overseer(s, unit, on)
    if head is None:
        return ""
    cases = same_risk_cases(s, source, on)
    end = _day_start(on + timedelta(days=1))
    issued = [c for c in cases if c.kind == "rectification" and c.data.get("issuer") == head.code
              and c.created_at < end]
    if issued:
        return ""
    staff_on: dict[date, set[str]] = {}
    knew: list[tuple[datetime, str, str]] = []
    for case_id, recipients, issued_at, title, number in s.exec(
            select(Notice.case_id, Notice.recipients, Notice.issued_at, Notice.title, Notice.doc_number)
            .where(Notice.case_id.in_([c.id for c in cases]), Notice.issued_at < _day_start(on))
            .order_by(Notice.issued_at)).all():
        day = issued_at.astimezone(TZ).date()
        if day not in staff_on:
            staff_on[day] = {p for role in STAFF_ROLES for p in holders(s, head.code, role, day)}
        if staff_on[day] & set(recipients or []) and case_id not in {c for _, c, _ in knew}:  # its first notice
            knew.append((issued_at, case_id, f"《{title}》" + (f"（{number}）" if number else "")))
    if not knew:
        return ""
    docs = "、".join(doc for _, _, doc in knew)
    return f"{head.name}已于{cn_date(knew[0][0])}收到{docs}，获知同一风险，但事实发生前未就此下发整改通知"


def _overseer_links(s: Session, u: OrgUnit, facts_date: date, weak: bool, source: Case | None) -> list[dict]:
    head, how = overseer(s, u, facts_date)
    if weak:
        if head is None:
            return [_link(s, None, "supervisor_head", u.code,
                          "协调监管不力（经办人认定）：本单位未登记监管部门，也找不到综合协调部门（网信办），请人工增列负责人")]
        why = "协调监管不力（经办人认定）"
        if not u.supervisor:
            why += f"；本单位未登记监管部门，追究{how}负责人"
    else:
        why = supervision_was_weak(s, u, facts_date, source)
        if not why:
            return []
    heads = holders(s, head.code, "principal", facts_date)
    return [_link(s, p, "supervisor_head", head.code, why) for p in heads] or [
        _link(s, None, "supervisor_head", head.code, why)]


# ---------------------------------------------------------------- up the territorial line


def _offices(s: Session, parent: str) -> list[str]:
    return list(s.exec(select(OrgUnit.code).where(OrgUnit.parent == parent, OrgUnit.kind == "department")).all())


def parent_missed(s: Session, cases: list[Case], parent: str) -> list[str]:
    """The parent's own obligations on the same facts that were missed: obligations of
    ``cases`` at ``parent`` or one of its offices, missed or still open past due. Returns
    their descriptions (empty: the parent met its obligations, or had none on these facts)."""
    if not cases:
        return []
    units = [parent, *_offices(s, parent)]
    rows = s.exec(select(Obligation).where(
        Obligation.case_id.in_([c.id for c in cases]), Obligation.unit.in_(units),
        or_(Obligation.status == ObligationStatus.missed,
            and_(Obligation.status == ObligationStatus.open, Obligation.due_at <= now())))
        .order_by(Obligation.due_at, Obligation.id)).all()
    out = []
    for ob in rows:
        where = get_unit(s, ob.unit).name
        out.append(f"{document_reference(s, ob.case_id)}所定{obligation_label(ob.kind)}（{where}）")
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- the chain


def trace(s: Session, *, unit: str, facts_date: date, involved: list[str], weak_supervision: bool,
          source_id: str | None = None) -> list[dict[str, Any]]:
    """The computed chain (before operator edits), in order."""
    u = get_unit(s, unit)
    source = s.get(Case, source_id) if source_id else None
    chain = [_link(s, p, "involved", unit) for p in involved]
    chain += _unit_leaders(s, unit, facts_date)
    chain += _overseer_links(s, u, facts_date, weak_supervision, source)
    facts = same_facts_cases(s, source, facts_date)
    parent = u.parent
    while parent:
        missed = parent_missed(s, facts, parent)
        if not missed:
            break
        p = get_unit(s, parent)
        leaders = _unit_leaders(s, parent, facts_date, f"上级单位{p.name}对同一事实的义务同样逾期（同上）")
        leaders[0]["note"] = f"上级单位{p.name}对同一事实的义务同样逾期：{'；'.join(missed)}"
        chain += leaders
        parent = p.parent
    out: list[dict] = []
    by_person: dict[str, dict] = {}
    for link in chain:  # one person, one link: the first (closest) role, the others noted
        first = by_person.get(link["person"]) if link["person"] else None
        if first is not None:
            _note(first, f"同时为{link['role_label']}")
            continue
        if link["person"]:
            by_person[link["person"]] = link
        out.append(link)
    return out


def apply_edits(s: Session, chain: list[dict], unit: str, add: list[dict], remove: list[dict],
                on: date | None = None) -> list[dict]:
    """Operator edits (each with a reason) on top of the computed chain. An added person takes
    the role given (default 当事人); a 综合协调或监管部门负责人 is placed at the overseeing unit."""
    removed = {e["person"]: e["reason"] for e in remove}
    out = [dict(link) for link in chain if link["person"] not in removed]
    present = {link["person"] for link in out}
    for e in add:
        if e["person"] not in present:
            role = e.get("role") or "involved"
            where = unit
            if role == "supervisor_head":
                head, _ = overseer(s, get_unit(s, unit), on or now().astimezone(TZ).date())
                where = head.code if head else unit
            link = _link(s, e["person"], role, where, f"经办人增列：{e['reason']}")
            link["added"] = True
            out.append(link)
            present.add(e["person"])
    return out


def _individual(link: dict) -> str:
    return DIRECT if link["role"] == "involved" else LEADING


def assign_responsibility(s: Session, chain: list[dict], *, unit: str, collective: dict | None,
                          circumstance: str, removed: set[str] | frozenset = frozenset()) -> list[dict]:
    """分清集体责任和个人责任 (SOURCE 四（五）), then the suggested forms of the policy table.

    Individual responsibility: the 当事人 bear 直接责任, every other link 领导责任.

    Collective responsibility (a recorded 领导班子 decision: date, participants, dissenters).
    SOURCE: "追究集体责任时，领导班子主要负责人和主管网络安全的领导班子成员承担主要领导责任，参与相关
    工作决策的领导班子其他成员承担重要领导责任". The responsibility is for the decision, so the
    posts are those held **on the decision's date**, in **the case's own unit** (the 领导班子
    that decided):

    * a participant who held ``principal`` or ``cyber_lead`` of the unit that day → 主要领导责任;
      a participant not in the chain is added (a former holder appears as 决策时任…), unless
      the operator removed that person (``removed``: the edit stands);
    * any other participant → 重要领导责任 (a 当事人 who also took part keeps 直接责任);
    * a recorded dissenter → 无 (明确表示不同意见);
    * a leader of the unit in the chain (holder on the facts date) who did not take part → 无:
      not responsible for a decision others took (the note says so; the deciding organisation
      may still decide otherwise, and the operator may edit the chain);
    * the 当事人 who did not take part keep 直接责任 (their own conduct); links from other units
      (the supervising unit's head, parent-unit leaders) and persons the operator added keep
      their individual responsibility (领导责任 / 直接责任): they are in the chain for their own
      failures, not for the decision — a parent-unit principal never bears 主要领导责任 here.
    """
    out = [dict(link) for link in chain]
    if collective:
        on = date.fromisoformat(collective["date"])
        when = cn_date(on)
        main_posts: dict[str, str] = {}
        for role in MAIN_ROLES:
            for pid in holders(s, unit, role, on):
                main_posts.setdefault(pid, role)
        participants = list(dict.fromkeys(collective["participants"]))
        dissenters = set(collective["dissenters"])
        present = {link["person"] for link in out if link["person"]}
        for pid in participants:
            if pid in present or pid in removed:
                continue
            role = main_posts.get(pid, "member")
            link = _link(s, pid, role, unit)
            if role in MAIN_ROLES:
                link["role_label"] = f"决策时任{ROLE_LABELS[role]}"
            if not any(p.unit == unit for p in posts_of(s, pid, on)):
                _note(link, f"{when}在本单位无任职记录")
            out.append(link)
        for link in out:
            pid = link["person"]
            if link["vacant"]:
                continue
            if pid in dissenters:
                link["responsibility"] = NONE
                _note(link, f"参与{when}集体决策，明确表示不同意见")
            elif pid in participants:
                if pid in main_posts:
                    link["responsibility"] = MAIN
                    _note(link, f"参与{when}集体决策，时任{ROLE_LABELS[main_posts[pid]]}")
                elif link["role"] == "involved":
                    link["responsibility"] = DIRECT
                    _note(link, f"同时参与{when}集体决策")
                else:
                    link["responsibility"] = IMPORTANT
                    _note(link, f"参与{when}集体决策")
            elif link["unit"] == unit and link["role"] in (*LEADER_ROLES, "member") and not link.get("added"):
                link["responsibility"] = NONE
                _note(link, f"未参与{when}集体决策，不承担该项决策的领导责任")
            else:
                link["responsibility"] = _individual(link)
    else:
        for link in out:
            if not link["vacant"]:
                link["responsibility"] = _individual(link)
    table = policy.get("accountability", "suggested_forms", default={})
    forms = {**table.get("default", {}), **table.get(circumstance, {})}
    for link in out:
        link["suggested_forms"] = [] if link["vacant"] else list(forms.get(link["responsibility"], []))
    return out


def organisation_forms(circumstance: str) -> list[str]:
    table = policy.get("accountability", "organisation_forms", default={})
    return list(table.get(circumstance, table.get("default", [])))
