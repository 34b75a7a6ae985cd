"""Accountability: layer-by-layer reverse tracing (逐级倒查), SPEC 3.3.

Circumstances, the state machine, the automatic proposals (created once per source case and
circumstance, whichever flow or sweep notices it first), and the operator actions:
accept/open → investigating (the chain is computed from the posts held on the date of the
facts), dismiss, decide (per-person appeal windows), appeal, decide the appeal.
"""
from __future__ import annotations

import datetime as dt
from datetime import date
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models import policy, reactions
from models.case import Case, Obligation, ObligationStatus
from models.clock import cn_date, iso, local, parse_time
from models.deadlines import add_months, add_working_days, calendar, due_day
from models.errors import DomainError
from models.incident import OBLIGATION_LABELS as L, IncidentLevel
from models.labels import LabeledEnum
from models.notice import Notice, Notification
from models.notices import committee_rule, document_reference
from models.org import Person, committee_unit, get_person, get_unit, holders, posts_of, role_unit
from models.requests import CaseId, PersonId, Request, UnitCode, picks
from models.statemachine import Machine, Result, Rule, Skip, Step, lock_due_obligation, transition
from models.tracing import apply_edits, assign_responsibility, organisation_forms, trace


class Circumstance(LabeledEnum):
    c1_defacement_unreported = "门户网站等被攻击篡改导致违法有害信息大面积扩散，且没有及时报告和组织处置（四（四）1）"
    c2_data_leak = "国家秘密、大面积个人信息或大量国家基础数据泄露（四（四）2）"
    c3_cii_attack_unhandled = "关键信息基础设施遭受攻击，没有及时处置（四（四）3）"
    c4_concealment_or_unrectified = "封锁、瞒报事件，或对通报的问题和风险隐患不及时整改并造成严重后果（四（四）4）"
    c5_obstruction = "阻碍公安机关、国家安全机关依法工作或拒不提供支持（四（四）5）"
    c6_other = "发生其他严重危害网络安全行为（四（四）6）"


class PersonForm(LabeledEnum):
    tongbao = "通报"
    jiemian = "诫勉"
    zuzhi_tiaozheng = "组织调整或者组织处理"
    jilv_chufen = "纪律处分"


class OrgForm(LabeledEnum):
    jiancha = "检查"
    tongbao = "通报"
    gaizu = "改组"


STATES = {
    "proposed": "已提出问责建议", "investigating": "调查核实中", "decided": "已作出问责决定",
    "appealed": "申诉中", "closed": "已办结", "dismissed": "不予问责",
}

MACHINE = Machine(
    kind="accountability",
    id_prefix="ACC",
    states=STATES,
    rules=(
        Rule("propose", "提出问责建议", (), "proposed", system_only=True),
        Rule("open", "立案调查", (), "investigating"),
        Rule("accept", "采纳问责建议、立案调查", ("proposed",), "investigating"),
        Rule("dismiss", "不予问责", ("proposed",), "dismissed"),
        # closed at once when nobody was given a form (no appeal window to wait for)
        Rule("decide", "作出问责决定", ("investigating",), "decided", alternatives=("closed",)),
        # also from "closed" (an earlier appeal decided) while the person's own window is open;
        # a late appeal is refused with its window's end date
        Rule("appeal", "提出申诉", ("decided", "appealed", "closed"), "appealed"),
        # closed once no appeal is pending; other persons' windows stay open (and appealable)
        Rule("decide_appeal", "作出申诉处理决定", ("appealed",), "closed", alternatives=("appealed",)),
        Rule("escalate", "期限到期处理", tuple(STATES), None, system_only=True, alternatives=("closed",)),
    ),
)

#: The committee's text of each circumstance, word for word (SOURCE.md 四（四）1–6; the
#: received text's 间题 included): notices quote it.
CLAUSES = {
    "c1_defacement_unreported": "党政机关门户网站、重点新闻网站、大型网络平台被攻击篡改，导致反动言论或者谣言等违法有害信息"
                                "大面积扩散，且没有及时报告和组织处置的",
    "c2_data_leak": "发生国家秘密泄露、大面积个人信息泄露或者大量地理、人口、资源等国家基础数据泄露的",
    "c3_cii_attack_unhandled": "关键信息基础设施遭受网络攻击，没有及时处置导致大面积影响人民群众工作、生活，或者造成重大经济损失，"
                               "或者造成严重不良社会影响的",
    "c4_concealment_or_unrectified": "封锁、瞒报网络安全事件情况，拒不配合有关部门依法开展调查、处置工作，或者对有关部门通报的"
                                     "间题和风险隐患不及时整改并造成严重后果的",
    "c5_obstruction": "阻碍公安机关、国家安全机关依法维护国家安全、侦查犯罪以及防范、调查恐怖活动，或者拒不提供支持和保障的",
    "c6_other": "发生其他严重危害网络安全行为的",
}


def clause_citation(circumstance: str, rule: str) -> str:
    """The circumstance as a notice cites it: the rule, the item and its words in quotes."""
    n = list(CLAUSES).index(circumstance) + 1
    return f"{rule}第四部分第（四）项第{n}目规定的“{CLAUSES[circumstance]}”情形"


