"""Rectification of notified risks (限期整改), SPEC 3.2: requests, the state machine, the
deadlines and the escalation ladder (临期提醒 → 催办 → 约谈 → 问责建议).

Where is the 约谈 step decided? Here: ``ladders()`` below, with its figures in the policy file.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import ClassVar

from pydantic import Field

from models import ladder, policy, reactions
from models.case import Case, Obligation, ObligationStatus, add_refs, cases_with_ref, rectification_refs
from models.clock import TZ, beijing, cn_date, deadline_text, iso, local, parse_time
from models.deadlines import (
    add_working_days,
    calendar,
    fixed_deadline,
    local_date,
    overdue_by,
    shift_months,
    working_days_after_due,
)
from models.errors import DomainError
from models.incident import unit_leaders
from models.labels import LabeledEnum
from models.ladder import LadderStep, first_action_at
from models.notices import adjustment_notice, document_reference
from models.org import get_person, get_unit, holders, office_unit
from models.requests import TIME_PICKER, CaseId, Request, RequestTime, UnitCode, optional_time, picks
from models.statemachine import Machine, Result, Rule, Step, transition


class RiskLevel(LabeledEnum):
    high = "高风险（3个工作日）"
    medium = "中风险（10个工作日）"
    low = "低风险（30个工作日）"


STATES = {"notified": "已下发整改通知", "acknowledged": "已签收", "submitted": "已报送整改报告", "closed": "已销号"}
OPEN_STATES = ("notified", "acknowledged")

MACHINE = Machine(
    kind="rectification",
    id_prefix="RECT",
    states=STATES,
    rules=(
        Rule("notify", "下发整改通知", (), "notified"),
        Rule("acknowledge", "签收", ("notified",), "acknowledged", meets=("acknowledge",)),
        Rule("submit", "报送整改报告", ("acknowledged",), "submitted", meets=("rectify",)),
        Rule("verify_pass", "验收通过（销号）", ("submitted",), "closed", meets=("verify",)),
        Rule("verify_fail", "验收不通过（退回重新整改）", ("submitted",), "acknowledged", meets=("verify",)),
        Rule("request_extension", "申请延期", OPEN_STATES, None),
        Rule("decide_extension", "审批延期申请", OPEN_STATES, None),
        Rule("escalate", "逾期督办", tuple(STATES), None, system_only=True),
    ),
)

OBLIGATION_LABELS = {"acknowledge": "签收整改通知", "rectify": "完成整改并报送整改报告", "verify": "复核验收"}


# ---------------------------------------------------------------- requests


class NotifyRiskRequest(Request):
    """下发整改通知（限期整改）。

    上级通报或检查发现的问题，向责任单位下发《整改通知》（带发文字号），开启签收（1个工作日）和
    整改（高/中/低风险 3/10/30 个工作日，或指定期限）时限；逾期按阶梯催办、约谈直至提出问责建议。
    """

    FLOW: ClassVar[str] = "notify-risk"

    unit: UnitCode = Field(title="责任单位", description="单位（也可填写单位代码，如 SQ03）", json_schema_extra=picks("unit"))
    source: str = Field(title="问题来源", description="上级通报文号或检查名称", min_length=1)
    risk_level: RiskLevel = Field(title="风险等级")
    problem: str = Field(title="问题描述", min_length=1)
    problem_code: str = Field(default="", title="问题编码", description="同一单位 12 个月内同一编码再次出现将标注为重复发生")
    requirement: str = Field(title="整改要求", min_length=1)
    due_at: str = Field(default="", title="指定整改期限", description="北京时间；留空按风险等级计算",
                        json_schema_extra=TIME_PICKER)
    issuer: UnitCode = Field(default="", title="下发单位", description="留空为责任单位所属街道网信办",
                             json_schema_extra=picks("unit"))


class AcknowledgeRiskRequest(Request):
    """签收整改通知。"""

    FLOW: ClassVar[str] = "acknowledge-risk"

    case_id: CaseId = Field(title="整改事项", description="办理中的整改（也可填写整改编号，如 RECT-2026-0001）",
                            json_schema_extra=picks("case:rectification"))


class SubmitRectificationRequest(Request):
    """报送整改报告（整改措施和佐证材料），等待下发单位复核验收。"""

    FLOW: ClassVar[str] = "submit-rectification"

    case_id: CaseId = Field(title="整改事项", json_schema_extra=picks("case:rectification"))
    measures: str = Field(title="整改措施", min_length=1)
    evidence: list[str] = Field(title="佐证材料", description="材料编号或存放位置，至少一项", min_length=1)


class VerifyRectificationRequest(Request):
    """复核验收：通过则销号；不通过则退回重新整改并重新计算整改期限（可指定新期限）。"""

    FLOW: ClassVar[str] = "verify-rectification"

    case_id: CaseId = Field(title="整改事项", json_schema_extra=picks("case:rectification"))
    passed: bool = Field(title="验收通过")
    opinion: str = Field(title="验收意见", min_length=1)
    new_due_at: str = Field(default="", title="重新整改期限（不通过时可填）",
                            description="北京时间；留空按风险等级重新计算", json_schema_extra=TIME_PICKER)


class RequestExtensionRequest(Request):
    """延期申请：说明理由和申请的新期限，由下发单位审批。"""

    FLOW: ClassVar[str] = "request-extension"

    case_id: CaseId = Field(title="整改事项", json_schema_extra=picks("case:rectification"))
    reason: str = Field(title="延期理由", min_length=1)
    new_due_at: RequestTime = Field(title="申请延至", description="北京时间")


class DecideExtensionRequest(Request):
    """审批延期申请：批准则整改期限顺延、督办阶梯重新开始；不批准则原期限不变。"""

    FLOW: ClassVar[str] = "decide-extension"

    case_id: CaseId = Field(title="整改事项", json_schema_extra=picks("case:rectification"))
    approved: bool = Field(title="批准延期")
    opinion: str = Field(title="审批意见", min_length=1)


# ---------------------------------------------------------------- deadlines and ladder


def _pol(*keys, default=None):
    return policy.get("rectification", *keys, default=default)


def rectify_deadline(start: datetime, level: str, cal):
    return add_working_days(start, _pol("rectify_working_days")[level], cal)


def ladders() -> dict:
    """The escalation ladders of rectification obligations (figures: policy file)."""
    ladder = _pol("ladder")
    return {
        "rectify": [
            LadderStep(1, "reminder", "临期提醒",
                       lambda ob, cal: add_working_days(ob.due_at, -ladder["reminder_before_due_working_days"], cal).due_at,
                       _reminder("reminder", ("cyber_officer",))),
            LadderStep(2, "urge", "催办", lambda ob, cal: ob.due_at,
                       _reminder("urge", ("cyber_officer", "cyber_lead")), marks_missed=True),
            LadderStep(3, "interview", "约谈",
                       lambda ob, cal: working_days_after_due(ob.due_at, ladder["interview_after_due_working_days"], cal).due_at,
                       _interview, marks_missed=True),
            LadderStep(4, "proposal", "问责建议",
                       lambda ob, cal: working_days_after_due(ob.due_at, ladder["proposal_after_due_working_days"], cal).due_at,
                       _proposal, marks_missed=True),
        ],
        "acknowledge": [LadderStep(1, "urge", "催签收", lambda ob, cal: ob.due_at,
                                   _reminder("acknowledge", ("cyber_officer",)), marks_missed=True)],
        "verify": [LadderStep(1, "urge", "催验收", lambda ob, cal: ob.due_at,
                              _reminder("verify", ("office",)), marks_missed=True)],
    }


def escalate(ob_id: int, case_id: str, flow_run_id: str | None = None, session=None) -> Result | None:
    return ladder.escalate(MACHINE, ladders(), ob_id, case_id, flow_run_id, session)


def _issuer(step: Step):
    return get_unit(step.s, step.case.data["issuer"])


def _ladder_context(step: Step, ob: Obligation, implied) -> dict:
    unit = get_unit(step.s, step.case.unit)
    return {"unit_name": unit.name, "problem": step.case.data["problem"], "notice_ref": document_reference(step.s, step.case.id),
            "due_at": deadline_text(ob.due_at), "overdue_by": overdue_by(ob.due_at, step.recorded_at),
            "implied": [ls.label for ls in implied]}


def _reminder(stage: str, roles: tuple[str, ...]):
    requirements = {
        "reminder": "整改期限即将届满，请抓紧完成整改并按时报送整改报告",
        "urge": "已超过整改期限，请立即完成整改并报送整改报告，逾期将约谈单位主要负责人",
        "acknowledge": "请立即签收整改通知",
        "verify": "请及时对整改报告进行复核验收",
    }

    def act(step: Step, ob: Obligation, implied) -> None:
        s, on = step.s, local(step.recorded_at).date()
        issuer = _issuer(step)
        unit_name = get_unit(s, step.case.unit).name
        if stage == "verify":  # the issuer's own action: a 督办提醒 to its verifiers, not a 通知 to itself
            verifiers = [p for r in roles for p in holders(s, issuer.code, r, on)]
            step.remind(ob, issuer=issuer, recipients=list(dict.fromkeys(verifiers)), unit_name=issuer.name,
                        label=OBLIGATION_LABELS[ob.kind], internal=True, requirement=requirements[stage],
                        subject=f"{unit_name}整改报告")
            return
        recipients = [p for r in roles for p in holders(s, step.case.unit, r, on)]
        ctx = _ladder_context(step, ob, implied)
        if stage == "reminder":
            ctx["overdue_by"] = ""
            ctx["remaining"] = overdue_by(step.recorded_at, ob.due_at)
        else:
            ctx["remaining"] = ""
        step.notice(
            "rectification_reminder", issuer=issuer, recipients=list(dict.fromkeys(recipients)),
            title=(f"关于提醒{unit_name}按时{OBLIGATION_LABELS[ob.kind]}的通知" if stage == "reminder"
                   else f"关于督促{unit_name}{OBLIGATION_LABELS[ob.kind]}的通知"),
            main_to=unit_name,
            context={**ctx, "stage": stage, "obligation_label": OBLIGATION_LABELS[ob.kind],
                     "requirement": requirements[stage], "step": ob.step + 1 + len(implied),
                     "calendar_unconfirmed": ob.calendar_unconfirmed},
        )

    return act


def _interview(step: Step, ob: Obligation, implied) -> None:
    """约谈通知 to the unit's principal (as of today); a vacant post falls to the cyber_lead."""
    s, on = step.s, local(step.recorded_at).date()
    issuer = _issuer(step)
    invited = holders(s, step.case.unit, "principal", on)
    if not invited:
        invited = holders(s, step.case.unit, "cyber_lead", on)
        step.warn(f"{step.case.unit} 主要负责人空缺，约谈通知发给主管网络安全的领导班子成员")
    ctx = _ladder_context(step, ob, implied)
    when = add_working_days(step.recorded_at, _pol("ladder", "interview_within_working_days"), calendar(s))
    step.notice(
        "interview_notice", issuer=issuer, recipients=invited,
        title=f"关于约谈{ctx['unit_name']}主要负责人的通知", main_to=ctx["unit_name"],
        context={**ctx, "principal_name": get_person(s, invited[0]).name if invited else "主要负责人",
                 "interview_time": f"{cn_date(when.due_at - timedelta(seconds=1))}前（具体时间另行通知）",
                 "place": issuer.name, "issuer_name": issuer.name},
    )


