"""Who may do what (SPEC §3.6, from the committee's text): one declarative table.

:func:`check` is called by the one generic ``transition()`` for every action, whatever the
entry (the served UI and API, the CLI, a worker's re-run), before the action's effect runs;
a refusal is one Chinese line naming the action and the authority it needs, and nothing has
been written. Each row below is one row of §3.6: the actions it covers, who may take them
(``may``: any one suffices), who never may even so (``never``), and what the named units must
be (``requires``: e.g. a 整改通知's issuer is on the issuing side, a decision's organisation
has authority). Scheduled work acts as ``system``: only rows that say so admit it.

The facts a check reads are the actor's posts on the action's effective date (who held which
post then, from the registry's history) and what the action concerns (:class:`Scope`): the
unit, the issuing unit of a rectification, the deciding organisation, the appellant, the
persons of the accountability chain, the units scored.

Where the text leaves room, this table reads it as a reviewer of a government system would:
the issuing side of a rectification is the 网信办 serving the responsible unit or a unit above
it on its territorial or supervising line, never the unit itself nor a peer; nobody decides a
case in which they are named (the chain), an appeal is never decided by the appellant, and a
unit is never scored by its own staff.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from sqlmodel import Session

from models.clock import local
from models.errors import DomainError
from models.org import (
    OrgUnit,
    Person,
    Post,
    Role,
    ancestors,
    committee_unit,
    office_unit,
    posts_of,
    role_unit,
)

SYSTEM = "system"

#: Who is logged in for the action being applied — ``(person, method)`` — as the flow run's
#: Prefect ``created_by`` records it (set by the login gateway, read by the flow). None: an
#: action applied without the served API (the CLI in-process on the machine, a test).
LOGIN: ContextVar[tuple[str, str] | None] = ContextVar("dutyflow_login", default=None)
#: How a login was proven, as the audit log shows it.
LOGIN_METHODS = {"password": "口令登录", "proxy": "统一身份认证（反向代理）", "cli": "本机命令行（服务凭据）",
                 "service": "服务凭据", "local": "本机直接办理（未经服务器）"}


def created_by_type(person: str, method: str) -> str:
    """Prefect's ``created_by.type`` of a run the login gateway let through."""
    return f"dutyflow:{method}:{person}"


def login_from_created_by(kind: str | None) -> tuple[str, str] | None:
    """``(person, method)`` from a run's ``created_by.type`` (None when the gateway did not create it)."""
    parts = (kind or "").split(":", 2)
    if len(parts) != 3 or parts[0] != "dutyflow" or parts[1] not in LOGIN_METHODS:
        return None
    return parts[2], parts[1]


def check_login(actor: str) -> dict[str, str] | None:
    """The actor is the logged-in person (the service credential acts only as ``system``);
    returns what the audit event records of the login (None for ``system`` without one).

    ``system`` is also the actor of the core's own reactions inside a person's run (an incident
    reported after its deadline → the system proposes accountability): allowed under any login,
    whose record then says in whose run the reaction happened. A person cannot name ``system``
    themselves — the gateway binds every run a person starts to that person."""
    login = LOGIN.get()
    if login is None:
        return None if actor == SYSTEM else {"person": actor, "method": "local"}
    person, method = login
    if actor == SYSTEM:
        return {"person": person, "method": method}
    if method == "service":
        if actor != SYSTEM:
            raise DomainError(f"以服务凭据发起的运行只能以 system 办理，不能以 {actor} 的名义办理", "actor")
    elif person != actor:
        raise DomainError(f"操作人须为登录人本人（{person}），不能代他人（{actor}）办理", "actor")
    return {"person": person, "method": method}


def check_actor(s: Session, actor: str, on: datetime, *, system_ok: bool = True, post: bool = True) -> None:
    """The actor is a registered, active person holding a post on the action's date (``post``),
    or ``system`` where ``system_ok``. In a transition the authority table decides the rest:
    whether ``system`` may, and which posts (an appellant may have left office)."""
    if actor == SYSTEM:
        if system_ok:
            return
        raise DomainError("'system' 仅供定时任务使用；请填写操作人的人员编号", "actor")
    person = s.get(Person, actor) if actor else None
    if person is None or not person.active:
        raise DomainError(f"操作人 '{actor}' 不是登记在岗的人员（须在组织名册中有有效岗位）", "actor")
    if post and not posts_of(s, actor, local(on).date()):
        raise DomainError(f"操作人 '{actor}' 不是登记在岗的人员（须在组织名册中有有效岗位）", "actor")