def basis(rule: str) -> str:
    """依据 of a 问责建议书/问责决定: the central rule, the 问责条例 articles (policy) and the
    committee's rule (its 四（四） circumstances and 四（五） who proposes and decides)."""
    articles = str(policy.get("committee_rule", "basis_articles", default="《中国共产党问责条例》"))
    return f"《党委（党组）网络安全工作责任制实施办法》{articles}和{rule}第四部分第（四）项、第（五）项"


def appeal_article() -> str:
    return str(policy.get("committee_rule", "appeal_article", default="《中国共产党问责条例》"))

OBLIGATION_LABELS = {"serve_decision": "送达问责决定", "appeal_window": "申诉期限", "appeal_decision": "申诉处理"}


def _pol(*keys, default=None):
    return policy.get("accountability", *keys, default=default)


# ---------------------------------------------------------------- requests


class CollectiveDecision(BaseModel):
    """领导班子集体决策记录。"""

    model_config = ConfigDict(extra="forbid")
    date: dt.date = Field(title="决策日期")
    participants: list[PersonId] = Field(title="参与决策人员", min_length=1, json_schema_extra=picks("person"))
    dissenters: list[PersonId] = Field(default_factory=list, title="明确表示不同意见的人员",
                                       json_schema_extra=picks("person"))


class ChainRole(LabeledEnum):
    """The role of a person the operator adds to the chain (the chain's own role ids)."""

    involved = "当事人"
    cyber_officer = "网络安全负责人"
    cyber_lead = "主管网络安全的领导班子成员（直接责任人）"
    principal = "主要负责人（第一责任人）"
    supervisor_head = "综合协调或监管部门负责人"
    member = "领导班子其他成员"


class ChainEdit(BaseModel):
    """对倒查链的增删（须说明理由）。"""

    model_config = ConfigDict(extra="forbid")
    person: PersonId = Field(title="人员", json_schema_extra=picks("person"))
    reason: str = Field(title="理由", min_length=1)
    role: ChainRole = Field(default=ChainRole.involved, title="身份",
                            description="增列人员在倒查链中的身份（移出时不填）；默认当事人")

    def as_data(self) -> dict[str, str]:
        return {"person": self.person, "reason": self.reason, "role": self.role.name}


class OpenAccountabilityRequest(Request):
    """立案调查（逐级倒查）：采纳一项问责建议（填写 case_id），或人工立案（填写单位、情形、事实、事实发生日期、当事人）。

    系统按事实发生之日的岗位记录倒查：当事人 → 网络安全负责人 → 主管领导（直接责任人）→ 主要负责人（第一责任人），
    协调监管不力的追加监管部门（未登记监管部门的，为网信办）负责人，上级单位对同一事实的义务同样逾期的逐级上溯；
    区分集体责任和个人责任并给出建议的问责方式：集体决策按决策之日的任职，参与决策的主要负责人和主管网络安全的
    班子成员承担主要领导责任，其他参与者承担重要领导责任，明确表示不同意见的和未参与决策的不承担该项决策的责任。
    """

    FLOW: ClassVar[str] = "open-accountability"

    case_id: CaseId = Field(default="", title="问责建议", description="采纳问责建议时选择（也可填写编号，如 ACC-2026-0001）",
                            json_schema_extra=picks("case:accountability"))
    unit: UnitCode = Field(default="", title="责任单位", description="人工立案时选择", json_schema_extra=picks("unit"))
    circumstance: Circumstance | None = Field(default=None, title="问责情形", description="人工立案时填写（四（四）1–6）")
    facts: str = Field(default="", title="基本事实")
    facts_date: str = Field(default="", title="事实发生日期", description="人工立案时填写；倒查按该日在岗人员",
                            json_schema_extra={"format": "date"})
    involved_persons: list[PersonId] = Field(default_factory=list, title="当事人", json_schema_extra=picks("person"))
    weak_supervision: bool = Field(default=False, title="协调监管不力",
                                   description="勾选则追加监管部门负责人（未登记监管部门的，追加网信办负责人）")
    collective_decision: CollectiveDecision | None = Field(default=None, title="集体决策",
                                                           description="领导班子集体决策：按决策之日的任职认定责任")
    chain_add: list[ChainEdit] = Field(default_factory=list, title="增列人员")
    chain_remove: list[ChainEdit] = Field(default_factory=list, title="移出人员")


class DismissAccountabilityRequest(Request):
    """不予问责：对问责建议作出不予问责的决定（须说明理由）。"""

    FLOW: ClassVar[str] = "dismiss-accountability"

    case_id: CaseId = Field(title="问责建议", json_schema_extra=picks("case:accountability"))
    reason: str = Field(title="理由", min_length=1)