def _escalation_record(ob: Obligation) -> str:
    """What the 问责建议 may say of 催办 and 约谈: only the steps actually taken (a notice sent);
    steps skipped while the sweep was not running are named as such, never as done."""
    taken = {e["name"] for e in ob.data.get("ladder", []) if not e.get("implied")}
    labels = {ls.name: ls.label for ls in ladders()["rectify"]}
    done = [labels[n] for n in ("urge", "interview") if n in taken]
    skipped = [labels[n] for n in ("urge", "interview") if n not in taken]
    text = f"经{'、'.join(done)}后仍未整改到位。" if done else ""
    if skipped:
        text += f"{'、'.join(skipped)}环节因督办巡检未运行未能按时进行（已记入督办记录）。"
    return text


def _proposal(step: Step, ob: Obligation, implied) -> None:
    """The ladder's end: the 整改 not done is announced; accountability proposes 问责 (c4)."""
    data = step.case.data
    facts = (f"{_issuer(step).name}以{document_reference(step.s, step.case.id)}通知{get_unit(step.s, step.case.unit).name}"
             f"限期整改“{data['problem'].rstrip('。')}”问题（问题来源：{data['source']}），整改期限为{deadline_text(ob.due_at)}，"
             f"逾期{_ladder_context(step, ob, implied)['overdue_by']}仍未完成整改。{_escalation_record(ob)}")
    for acc in reactions.emit("rectification.unrectified", step, facts=facts,
                              facts_date=local(ob.due_at - timedelta(seconds=1)).date()):  # the due day
        if acc is not None:
            step.payload["proposal"] = acc.id