@dataclass
class Scope:
    """What one action concerns, as the authority check reads it."""

    s: Session
    actor: str
    on: date
    posts: list[Post]
    unit: str  # the reporting / responsible / assessed unit
    issuer: str = ""  # rectification: the issuing unit
    decided_by: str = ""  # accountability: the organisation deciding (named, or recorded)
    appellant: str = ""  # file-appeal / decide-appeal: the person (or unit) appealing
    chain: frozenset[str] = frozenset()  # persons named in the accountability chain
    units: tuple[str, ...] = ()  # score-assessment: the units scored
    _memo: dict = field(default_factory=dict)

    def held_at(self, units) -> bool:
        wanted = {u for u in units if u}
        return any(p.unit in wanted for p in self.posts)

    def office(self) -> OrgUnit | None:
        if "office" not in self._memo:
            self._memo["office"] = office_unit(self.s, self.unit, self.on)
        return self._memo["office"]

    def deciding_orgs(self) -> list[OrgUnit]:
        """The organisations with authority over the unit: its 党工委 and 纪工委."""
        if "orgs" not in self._memo:
            orgs = [committee_unit(self.s, self.unit), role_unit(self.s, self.unit, "discipline", self.on)]
            self._memo["orgs"] = list({o.code: o for o in orgs if o is not None}.values())
        return self._memo["orgs"]

    def issuing_units(self) -> set[str]:
        """The issuing side of the responsible unit: the 网信办 serving it, the units above it
        on its territorial line, and its supervising department with the units above that."""
        if "issuing" not in self._memo:
            line = [u.code for u in ancestors(self.s, self.unit)[1:]]
            unit = self.s.get(OrgUnit, self.unit)
            if unit is not None and unit.supervisor:
                line += [u.code for u in ancestors(self.s, unit.supervisor)]
            office = self.office()
            self._memo["issuing"] = {*line, *([office.code] if office else [])} - {self.unit}
        return self._memo["issuing"]

    def name(self, code: str) -> str:
        unit = self.s.get(OrgUnit, code) if code else None
        return unit.name if unit is not None else code


@dataclass(frozen=True)
class Test:
    """One condition of a row: a predicate over the scope and its Chinese wording."""

    text: Callable[[Scope], str]
    holds: Callable[[Scope], bool]
    field: str = "actor"  # where a failed ``requires`` points


def _words(text: str | Callable[[Scope], str]) -> Callable[[Scope], str]:
    return text if callable(text) else (lambda _sc: text)


def test(text, holds, field="actor") -> Test:
    return Test(_words(text), holds, field)


# ---------------------------------------------------------------- the conditions

SCHEDULE = test("定时任务（system）", lambda sc: sc.actor == SYSTEM)
AT_UNIT = test(lambda sc: f"{sc.name(sc.unit)}的在岗人员", lambda sc: sc.held_at([sc.unit]))
OFFICE_FOR_UNIT = test(
    lambda sc: f"为其服务的网信办（{sc.office().code if sc.office() else '未登记'}）工作人员",
    lambda sc: sc.office() is not None and any(p.unit == sc.office().code and p.role == "office" for p in sc.posts))
ISSUING_SIDE = test(
    lambda sc: f"下发单位（{sc.name(sc.issuer)}）或其上级的在岗人员",
    lambda sc: sc.held_at([u.code for u in ancestors(sc.s, sc.issuer)]) if sc.issuer else False)
COMMITTEE_OR_DISCIPLINE = test(
    lambda sc: "、".join(o.name for o in sc.deciding_orgs()) + "的成员" if sc.deciding_orgs() else "党工委或纪工委的成员",
    lambda sc: sc.held_at([o.code for o in sc.deciding_orgs()]))
COMMITTEE = test(
    lambda sc: f"{committee.name}的成员" if (committee := committee_unit(sc.s, sc.unit)) else "党工委的成员",
    lambda sc: (committee := committee_unit(sc.s, sc.unit)) is not None and sc.held_at([committee.code]))
MEMBER_OF_DECIDING_ORG = test(
    lambda sc: f"作出决定的党组织（{sc.name(sc.decided_by)}）的成员",
    lambda sc: bool(sc.decided_by) and sc.held_at([sc.decided_by]))
THE_APPELLANT = test(
    "被问责人员本人（党组织申诉的，为其主要负责人）",
    lambda sc: sc.actor == sc.appellant or any(p.unit == sc.appellant and p.role == "principal" for p in sc.posts))