class RecordAccountabilityDecisionRequest(Request):
    """记录有管理权限的党组织作出的问责决定（每人的问责方式），生成《问责决定》并送达；被问责人员每人 1 个月申诉期，
    无人被问责的决定作出即办结。"""

    FLOW: ClassVar[str] = "record-accountability-decision"

    case_id: CaseId = Field(title="问责案件", json_schema_extra=picks("case:accountability"))
    forms: dict[str, list[PersonForm]] = Field(title="问责方式", description="{人员编号: [通报, 诫勉, …]}；空列表为不予问责")
    organisation_forms: list[OrgForm] = Field(default_factory=list, title="对党组织的问责方式")
    decided_by: UnitCode = Field(title="作出决定的党组织", description="有管理权限的党组织（也可填写单位代码，如 JD01）",
                                 json_schema_extra=picks("unit"))
    investigation: str = Field(default="", title="调查核实情况",
                               description="调查组和调查报告，如“纪工委调查组2026年4月15日调查报告”；未经调查的留空，决定不写调查")
    hearing: str = Field(default="", title="陈述和申辩情况",
                         description="听取被问责对象陈述和申辩的情况；未听取的留空，决定不写听取陈述和申辩")


class FileAppealRequest(Request):
    """被问责人员（或被问责党组织）在收到问责决定 1 个月内提出申诉（期限届满后不予受理）；申诉期间不停止决定的执行。"""

    FLOW: ClassVar[str] = "file-appeal"

    case_id: CaseId = Field(title="问责案件", json_schema_extra=picks("case:accountability"))
    person: PersonId = Field(title="申诉人", description="被问责人员；被问责党组织申诉时选择该单位",
                             json_schema_extra=picks("appellant"))
    reason: str = Field(title="申诉理由", min_length=1)


class DecideAppealRequest(Request):
    """作出申诉处理决定（维持或变更原决定），1 个月内办结。"""

    FLOW: ClassVar[str] = "decide-appeal"

    case_id: CaseId = Field(title="问责案件", json_schema_extra=picks("case:accountability"))
    person: PersonId = Field(title="申诉人", description="被问责人员；被问责党组织申诉时选择该单位",
                             json_schema_extra=picks("appellant"))
    upheld: bool = Field(title="维持原决定")
    opinion: str = Field(title="处理意见", min_length=1)
    forms: list[PersonForm] = Field(default_factory=list, title="变更后的问责方式（人员）",
                                    description="不维持原决定时填写；留空为撤销对申诉人的问责")
    organisation_forms: list[OrgForm] = Field(default_factory=list, title="变更后的问责方式（党组织）",
                                              description="党组织申诉且不维持原决定时填写；留空为撤销")


# ---------------------------------------------------------------- the chain and the proposal


def _chain(s: Session, case: Case, *, involved, weak, collective, add=(), remove=()) -> dict[str, Any]:
    facts_date = date.fromisoformat(case.data["facts_date"])
    computed = trace(s, unit=case.unit, facts_date=facts_date, involved=list(involved),
                     weak_supervision=weak, source_id=case.proposed_from)
    edited = apply_edits(s, computed, case.unit, list(add), list(remove), facts_date)
    circumstance = case.data["circumstance"]
    chain = assign_responsibility(s, edited, unit=case.unit, collective=collective, circumstance=circumstance,
                                  removed={e["person"] for e in remove})
    return {"computed_chain": computed, "chain": chain, "organisation_forms": organisation_forms(circumstance)}


def _proposal_lines(d: dict) -> list:
    """What a 问责建议书 proposes: each link with its responsibility and suggested forms, and
    the forms for the organisation."""
    return [(c["person"], c["role"], c["responsibility"], list(c["suggested_forms"]), c["vacant"])
            for c in d.get("chain", [])] + [d.get("organisation_forms", [])]


def _proposal_notice(step: Step, *, today: date, draft: bool = False, edited: bool = False) -> None:
    """问责建议书 (a 请示 from the 网信办 to the 党工委, copy to the 纪工委).

    ``draft``: an automatic proposal is a draft awaiting the 网信办's confirmation: no 文号,
    no 签发人, sent to the 网信办 only. Accepting it (open-accountability) issues the
    建议书 itself, numbered and signed; ``edited`` when the investigation changed the chain."""
    s, case = step.s, step.case
    unit = get_unit(s, case.unit)
    office = role_unit(s, case.unit, "office", today)
    committee = committee_unit(s, case.unit)
    discipline = role_unit(s, case.unit, "discipline", today)
    if office is None or committee is None:
        raise DomainError(f"单位 {case.unit} 找不到网信办或党工委，无法提出问责建议")
    signer = holders(s, office.code, "principal", today) or holders(s, office.code, "office", today)
    if draft:
        recipients = list(dict.fromkeys(signer + holders(s, office.code, "office", today)))
    else:
        recipients = holders(s, committee.code, "principal", today)
        if discipline is not None:
            recipients += holders(s, discipline.code, "discipline", today)
    d = case.data
    rule = committee_rule()
    step.notice(
        "accountability_proposal", issuer=office, recipients=recipients,
        title=f"关于建议对{unit.name}有关责任人员进行问责的请示{'（草稿）' if draft else ''}",
        main_to=committee.name, draft=draft,
        signer="" if draft else (get_person(s, signer[0]).name if signer else office.name),
        cc=[discipline.name] if discipline else [],
        context={"unit_name": unit.name, "draft": draft, "edited": edited,
                 "source": document_reference(s, case.proposed_from) if case.proposed_from else "",
                 "circumstance": clause_citation(d["circumstance"], rule),
                 "clause_note": _clause_note(d), "facts": d["facts"],
                 "facts_date": cn_date(date.fromisoformat(d["facts_date"])),
                 "chain": [{"name": c["name"] or "", "role_label": c["role_label"], "responsibility": c["responsibility"],
                            "vacant": c["vacant"], "note": c["note"]} for c in d["chain"]],
                 "suggested_forms": [{"target": c["name"], "forms": c["suggested_forms"]}
                                     for c in d["chain"] if c["suggested_forms"]]
                 + ([{"target": unit.name, "forms": d["organisation_forms"]}] if d["organisation_forms"] else []),
                 "basis": basis(rule)},
    )