# ---------------------------------------------------------------- the process core


def recurrence(s, unit: str, code: str, at: datetime, exclude: str | None = None) -> list[Case]:
    """Earlier rectifications of the same problem code at the same unit within the policy's
    months (12: from the same date a year before, Beijing time)."""
    if not code:
        return []
    since = datetime.combine(shift_months(local_date(at), -_pol("recurrence_months", default=12)), time(0), tzinfo=TZ)
    rows = cases_with_ref(s, [f"code:{code.strip()}"], kind="rectification", units=[unit], since=since, until=at)
    return [c for c in rows if c.id != exclude]


def notify(req: NotifyRiskRequest, flow_run_id: str | None = None) -> Result:
    """下发整改通知: open `acknowledge` and `rectify`, issue the 整改通知."""
    override = optional_time(req.due_at, "due_at")
    level = req.risk_level.name

    def effect(step: Step) -> None:
        s, case, eff = step.s, step.case, step.effective_at
        on = local(eff).date()
        unit = get_unit(s, case.unit)
        issuer = get_unit(s, req.issuer, "issuer") if req.issuer else office_unit(s, case.unit, on)
        cal = calendar(s)
        if override is not None:
            if override <= step.recorded_at:
                raise DomainError(f"指定整改期限 {beijing(override)} 不晚于现在 {beijing(step.recorded_at)}", "due_at")
            rectify = fixed_deadline(override, cal)
        else:
            rectify = rectify_deadline(eff, level, cal)
        earlier = recurrence(s, case.unit, req.problem_code, eff)
        case.data = {"source": req.source, "risk_level": level, "problem": req.problem,
                     "problem_code": req.problem_code, "requirement": req.requirement,
                     "issuer": issuer.code, "due_override": iso(override), "extensions": [],
                     "submissions": [], "verifications": [],
                     "recurrence": [c.id for c in earlier]}
        add_refs(s, case.id, rectification_refs(case.data))
        recur_text = ""
        if earlier:
            last = max(earlier, key=lambda c: c.created_at)
            recur_text = (f"该问题（编码 {req.problem_code}）{_pol('recurrence_months', default=12)}个月内"
                          f"在本单位第{len(earlier) + 1}次出现"
                          f"（上次：{document_reference(s, last.id)}，{cn_date(last.created_at)}），属重复发生问题。")
            step.warn(f"重复发生：{recur_text}")
        ack = add_working_days(eff, _pol("acknowledge_working_days"), cal)
        step.open("acknowledge", ack, role="cyber_officer")
        ob = step.open("rectify", rectify, role="cyber_officer")
        ob.next_action_at = first_action_at(ladders()["rectify"], ob, cal)
        if rectify.calendar_unconfirmed:
            step.warn(f"整改期限 {beijing(rectify.due_at)} 所在年度的节假日安排尚未公布，期限按周一至周五计算，可能调整")
        # 抄送 the supervising department (行业主管/监管部门): it then knows of the risk, which
        # is what derived weak supervision (逐级倒查, 协调监管不力) rests on
        supervisor = get_unit(s, unit.supervisor, "supervisor") if unit.supervisor else None
        overseers = holders(s, supervisor.code, "principal", on) if supervisor and supervisor.code != issuer.code else []
        step.notice(
            "rectification_notice", issuer=issuer, cc=[supervisor.name] if overseers else [],
            recipients=list(dict.fromkeys(unit_leaders(s, case.unit, on) + overseers)),
            title=f"关于{unit.name}限期整改网络安全问题的通知", main_to=unit.name,
            context={"unit_name": unit.name, "source": req.source,
                     "risk_level_label": req.risk_level.value.split("（")[0], "problem": req.problem,
                     "problem_code": req.problem_code, "requirement": req.requirement,
                     "acknowledge_due": deadline_text(ack.due_at), "due_at": deadline_text(rectify.due_at),
                     "calendar_unconfirmed": rectify.calendar_unconfirmed, "recurrence": recur_text,
                     "issuer_name": issuer.name,
                     "contact": "、".join(get_person(s, p).name for p in holders(s, issuer.code, "office", on)) or issuer.name},
        )

    return transition(MACHINE, "notify", actor=req.actor, unit=req.unit, effective_at=req.effective_time(),
                      effect=effect, title=req.problem[:60], flow_run_id=flow_run_id,
                      payload={"risk_level": level, "source": req.source}, scope={"issuer": req.issuer})