IN_CHAIN = test("本案倒查链中的人员", lambda sc: sc.actor in sc.chain)
SCORED_OWN_UNIT = test(
    lambda sc: "被评分单位的人员" + "".join(f"（{sc.name(p.unit)}）" for p in sc.posts if p.unit in sc.units)[:40],
    lambda sc: sc.held_at(sc.units))

ISSUER_ON_ISSUING_SIDE = test(
    lambda sc: (f"下发单位须为网信办或{sc.name(sc.unit)}的属地、监管上级单位"
                f"（{'、'.join(sc.name(u) for u in sorted(sc.issuing_units())) or '无'}），"
                f"不能是责任单位本身或平级单位；所填：{sc.name(sc.issuer) or '（未找到网信办）'}"),
    lambda sc: sc.issuer in sc.issuing_units(), field="issuer")
DECIDED_BY_HAS_AUTHORITY = test(
    lambda sc: (f"作出决定的党组织须为对{sc.name(sc.unit)}有管理权限的党组织"
                f"（{'、'.join(o.name for o in sc.deciding_orgs()) or '未登记'}）；所填：{sc.name(sc.decided_by)}"),
    lambda sc: sc.decided_by in {o.code for o in sc.deciding_orgs()}, field="decided_by")


# ---------------------------------------------------------------- the table (SPEC §3.6)


@dataclass(frozen=True)
class Row:
    """One row of §3.6: the actions it covers (``kind.action`` → the flow's name), who may
    (any one of ``may``), who never may (any of ``never``), what must hold of the units named."""

    actions: dict[str, str]
    may: tuple[Test, ...]
    never: tuple[Test, ...] = ()
    requires: tuple[Test, ...] = ()


TABLE: tuple[Row, ...] = (
    # report-incident, update-incident, submit-incident-summary:
    # a post holder of the reporting unit, or 网信办 staff for it
    Row({"incident.report": "report-incident", "incident.progress": "update-incident",
         "incident.supplement": "update-incident", "incident.resolve": "update-incident",
         "incident.submit_summary": "submit-incident-summary"},
        may=(AT_UNIT, OFFICE_FOR_UNIT)),
    # notify-risk, verify-rectification, decide-extension, record-interview: the issuing side
    # (the 网信办, or a unit above the responsible unit on its line); never the responsible
    # unit itself, never a peer
    Row({"rectification.notify": "notify-risk", "rectification.verify_pass": "verify-rectification",
         "rectification.verify_fail": "verify-rectification", "rectification.decide_extension": "decide-extension",
         "rectification.record_interview": "record-interview"},
        may=(OFFICE_FOR_UNIT, ISSUING_SIDE), never=(AT_UNIT,), requires=(ISSUER_ON_ISSUING_SIDE,)),
    # acknowledge-risk, submit-rectification, request-extension: a post holder of the responsible unit
    Row({"rectification.acknowledge": "acknowledge-risk", "rectification.submit": "submit-rectification",
         "rectification.request_extension": "request-extension"},
        may=(AT_UNIT,)),
    # open-accountability, dismiss-accountability: 网信办 staff (可以向…提出问责建议) or the
    # 党工委/纪工委; 不予问责 is a decision: never by a person the case names
    Row({"accountability.open": "open-accountability", "accountability.accept": "open-accountability"},
        may=(OFFICE_FOR_UNIT, COMMITTEE_OR_DISCIPLINE), never=(IN_CHAIN,)),
    Row({"accountability.dismiss": "dismiss-accountability"},
        may=(OFFICE_FOR_UNIT, COMMITTEE_OR_DISCIPLINE), never=(IN_CHAIN,)),
    # record-accountability-decision: a member of the organisation with authority named as
    # decided_by; never a person named in the chain
    Row({"accountability.decide": "record-accountability-decision"},
        may=(MEMBER_OF_DECIDING_ORG,), never=(IN_CHAIN,), requires=(DECIDED_BY_HAS_AUTHORITY,)),
    # file-appeal: the person (or the organisation's principal) held accountable, for themselves
    Row({"accountability.appeal": "file-appeal"}, may=(THE_APPELLANT,)),
    # decide-appeal: the deciding organisation; never the appellant, never a person in the chain
    Row({"accountability.decide_appeal": "decide-appeal"},
        may=(MEMBER_OF_DECIDING_ORG,), never=(THE_APPELLANT, IN_CHAIN)),
    # start-/publish-assessment, score-assessment: 网信办 staff or the 党工委 (the yearly
    # start is also scheduled); never a unit for its own score
    Row({"assessment.start": "start-annual-assessment"}, may=(SCHEDULE, OFFICE_FOR_UNIT, COMMITTEE)),
    Row({"assessment.publish": "publish-assessment"}, may=(OFFICE_FOR_UNIT, COMMITTEE)),
    Row({"assessment.score": "score-assessment"}, may=(OFFICE_FOR_UNIT, COMMITTEE), never=(SCORED_OWN_UNIT,)),
    # submit-self-assessment, record-activity: a post holder of that unit (or 网信办 staff for it)
    Row({"assessment.self_assess": "submit-self-assessment", "activity.record": "record-activity"},
        may=(AT_UNIT, OFFICE_FOR_UNIT)),
    # the sweep's own steps: escalation ladders, automatic proposals, deadline handling
    Row({"incident.escalate": "sweep-deadlines", "rectification.escalate": "sweep-deadlines",
         "accountability.escalate": "sweep-deadlines", "accountability.propose": "sweep-deadlines",
         "assessment.escalate": "sweep-deadlines"},
        may=(SCHEDULE,)),
)