def _clause_note(d: dict) -> str:
    """What the records cannot show about the clause: an overdue rectification meets 四（四）4
    only 并造成严重后果, which the investigation has to establish."""
    if d["circumstance"] == "c4_concealment_or_unrectified" and d.get("source_kind") == "rectification":
        return "是否造成严重后果，须经调查核实认定"
    return ""


def proposal_key(source_id: str, circumstance: str) -> str:
    return f"proposal:{source_id}:{circumstance}"


def propose(s: Session, *, source: Case, circumstance: str, facts: str, facts_date: date,
            involved: list[str] = (), flow_run_id: str | None = None) -> Case | None:
    """Create the proposal (state ``proposed``) inside the caller's transaction, once per
    (source case, circumstance), with a preliminary chain and the 问责建议书. Returns None
    when it already exists (checked, and guarded by a unique key under concurrency)."""
    key = proposal_key(source.id, circumstance)
    if s.exec(select(Case.id).where(Case.dedupe_key == key)).first():
        return None

    def effect(step: Step) -> None:
        case = step.case
        case.proposed_from, case.dedupe_key = source.id, key
        case.data = {"circumstance": circumstance, "facts": facts, "facts_date": facts_date.isoformat(),
                     "source_kind": source.kind, "involved_persons": list(involved)}
        case.data = {**case.data, **_chain(s, case, involved=involved, weak=False, collective=None)}
        _proposal_notice(step, today=local(step.recorded_at).date(), draft=True)

    label = Circumstance[circumstance].value
    try:
        with s.begin_nested():
            result = transition(MACHINE, "propose", actor="system", unit=source.unit, effect=effect,
                                title=f"{get_unit(s, source.unit).name}：{label.split('（')[0]}",
                                classified=source.classified, flow_run_id=flow_run_id, session=s,
                                payload={"proposed_from": source.id, "circumstance": circumstance})
    except IntegrityError:  # another transaction created it first
        return None
    return result.case


@reactions.on("rectification.unrectified")
def propose_for_unrectified(step: Step, *, facts: str, facts_date: date) -> Case | None:
    """A 整改 not done at the end of its ladder: the c4 proposal (SPEC 3.4)."""
    return propose(step.s, source=step.case, circumstance="c4_concealment_or_unrectified",
                   facts=facts, facts_date=facts_date)


@reactions.on("incident.facts")
def evaluate_incident(step: Step) -> list[str]:
    """The automatic proposals an incident's facts call for (c1–c4); returns the new ids."""
    case = step.case
    d = case.data
    step.s.flush()
    missed = {o.kind for o in step.obligations() if o.status == ObligationStatus.missed}
    large = d["level"] in _pol("large_levels")
    category = d["category"]
    wanted = []
    if category == "defacement" and missed & {"internal_report", "external_report", "handling"}:
        wanted.append(("c1_defacement_unreported", f"门户网站被攻击篡改，{_missed_text(missed)}"))
    if category == "secret_leak" or (category in ("personal_info_leak", "basic_data_leak") and large):
        wanted.append(("c2_data_leak", "发生国家秘密泄露，或较大及以上的个人信息、基础数据泄露"))
    if category == "cii_attack" and "handling" in missed and large:
        wanted.append(("c3_cii_attack_unhandled", "关键信息基础设施遭受攻击，未在时限内处置"))
    # 瞒报: recorded by an update, or set at the report when it came after the external deadline
    # (a late external report by a unit that reported in time is 迟报, escalated by the sweep)
    if d.get("concealed"):
        wanted.append(("c4_concealment_or_unrectified", "超过对外报告时限才报告事件（瞒报）"
                       if d.get("concealed_by") == "late_report" else "经查存在瞒报"))
    created = []
    facts_date = local(parse_time(d["discovered_at"])).date()
    for circumstance, why in wanted:
        facts = f"{case.title}（{_level_text(d['level'])}）：{why}。{d.get('description', '')}"
        acc = propose(step.s, source=case, circumstance=circumstance, facts=facts, facts_date=facts_date,
                      involved=d.get("involved_persons", []))
        if acc is not None:
            created.append(acc.id)
    if created:
        step.payload["proposals"] = created
    return created


def _missed_text(missed: set[str]) -> str:
    return "、".join(L[k] for k in ("internal_report", "external_report", "handling") if k in missed) + "逾期"


def _level_text(level: str) -> str:
    return IncidentLevel[level].value