def acknowledge(req: AcknowledgeRiskRequest, flow_run_id: str | None = None) -> Result:
    return transition(MACHINE, "acknowledge", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), flow_run_id=flow_run_id)


def submit(req: SubmitRectificationRequest, flow_run_id: str | None = None) -> Result:
    """整改报告 meets `rectify` and opens `verify` for the issuer (3 working days)."""
    def effect(step: Step) -> None:
        data = step.case.data
        data["submissions"] = [*data.get("submissions", []), {
            "measures": req.measures, "evidence": list(req.evidence), "at": iso(step.effective_at), "by": step.actor}]
        # a pending 延期申请 lapses: the report is in, and a later rectify (after a failed
        # verification) has its own deadline
        data["extensions"] = [{**e, "status": "lapsed", "note": "已报送整改报告，延期申请不再审批"}
                              if e["status"] == "pending" else e for e in data.get("extensions", [])]
        step.case.data = dict(data)
        step.open("verify", add_working_days(step.effective_at, _pol("verify_working_days"), calendar(step.s)),
                  role="office", unit=data["issuer"])

    return transition(MACHINE, "submit", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id)


def verify(req: VerifyRectificationRequest, flow_run_id: str | None = None) -> Result:
    """复核验收: pass → closed (销号); fail → acknowledged with a new `rectify` deadline (the
    issuer's, or by risk level from the verification)."""
    new_due = optional_time(req.new_due_at, "new_due_at")
    if new_due is not None and req.passed:
        raise DomainError("验收通过即销号，不需要重新整改期限（请留空）", "new_due_at")

    def effect(step: Step) -> None:
        data = step.case.data
        data["verifications"] = [*data.get("verifications", []), {
            "passed": req.passed, "opinion": req.opinion, "at": iso(step.effective_at), "by": step.actor}]
        step.case.data = dict(data)
        if not req.passed:
            cal = calendar(step.s)
            if new_due is not None:
                if new_due <= step.recorded_at:
                    raise DomainError(f"重新整改期限 {beijing(new_due)} 不晚于现在 {beijing(step.recorded_at)}", "new_due_at")
                deadline = fixed_deadline(new_due, cal)
            else:
                deadline = rectify_deadline(step.effective_at, data["risk_level"], cal)
            old = step.obligations("rectify")[-1].due_at if step.obligations("rectify") else None
            ob = step.open("rectify", deadline, role="cyber_officer")
            ob.next_action_at = first_action_at(ladders()["rectify"], ob, cal)
            _deadline_moved(step, f"{cn_date(step.effective_at)}复核验收未通过（{req.opinion.rstrip('。')}），需重新整改，",
                            old, ob.due_at, "请按验收意见重新整改，在调整后的期限内报送整改报告")

    action = "verify_pass" if req.passed else "verify_fail"
    return transition(MACHINE, action, actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      payload={"opinion": req.opinion})