_BY_ACTION: dict[str, Row] = {action: row for row in TABLE for action in row.actions}


def row_for(kind: str, action: str) -> Row:
    """The row of ``kind.action``; an action no row names is refused to everyone (fail closed)."""
    try:
        return _BY_ACTION[f"{kind}.{action}"]
    except KeyError:
        raise DomainError(f"操作 {kind}.{action} 未列入权限表，任何人不得办理", "actor") from None


def flow_name(kind: str, action: str) -> str:
    return row_for(kind, action).actions[f"{kind}.{action}"]


def _who(sc: Scope) -> str:
    if sc.actor == SYSTEM:
        return "定时任务（system）"
    person = sc.s.get(Person, sc.actor)
    by_unit: dict[str, list[str]] = {}
    for p in sc.posts:
        by_unit.setdefault(p.unit, []).append(Role[p.role].value.split("（")[0])
    held = "、".join(f"{sc.name(u)}{'、'.join(roles)}" for u, roles in by_unit.items()) or "无在岗职务"
    return f"{person.name if person else sc.actor}（{sc.actor}，{held}）"


def check(sc: Scope, kind: str, action: str, label: str) -> None:
    """Refuse ``kind.action`` unless the table admits the actor for this scope (one line,
    field ``actor`` or the unit named wrongly)."""
    row = row_for(kind, action)
    what = f"{row.actions[f'{kind}.{action}']}（{label}）"
    for req in row.requires:
        if not req.holds(sc):
            raise DomainError(f"不能办理 {what}：{req.text(sc)}", req.field)
    may = "或".join(t.text(sc) for t in row.may)
    never = "或".join(t.text(sc) for t in row.never)
    needed = f"须由{may}办理" + (f"，不得由{never}办理" if never else "")
    if sc.actor == SYSTEM and SCHEDULE not in row.may:
        raise DomainError(f"无权办理 {what}：{needed}；'system' 仅供定时任务使用，请填写操作人的人员编号", "actor")
    if not any(t.holds(sc) for t in row.may):
        raise DomainError(f"无权办理 {what}：{needed}；操作人 {_who(sc)}", "actor")
    for bar in row.never:
        if bar.holds(sc):
            raise DomainError(f"无权办理 {what}：{needed}；操作人 {_who(sc)}是{bar.text(sc)}", "actor")


def scope_of(s: Session, *, actor: str, on: date, kind: str, unit: str, data: dict | None,
             given: dict[str, Any] | None) -> Scope:
    """The scope of an action on a case of ``kind`` at ``unit`` recording ``data`` (empty for
    an action that opens a case): what the request names (``given``), else what the case records."""
    given = dict(given or {})
    data = data or {}
    chain = data.get("chain") or []
    decision = data.get("decision") or {}
    sc = Scope(s=s, actor=actor, on=on, posts=[] if actor == SYSTEM else posts_of(s, actor, on),
               unit=given.get("unit") or unit,
               issuer=given.get("issuer") or data.get("issuer") or "",
               decided_by=given.get("decided_by") or decision.get("decided_by") or "",
               appellant=given.get("appellant") or "",
               chain=frozenset([c["person"] for c in [*chain, *(data.get("computed_chain") or [])] if c.get("person")]
                               + list(data.get("involved_persons") or [])),
               units=tuple(given.get("units") or ()))
    if kind == "rectification" and not sc.issuer:  # 留空为责任单位所属街道网信办
        office = sc.office()
        sc.issuer = office.code if office else ""
    return sc