# ---------------------------------------------------------------- operator actions


def _check_persons(s: Session, ids, field: str) -> None:
    for i, pid in enumerate(ids):
        get_person(s, pid, f"{field}[{i}]")


def open_case(req: OpenAccountabilityRequest, flow_run_id: str | None = None) -> Result:
    """Accept a proposal (case_id) or open a manual case; compute the chain (逐级倒查)."""
    collective = req.collective_decision.model_dump(mode="json") if req.collective_decision else None
    add = [e.as_data() for e in req.chain_add]
    remove = [{"person": e.person, "reason": e.reason} for e in req.chain_remove]
    if collective and not set(collective["dissenters"]) <= set(collective["participants"]):
        raise DomainError("明确表示不同意见的人员必须是参与决策的人员", "collective_decision.dissenters")

    def investigate(step: Step) -> None:
        s, case = step.s, step.case
        _check_persons(s, req.involved_persons, "involved_persons")
        if collective:
            _check_persons(s, collective["participants"], "collective_decision.participants")
            decided_on = date.fromisoformat(collective["date"])
            if decided_on > local(step.recorded_at).date():
                raise DomainError(f"集体决策日期 {cn_date(decided_on)} 晚于今天", "collective_decision.date")
        _check_persons(s, [e["person"] for e in add], "chain_add")
        involved = list(dict.fromkeys([*case.data.get("involved_persons", []), *req.involved_persons]))
        chained = _chain(s, case, involved=involved, weak=req.weak_supervision, collective=collective,
                         add=add, remove=remove)
        in_chain = {c["person"] for c in chained["computed_chain"]} | set((collective or {}).get("participants", []))
        for i, e in enumerate(remove):
            if e["person"] not in in_chain:
                raise DomainError(f"人员 '{e['person']}' 不在倒查链中，无法移出", f"chain_remove[{i}]")
        for i, e in enumerate(add):
            if e["person"] in in_chain and e["person"] not in {r["person"] for r in remove}:
                raise DomainError(f"人员 '{e['person']}' 已在倒查链中，无需增列", f"chain_add[{i}]")
        case.data = {**case.data, **chained, "involved_persons": involved, "weak_supervision": req.weak_supervision,
                     "collective_decision": collective, "chain_edits": {"add": add, "remove": remove},
                     "opened_at": iso(step.effective_at)}
        step.payload["chain"] = [[c["person"], c["role"], c["responsibility"]] for c in case.data["chain"]]
        # what the chain rests on, in the audit record too: the operator's edits with their
        # reasons, the weak-supervision flag and the collective decision
        step.payload["chain_basis"] = {"edits": {"add": add, "remove": remove}, "weak_supervision": req.weak_supervision,
                                       "collective_decision": collective}

    if req.case_id:
        if req.unit or req.circumstance or req.facts or req.facts_date:
            raise DomainError("采纳问责建议时不填写单位、情形、事实和日期（这些来自问责建议）", "case_id")

        def accept(step: Step) -> None:
            listed = _proposal_lines(step.case.data)
            investigate(step)
            # the draft confirmed: the 建议书 itself, numbered and signed (noting any change)
            _proposal_notice(step, today=local(step.recorded_at).date(),
                             edited=_proposal_lines(step.case.data) != listed)

        return transition(MACHINE, "accept", actor=req.actor, case_id=req.case_id,
                          effective_at=req.effective_time(), effect=accept, flow_run_id=flow_run_id)
    for name in ("unit", "circumstance", "facts", "facts_date"):
        if not getattr(req, name):
            raise DomainError("人工立案须填写（或填写 case_id 采纳问责建议）", name)
    try:
        facts_date = date.fromisoformat(req.facts_date)
    except ValueError:
        raise DomainError(f"'{req.facts_date}' 不是日期（YYYY-MM-DD）", "facts_date") from None

    def manual(step: Step) -> None:
        if facts_date > local(step.recorded_at).date():
            raise DomainError(f"事实发生日期 {cn_date(facts_date)} 晚于今天", "facts_date")
        step.case.data = {"circumstance": req.circumstance.name, "facts": req.facts,
                          "facts_date": facts_date.isoformat(), "source_kind": None}
        investigate(step)
        _proposal_notice(step, today=local(step.recorded_at).date())

    return transition(MACHINE, "open", actor=req.actor, unit=req.unit, effective_at=req.effective_time(),
                      effect=manual, flow_run_id=flow_run_id, title=f"{req.unit}：{req.circumstance.value.split('（')[0]}",
                      payload={"circumstance": req.circumstance.name})


def dismiss(req: DismissAccountabilityRequest, flow_run_id: str | None = None) -> Result:
    def effect(step: Step) -> None:
        step.case.data = {**step.case.data, "dismissed": {"reason": req.reason, "at": iso(step.effective_at), "by": step.actor}}

    return transition(MACHINE, "dismiss", actor=req.actor, case_id=req.case_id, effective_at=req.effective_time(),
                      effect=effect, flow_run_id=flow_run_id, payload={"reason": req.reason})