def _open_rectify(step: Step) -> Obligation:
    ob = next((o for o in reversed(step.obligations("rectify")) if o.met_at is None), None)
    if ob is None:
        raise DomainError(f"整改 {step.case.id} 没有未完成的整改义务", "case_id")
    return ob


def _deadline_moved(step: Step, reason: str, old, new, request: str) -> None:
    """期限调整通知 of the rectify deadline, to everyone the 整改通知 went to."""
    unit = get_unit(step.s, step.case.unit).name
    adjustment_notice(step, reason=reason, request=request, items=[{
        "label": OBLIGATION_LABELS["rectify"], "units": [unit],
        "old_due": deadline_text(old) if old else "—", "new_due": deadline_text(new)}])


def request_extension(req: RequestExtensionRequest, flow_run_id: str | None = None) -> Result:
    """延期申请: recorded as pending; the issuer decides."""
    new_due = parse_time(req.new_due_at, "new_due_at")

    def effect(step: Step) -> None:
        data = step.case.data
        if any(e["status"] == "pending" for e in data.get("extensions", [])):
            raise DomainError(f"整改 {step.case.id} 已有待审批的延期申请，请先审批", "case_id")
        ob = _open_rectify(step)
        if step.effective_at >= ob.due_at:
            raise DomainError(
                f"整改期限 {beijing(ob.due_at)} 已过：延期须在期限届满前申请，逾期整改按督办程序处理", "case_id")
        if new_due <= ob.due_at:
            raise DomainError(f"申请的新期限 {beijing(new_due)} 不晚于现整改期限 {beijing(ob.due_at)}", "new_due_at")
        if new_due <= step.recorded_at:
            raise DomainError(f"申请的新期限 {beijing(new_due)} 早于现在", "new_due_at")
        data["extensions"] = [*data.get("extensions", []), {
            "reason": req.reason, "new_due_at": iso(new_due), "old_due_at": iso(ob.due_at),
            "requested_at": iso(step.effective_at), "by": step.actor, "status": "pending"}]
        step.case.data = dict(data)

    return transition(MACHINE, "request_extension", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      payload={"reason": req.reason, "new_due_at": iso(new_due)})