def decide(req: RecordAccountabilityDecisionRequest, flow_run_id: str | None = None) -> Result:
    """问责决定: forms per person (may differ from the suggestion; both kept), the 问责决定
    notice to each person named, `serve_decision` and one `appeal_window` per person. The
    notice states an investigation or a hearing only when the request records one."""
    def effect(step: Step) -> None:
        s, case = step.s, step.case
        authority = get_unit(s, req.decided_by, "decided_by")
        chain = [dict(c) for c in case.data["chain"]]
        named = {c["person"]: c for c in chain if c["person"]}
        for pid in req.forms:
            if pid not in named:
                get_person(s, pid, f"forms.{pid}")
                raise DomainError(f"人员 '{pid}' 不在本案倒查链中；可填写：{', '.join(named)}", f"forms.{pid}")
        persons = []
        for c in chain:
            forms = [f.value for f in req.forms.get(c["person"], [])] if c["person"] else []
            c["decided_forms"] = forms
            persons.append(c)
        cal = calendar(s)
        decision = {"decided_by": authority.code, "decided_at": iso(step.effective_at), "in_force": True,
                    "persons": {c["person"]: {"forms": c["decided_forms"], "suggested": c["suggested_forms"],
                                              "responsibility": c["responsibility"]} for c in persons if c["person"]},
                    "organisation_forms": [f.value for f in req.organisation_forms],
                    "suggested_organisation_forms": case.data.get("organisation_forms", [])}
        case.data = {**case.data, "chain": chain, "decision": decision, "appeals": {}}
        step.open("serve_decision", add_working_days(step.effective_at, _pol("serve_decision_working_days"), cal),
                  role="principal", unit=authority.code, next_action_at=step.recorded_at)
        # from the decision date for now; each person's is moved to their receipt by the sweep
        window = add_months(step.effective_at, _pol("appeal_window_months"), cal)
        opened = [step.open("appeal_window", window, role="", data={"person": pid})
                  for pid in appellants(decision, case.unit)]
        if not opened:  # nobody may appeal: nothing to wait for (serve_decision is still swept)
            step.next_state = "closed"
        dissenters = set((case.data.get("collective_decision") or {}).get("dissenters", []))
        unit = get_unit(s, case.unit)
        d = case.data
        rule = committee_rule()
        recipients = list(decision["persons"])  # each person the decision names (a dissenter is told too)
        step.notice(
            "accountability_decision", issuer=authority, recipients=recipients,
            title=f"关于对{unit.name}有关责任人员问责的决定", main_to=unit.name,
            context={"unit_name": unit.name, "proposal": _confirmed_proposal(s, case.id),
                     "circumstance": clause_citation(d["circumstance"], rule), "facts": d["facts"],
                     "facts_date": cn_date(date.fromisoformat(d["facts_date"])), "decided_by_name": authority.name,
                     "decision_date": cn_date(step.effective_at),
                     "investigation": req.investigation.strip(), "hearing": req.hearing.strip(),
                     "persons": [{"name": c["name"] or "", "role_label": c["role_label"],
                                  "responsibility": c["responsibility"], "forms": c["decided_forms"],
                                  "suggested_forms": c["suggested_forms"], "vacant": c["vacant"],
                                  "dissented": c["person"] in dissenters,
                                  "differs": c["decided_forms"] != c["suggested_forms"]} for c in persons],
                     "organisation_forms": decision["organisation_forms"],
                     "appeal_to": authority.name, "appeal_article": appeal_article(), "basis": basis(rule)},
        )
        decision["investigation"], decision["hearing"] = req.investigation.strip(), req.hearing.strip()
        step.payload["forms"] = {pid: p["forms"] for pid, p in decision["persons"].items()}

    return transition(MACHINE, "decide", actor=req.actor, case_id=req.case_id, effective_at=req.effective_time(),
                      effect=effect, flow_run_id=flow_run_id, payload={"decided_by": req.decided_by},
                      scope={"decided_by": req.decided_by})


def _confirmed_proposal(s: Session, case_id: str) -> str:
    """《title》（文号） of the case's signed 问责建议书, '' when none was issued."""
    row = s.exec(select(Notice.title, Notice.doc_number).where(
        Notice.case_id == case_id, Notice.kind == "accountability_proposal", Notice.doc_number.is_not(None))
        .order_by(Notice.issued_at.desc(), Notice.id.desc())).first()
    return f"《{row[0]}》（{row[1]}）" if row else ""


def imposes_accountability(decision: dict | None) -> bool:
    """A decision that holds someone accountable: a form for a person or for the organisation
    (a decision that gives nobody a form is 不予问责 in substance)."""
    return bool(decision) and (bool(decision.get("organisation_forms"))
                               or any(p.get("forms") for p in decision.get("persons", {}).values()))


def appellants(decision: dict, unit: str) -> list[str]:
    """Who may appeal a decision: each person given a form, and the organisation (its unit
    code) when it was given one (被问责党组织、被问责领导干部)."""
    return [pid for pid, p in decision["persons"].items() if p["forms"]] + (
        [unit] if decision.get("organisation_forms") else [])