def decide_extension(req: DecideExtensionRequest, flow_run_id: str | None = None) -> Result:
    """Approval moves `rectify.due_at` and restarts its ladder; rejection changes nothing else."""
    def effect(step: Step) -> None:
        extensions = [dict(e) for e in step.case.data.get("extensions", [])]  # copies: JSON history compares values
        pending = [e for e in extensions if e["status"] == "pending"]
        if not pending:
            raise DomainError(f"整改 {step.case.id} 没有待审批的延期申请", "case_id")
        ext = pending[-1]
        new_due = parse_time(ext["new_due_at"])
        current = _open_rectify(step)
        if parse_time(ext["old_due_at"]) != current.due_at:  # defensive: a pending request lapses at submit
            raise DomainError(f"该延期申请针对的整改期限 {beijing(parse_time(ext['old_due_at']))} 已不是现行期限 "
                              f"{beijing(current.due_at)}", "case_id")
        if req.approved and new_due <= step.recorded_at:
            raise DomainError(f"申请的新期限 {beijing(new_due)} 已过，不能批准；请不予批准，由单位重新申请", "approved")
        ext.update(status="approved" if req.approved else "rejected", opinion=req.opinion,
                   decided_at=iso(step.effective_at), decided_by=step.actor)
        step.case.data = {**step.case.data, "extensions": extensions}
        if req.approved:
            ob = _open_rectify(step)
            cal = calendar(step.s)
            ob.set_deadline(fixed_deadline(new_due, cal))
            ob.status, ob.step = ObligationStatus.open, 0
            ob.next_action_at = first_action_at(ladders()["rectify"], ob, cal)
            ob.data = {**ob.data, "extended_from": ext["old_due_at"]}
            step.payload["rectify_due_at"] = ext["new_due_at"]
            _deadline_moved(step, f"经审批，同意{get_unit(step.s, step.case.unit).name}{cn_date(parse_time(ext['requested_at']))}"
                                  f"提出的延期申请（理由：{ext['reason'].rstrip('。')}），",
                            parse_time(ext["old_due_at"]), ob.due_at, "请在调整后的期限内完成整改并报送整改报告")

    return transition(MACHINE, "decide_extension", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      payload={"approved": req.approved, "opinion": req.opinion})