def appeal_last_day(due_at: dt.datetime) -> date:
    """The last day of an appeal window due at ``due_at`` (24:00 of that day): the date the
    decision prints and the date a late appeal is told."""
    return due_day(due_at)


def _late(window: Obligation) -> str:
    return f"申诉期限已于 {cn_date(appeal_last_day(window.due_at))}（当日24时）届满，不能再提出申诉"


def _person_obligation(step: Step, kind: str, person: str) -> Obligation | None:
    rows = [o for o in step.obligations(kind) if o.data.get("person") == person]
    return rows[-1] if rows else None


def appeal(req: FileAppealRequest, flow_run_id: str | None = None) -> Result:
    """申诉 within the person's window; the decision stays in force."""
    def effect(step: Step) -> None:
        d = step.case.data
        named = appellants(d["decision"], step.case.unit)
        if req.person not in named:
            raise DomainError(f"'{req.person}' 不是本问责决定的被问责人员或党组织；可以申诉的：{', '.join(named) or '无'}",
                              "person")
        if req.person in d.get("appeals", {}):
            raise DomainError(f"{req.person} 已于 {d['appeals'][req.person]['filed_at']} 提出申诉", "person")
        window = _person_obligation(step, "appeal_window", req.person)
        if step.effective_at > window.due_at:
            raise DomainError(_late(window), "effective_at")
        step.meet(window)
        step.open("appeal_decision", add_months(step.effective_at, _pol("appeal_decision_months"), calendar(step.s)),
                  role="principal", unit=d["decision"]["decided_by"], data={"person": req.person})
        appeals = {**d.get("appeals", {}), req.person: {"reason": req.reason, "filed_at": iso(step.effective_at),
                                                         "status": "pending"}}
        step.case.data = {**d, "appeals": appeals}

    return transition(MACHINE, "appeal", actor=req.actor, case_id=req.case_id, effective_at=req.effective_time(),
                      effect=effect, flow_run_id=flow_run_id, payload={"person": req.person, "reason": req.reason},
                      scope={"appellant": req.person})


def _pending_appeals(step: Step) -> bool:
    return any(a["status"] == "pending" for a in step.case.data.get("appeals", {}).values())


def decide_appeal(req: DecideAppealRequest, flow_run_id: str | None = None) -> Result:
    def effect(step: Step) -> None:
        d = step.case.data
        pending = d.get("appeals", {}).get(req.person)
        if not pending or pending["status"] != "pending":
            raise DomainError(f"{req.person} 没有待处理的申诉", "person")
        decision = dict(d["decision"])
        organisation = req.person not in decision["persons"]  # the organisation's appeal (unit code)
        if req.upheld and (req.forms or req.organisation_forms):
            raise DomainError("维持原决定时不填写变更后的问责方式", "organisation_forms" if req.organisation_forms else "forms")
        if req.forms if organisation else req.organisation_forms:
            raise DomainError("党组织申诉填写 organisation_forms，个人申诉填写 forms",
                              "forms" if organisation else "organisation_forms")
        step.meet(_person_obligation(step, "appeal_decision", req.person))
        original = decision["organisation_forms"] if organisation else decision["persons"][req.person]["forms"]
        new = [f.value for f in (req.organisation_forms if organisation else req.forms)]
        appeals = {**d["appeals"], req.person: {**pending, "status": "upheld" if req.upheld else "changed",
                                                "opinion": req.opinion, "decided_at": iso(step.effective_at),
                                                **({} if req.upheld else {"forms": new})}}
        if not req.upheld and organisation:
            decision.update(organisation_forms=new, organisation_forms_before_appeal=original,
                            organisation_changed_by_appeal=req.opinion)
        elif not req.upheld:
            persons = {k: dict(v) for k, v in decision["persons"].items()}
            persons[req.person].update(forms=new, forms_before_appeal=original, changed_by_appeal=req.opinion)
            decision["persons"] = persons
        step.case.data = {**d, "appeals": appeals, "decision": decision}
        step.next_state = "appealed" if _pending_appeals(step) else "closed"
        if not req.upheld:
            step.payload["forms"] = new
        _appeal_decision_notice(step, req, original=original, new=new, organisation=organisation)

    return transition(MACHINE, "decide_appeal", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      payload={"person": req.person, "upheld": req.upheld}, scope={"appellant": req.person})


def _windows_from_receipt(step: Step, rows: list) -> list[str]:
    """申诉 runs 1 month from receiving the decision (自收到本决定之日起): once a person's copy
    is delivered, that person's window is computed again from the first delivery and moved
    when later than the one from the decision date (never shortened). Returns who was done."""
    received: dict[str, dt.datetime] = {}
    for r in rows:
        if r.status == "sent" and r.sent_at is not None:
            received[r.person] = min(received.get(r.person, r.sent_at), r.sent_at)
    done = []
    for w in step.obligations("appeal_window"):
        pid = w.data.get("person")
        if w.status != ObligationStatus.open or pid not in received or "received_at" in w.data:
            continue
        later = add_months(received[pid], _pol("appeal_window_months"), calendar(step.s))
        if later.due_at > w.due_at:
            w.set_deadline(later)
            w.next_action_at = later.due_at
        w.data = {**w.data, "received_at": iso(received[pid])}
        step.s.add(w)
        done.append(pid)
    if done:
        step.payload["windows_from_receipt"] = done
    return done


def _appeal_overdue_reminder(step: Step, ob: Obligation) -> None:
    """An appeal left undecided past its month: a 督办提醒 to the deciding organisation's
    principal (internal, unnumbered: the organisation owes the decision itself; once, the
    obligation is then missed)."""
    s, on = step.s, local(step.recorded_at).date()
    authority = get_unit(s, ob.unit)
    person = ob.data.get("person", "")
    who = f"{get_person(s, person).name}同志" if s.get(Person, person) else get_unit(s, person).name
    step.remind(ob, issuer=authority, recipients=holders(s, authority.code, "principal", on), unit_name=authority.name,
                label="处理", internal=True, subject=f"{who}申诉",
                requirement="请尽快作出申诉处理决定，并以书面形式告知申诉人及其所在党组织")


def _appeal_decision_notice(step: Step, req: DecideAppealRequest, *, original: list[str], new: list[str],
                            organisation: bool) -> None:
    """申诉处理决定 from the deciding organisation to the appellant (for an organisation: its
    principal), as the 问责决定 promised (并告知申诉人)."""
    s, d = step.s, step.case.data
    authority = get_unit(s, d["decision"]["decided_by"])
    on = local(step.recorded_at).date()
    if organisation:
        appellant = get_unit(s, req.person).name
        recipients = holders(s, req.person, "principal", on)
        parent = get_unit(s, req.person).parent  # an organisation's own 党组织 is itself: copy its parent
        party = [get_unit(s, parent).name] if parent else []
    else:
        appellant = f"{get_person(s, req.person).name}同志"
        recipients = [req.person]
        decided_on = local(parse_time(d["decision"]["decided_at"])).date()
        party = list(dict.fromkeys(get_unit(s, post.unit).name for post in posts_of(s, req.person, decided_on)))
        party = party or [get_unit(s, step.case.unit).name]
    filed = d["appeals"][req.person]
    step.notice(
        "appeal_decision", issuer=authority, recipients=recipients,
        title=f"关于{appellant}申诉的处理决定", main_to=appellant, cc=party,
        context={"decision_ref": _decision_ref(s, step.case.id), "appellant": appellant,
                 "decided_by_name": authority.name,
                 "decision_date": cn_date(parse_time(d["decision"]["decided_at"])), "original_forms": original,
                 "filed_date": cn_date(parse_time(filed["filed_at"])), "reason": filed["reason"],
                 "upheld": req.upheld, "new_forms": new, "opinion": req.opinion},
    )


def _decision_ref(s: Session, case_id: str) -> str:
    """《title》（文号） of the case's 问责决定."""
    row = s.exec(select(Notice.title, Notice.doc_number).where(
        Notice.case_id == case_id, Notice.kind == "accountability_decision").order_by(Notice.issued_at)).first()
    if row is None:
        return "问责决定"
    return f"《{row[0]}》" + (f"（{row[1]}）" if row[1] else "")


# ---------------------------------------------------------------- the sweep


def escalate(ob_id: int, case_id: str, flow_run_id: str | None = None, session=None) -> Result | None:
    """serve_decision: met once every notification of the decision was delivered (checked
    each sweep), missed at its due time; appeal_window: closes unused at its end (the case
    closes when no window or appeal remains); appeal_decision: missed at its due time."""
    def effect(step: Step) -> None:
        ob = lock_due_obligation(step, ob_id)
        s, now = step.s, step.recorded_at
        if ob.kind == "serve_decision":
            notice = s.exec(select(Notice).where(Notice.case_id == step.case.id,
                                                 Notice.kind == "accountability_decision")).first()
            rows = s.exec(select(Notification).where(Notification.notice_id == notice.id)).all() if notice else []
            moved = _windows_from_receipt(step, rows)
            if rows and all(r.status == "sent" for r in rows):
                step.meet(ob, max(r.sent_at for r in rows))
                step.event_type = "decision_served"
            elif now >= ob.due_at:
                step.miss(ob, "问责决定未能全部送达")
                ob.next_action_at = None
                step.event_type = "serve_decision_missed"
            elif moved:  # some received it: their windows now run from receipt
                step.event_type = "appeal_windows_from_receipt"
            else:  # not yet delivered: look again next sweep, write nothing
                raise Skip
        elif ob.kind == "appeal_window":
            ob.status, ob.next_action_at = ObligationStatus.waived, None
            ob.data = {**ob.data, "closed_unused_at": iso(now)}
            step.event_type = "appeal_window_closed"
            step.s.flush()
            if step.case.state == "decided" and not any(
                    o.status == ObligationStatus.open for o in step.obligations("appeal_window")):
                step.next_state = "closed"
        else:
            step.miss(ob)
            ob.next_action_at = None
            step.event_type = f"{ob.kind}_missed"
            if ob.kind == "appeal_decision":
                _appeal_overdue_reminder(step, ob)

    return transition(MACHINE, "escalate", actor="system", case_id=case_id, effect=effect,
                      flow_run_id=flow_run_id, session=session)
