"""Incident reporting and prompt handling (SPEC 3.1): enums, requests, the state machine
and the level suggestion of the 分级指南. The flow (flows/incident.py) is thin.
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from models import policy, reactions
from models.labels import LabeledEnum
from models.requests import TIME_PICKER, CaseId, PersonId, Request, RequestTime, UnitCode, picks
from models.statemachine import Machine, Rule


class IncidentCategory(LabeledEnum):
    defacement = "门户网站/平台被攻击篡改"
    secret_leak = "国家秘密泄露"
    personal_info_leak = "个人信息泄露"
    basic_data_leak = "地理、人口、资源等基础数据泄露"
    cii_attack = "关键信息基础设施遭受攻击"
    ransomware = "勒索病毒攻击"
    ddos = "拒绝服务攻击（DDoS）"
    malware = "恶意程序感染"
    other = "其他网络安全事件"


class IncidentLevel(LabeledEnum):
    particularly_major = "特别重大（Ⅰ级）"
    major = "重大（Ⅱ级）"
    relatively_major = "较大（Ⅲ级）"
    general = "一般（Ⅳ级）"


# Higher rank = more serious.
LEVEL_RANK = {"general": 0, "relatively_major": 1, "major": 2, "particularly_major": 3}
URGENCY = {"particularly_major": "特急", "major": "特急", "relatively_major": "加急", "general": ""}


class ReporterPath(LabeledEnum):
    cii_operator = "关键信息基础设施运营者（1小时）"
    central_organ = "中央和国家机关及其所属单位（2小时）"
    other = "其他单位，报省级网信部门（4小时）"


REPORT_TO = {
    "cii_operator": "关键信息基础设施保护工作部门及公安机关",
    "central_organ": "本部门（本单位）网信工作机构",
    "other": "省级网信部门",
}

OBLIGATION_LABELS = {
    "internal_report": "内部报告（报街道网信办）",
    "external_report": "对外报告",
    "handling": "事件处置",
    "summary_report": "事件处置总结报告",
}

STATES = {"reported": "已报告", "handling": "处置中", "resolved": "处置完毕", "closed": "已办结"}

MACHINE = Machine(
    kind="incident",
    id_prefix="INC",
    states=STATES,
    rules=(
        Rule("report", "报告事件", (), "reported"),
        Rule("progress", "续报/进展", ("reported", "handling"), "handling"),
        Rule("supplement", "补充报告", ("resolved", "closed"), None),  # e.g. an external report owed after closing
        Rule("resolve", "处置完毕", ("reported", "handling"), "resolved", meets=("handling",)),
        Rule("submit_summary", "提交总结报告", ("resolved",), "closed"),  # meets summary_report in its effect
        Rule("escalate", "逾期督办", tuple(STATES), None, system_only=True),
    ),
)


class ReportIncidentRequest(Request):
    """报告网络安全事件（事件报告）。

    发现事件后立即填写：系统按报告时间判定内部报告是否及时，按级别和报告主体开启对外报告、
    处置时限，生成《事件报告》并通知本单位网络安全负责人、直接责任人、第一责任人和街道网信办。
    """

    FLOW: ClassVar[str] = "report-incident"

    unit: UnitCode = Field(title="发生单位", description="单位（也可填写单位代码，如 SQ03）", json_schema_extra=picks("unit"))
    category: IncidentCategory = Field(title="事件类别")
    level: IncidentLevel = Field(title="事件级别", description="按《网络安全事件分级指南》；系统会按影响数据提示建议级别")
    title: str = Field(title="事件标题", min_length=1, max_length=200)
    description: str = Field(title="事件概况", description="受影响系统、现象、已造成的影响", min_length=1)
    discovered_at: RequestTime = Field(title="发现时间", description="北京时间")
    occurred_at: str = Field(default="", title="发生时间", description="北京时间；尚不清楚的可留空",
                             json_schema_extra=TIME_PICKER)
    reporter_path: ReporterPath = Field(default=ReporterPath.other, title="报告主体", description="决定对外报告时限：1/2/4 小时")
    affected_persons: int = Field(default=0, ge=0, title="涉及人数", description="个人信息/基础数据泄露涉及的人数")
    downtime_hours: float = Field(default=0, ge=0, title="中断时长（小时）")
    spread_views: int = Field(default=0, ge=0, title="有害信息浏览量")
    spread_shares: int = Field(default=0, ge=0, title="有害信息转发量")
    direct_loss_yuan: float = Field(default=0, ge=0, title="直接经济损失（元）")
    measures: str = Field(default="", title="已采取的措施")
    classified: bool = Field(default=False, title="涉密", description="涉密事项只发送不含内容的提醒")
    involved_persons: list[PersonId] = Field(default_factory=list, title="当事人", description="直接涉及的人员",
                                             json_schema_extra=picks("person"))


class UpdateIncidentRequest(Request):
    """续报、处置进展、对外报告已报送或处置完毕。

    填写对外报告时间即视为完成对外报告；勾选“处置完毕”后开启 30 日内报送总结报告的时限。
    """

    FLOW: ClassVar[str] = "update-incident"

    case_id: CaseId = Field(title="事件", description="办理中的事件（也可填写事件编号，如 INC-2026-0001）",
                            json_schema_extra=picks("case:incident"))
    note: str = Field(title="续报内容", min_length=1)
    external_reported_at: str = Field(default="", title="对外报告时间", description="已向上级网信部门报告的时间（北京时间）",
                                      json_schema_extra=TIME_PICKER)
    concealed: bool = Field(default=False, title="经查存在瞒报", description="核实存在封锁、瞒报情况时勾选")
    resolved: bool = Field(default=False, title="处置完毕")


class SubmitIncidentSummaryRequest(Request):
    """报送事件处置总结报告（原因、处置、危害、责任追究、整改和教训），事件办结。"""

    FLOW: ClassVar[str] = "submit-incident-summary"

    case_id: CaseId = Field(title="事件", json_schema_extra=picks("case:incident"))
    cause: str = Field(title="事件原因", min_length=1)
    handling: str = Field(title="处置过程", min_length=1)
    harm: str = Field(title="危害和影响", min_length=1)
    lessons: str = Field(title="责任追究、整改措施和教训", min_length=1)


def figure_text(value: float) -> str:
    """200万, 1.5亿, 0.5: figures as officials write them."""
    if value >= 1e8:
        return f"{value / 1e8:g}亿"
    if value >= 1e4:
        return f"{value / 1e4:g}万"
    return f"{value:g}"


def suggest_level(category: str, figures: dict[str, float]) -> tuple[str, list[str]]:
    """Lowest level the impact figures require, and the reasons (分级指南 thresholds)."""
    best, reasons = "general", []
    for t in policy.get("incident", "level_thresholds", default=[]):
        cats = t.get("categories", "all")
        if cats != "all" and category not in cats:
            continue
        value = figures.get(t["figure"]) or 0
        for level in ("particularly_major", "major", "relatively_major"):
            if level in t and value >= t[level]:
                if LEVEL_RANK[level] > LEVEL_RANK[best]:
                    best = level
                unit = t.get("unit", "")
                reasons.append(f"{t['label']}{figure_text(value)}{unit}，已达{IncidentLevel[level].value}的"
                               f"{figure_text(t[level])}{unit}标准")
                break
    return best, reasons


# ---------------------------------------------------------------- the process core
# Plain functions (no Prefect): flows/incident.py wraps them; tests call them directly.

from models import ladder
from models.case import Case, ObligationStatus  # noqa: E402
from models.clock import TZ, beijing, deadline_text, iso, local, parse_time  # noqa: E402
from models.db import session
from models.deadlines import add_days, add_hours, calendar, overdue_by
from models.errors import DomainError  # noqa: E402
from models.ladder import LadderStep
from models.org import get_person, get_unit, holders, office_unit  # noqa: E402
from models.requests import optional_time  # noqa: E402
from models.statemachine import Result, Step, transition  # noqa: E402

FIGURES = ("affected_persons", "downtime_hours", "spread_views", "spread_shares", "direct_loss_yuan")
#: The impact figures as the 事件报告 prints them: label and unit (``有害信息浏览量：2000次``).
IMPACT_LINES = {
    "affected_persons": ("涉及人数", "人"), "downtime_hours": ("系统中断时长", "小时"),
    "spread_views": ("有害信息浏览量", "次"), "spread_shares": ("有害信息转发量", "次"),
    "direct_loss_yuan": ("直接经济损失", "元"),
}
#: 报告路径 of an incident with an external report, by reporter path: who the unit is (if it
#: matters), and whom it reports to (REPORT_TO).
REPORTER_AS = {"cii_operator": "本单位为关键信息基础设施运营者，", "central_organ": "本单位为中央和国家机关所属单位，",
               "other": ""}


def unit_leaders(s, unit: str, on) -> list[str]:
    """cyber_officer, cyber_lead and principal of a unit on a date (vacant posts skipped)."""
    out: list[str] = []
    for role in ("cyber_officer", "cyber_lead", "principal"):
        out += holders(s, unit, role, on)
    return list(dict.fromkeys(out))


def office_recipients(s, unit: str, on) -> tuple[object, list[str]]:
    """The street 网信办 for a unit, and who there receives notices (its head, else its staff)."""
    office = office_unit(s, unit, on)
    if office is None:
        return None, []
    return office, holders(s, office.code, "principal", on) or holders(s, office.code, "office", on)


def _obligation_state(o, at: datetime) -> str:
    """Where an obligation stands at ``at`` (the notice's time), in words true at that time."""
    if o.status == ObligationStatus.waived:
        return "免除"
    if o.met_at is not None:
        return "按时完成" if o.met_at <= o.due_at else f"逾期{overdue_by(o.due_at, o.met_at)}完成"
    if at > o.due_at:
        return f"已逾期{overdue_by(o.due_at, at)}，尚未完成"
    return "尚未到期"


def _deadline_rows(step: Step) -> list[list[str]]:
    """[label, deadline (its last day or hour, with 前), state at the step's time] per obligation."""
    return [
        [OBLIGATION_LABELS.get(o.kind, o.kind), f"{deadline_text(o.due_at)}前", _obligation_state(o, step.effective_at)]
        for o in step.obligations()
    ]


def _reporting_path(level: str, path: str, external) -> str:
    """报告路径 in one phrase: where and by when a 较大+ incident is reported outside the
    street; a level without an external report is reported internally only."""
    if external is None:
        return f"{IncidentLevel[level].value.split('（')[0]}事件按规定在本单位和街道网信办内部报告"
    hours = policy.get("incident", "external_report_hours")[path]
    return (f"{REPORTER_AS[path]}按规定应于发现后{hours:g}小时内，即{deadline_text(external.due_at)}前，"
            f"报告{REPORT_TO[path]}")


def report(req: ReportIncidentRequest, flow_run_id: str | None = None) -> Result:
    """报告事件: create the case, open its obligations, issue the 事件报告."""
    discovered = req.discovered_at
    if discovered.tzinfo is None:
        discovered = discovered.replace(tzinfo=TZ)
    occurred = optional_time(req.occurred_at, "occurred_at")
    level, category, path = req.level.name, req.category.name, req.reporter_path.name
    figures = {f: getattr(req, f) for f in FIGURES}

    def effect(step: Step) -> None:
        s, case, eff = step.s, step.case, step.effective_at
        if discovered > step.recorded_at:
            raise DomainError(f"发现时间 {beijing(discovered)} 晚于现在 {beijing(step.recorded_at)}", "discovered_at")
        if discovered > eff:
            raise DomainError(f"发现时间 {beijing(discovered)} 晚于报告时间 {beijing(eff)}", "discovered_at")
        if occurred and occurred > discovered:
            raise DomainError(f"发生时间 {beijing(occurred)} 晚于发现时间 {beijing(discovered)}", "occurred_at")
        for i, pid in enumerate(req.involved_persons):
            get_person(s, pid, f"involved_persons[{i}]")
        unit = get_unit(s, case.unit)
        suggested, reasons = suggest_level(category, figures)
        case.data = {
            "category": category, "level": level, "reporter_path": path,
            "description": req.description, "discovered_at": iso(discovered),
            "occurred_at": iso(occurred), "figures": figures,
            "measures": req.measures, "involved_persons": list(req.involved_persons),
            "suggested_level": suggested, "reported_at": iso(eff), "concealed": False,
        }
        if LEVEL_RANK[suggested] > LEVEL_RANK[level]:
            step.warn(f"级别提示：所报级别为{IncidentLevel[level].value}，按分级指南建议至少为"
                      f"{IncidentLevel[suggested].value}：{'；'.join(reasons)}")
        pol = policy.get("incident")
        internal = step.open("internal_report", add_hours(discovered, pol["internal_report_hours"]),
                             role="cyber_officer", next_action_at=None)
        step.meet(internal, eff)
        if internal.status == ObligationStatus.missed:
            step.warn(f"迟报：内部报告时限为{deadline_text(internal.due_at)}前，实际报告于{beijing(eff)}，"
                      f"迟报{overdue_by(internal.due_at, eff)}")
        external = None
        if level in pol["external_report_levels"]:
            external = step.open("external_report", add_hours(discovered, pol["external_report_hours"][path]),
                                 role="cyber_officer", data={"report_to": REPORT_TO[path]})
            if eff > external.due_at:  # SPEC 3.3 c4: first reported after the external deadline = 瞒报
                case.data = {**case.data, "concealed": True, "concealed_by": "late_report"}
                step.warn(f"瞒报：事件首次报告于{beijing(eff)}，已超过对外报告时限（{deadline_text(external.due_at)}前）")
        step.open("handling", add_hours(discovered, pol["handling_hours"][level]), role="cyber_lead")
        on = local(eff).date()
        office, office_people = office_recipients(s, case.unit, on)
        signer = holders(s, case.unit, "principal", on) or holders(s, case.unit, "cyber_lead", on)
        step.notice(
            "incident_report",
            issuer=unit,
            recipients=unit_leaders(s, case.unit, on) + office_people,
            title=f"关于{unit.name}发生{req.category.value}事件的报告",
            main_to=office.name if office else "街道网信办",
            urgency=URGENCY[level],
            signer=get_person(s, signer[0]).name if signer else unit.name,
            context={
                "unit_name": unit.name, "category_label": req.category.value,
                "level_label": req.level.value, "title": req.title, "description": req.description,
                "discovered_at": beijing(discovered), "occurred_at": beijing(occurred) if occurred else "",
                "reporting_path": _reporting_path(level, path, external), "measures": req.measures,
                "impact": [[IMPACT_LINES[f][0], f"{figure_text(v)}{IMPACT_LINES[f][1]}"] for f, v in figures.items() if v],
                "warnings": list(case.warnings), "deadlines": _deadline_rows(step),
                "contacts": [get_person(s, p).name for p in holders(s, case.unit, "cyber_officer", on)],
            },
        )
        evaluate_accountability(step)

    return transition(MACHINE, "report", actor=req.actor, unit=req.unit, effective_at=req.effective_time(),
                      effect=effect, title=req.title, classified=req.classified, flow_run_id=flow_run_id,
                      payload={"level": level, "category": category})


def update(req: UpdateIncidentRequest, flow_run_id: str | None = None) -> Result:
    """续报: record facts; an external report time meets `external_report`; resolution opens
    the 30-day `summary_report`."""
    external_at = optional_time(req.external_reported_at, "external_reported_at")
    state = _state_of(req.case_id)
    action = "resolve" if req.resolved else ("supplement" if state in ("resolved", "closed") else "progress")

    def effect(step: Step) -> None:
        case = step.case
        if external_at:
            if external_at > step.recorded_at:
                raise DomainError(f"对外报告时间 {beijing(external_at)} 晚于现在", "external_reported_at")
            discovered = parse_time(case.data["discovered_at"])
            if external_at < discovered:
                raise DomainError(f"对外报告时间 {beijing(external_at)} 早于发现时间 {beijing(discovered)}",
                                  "external_reported_at")
            ob = step.obligation("external_report")
            if ob is None:
                raise DomainError(f"事件 {case.id} 级别为一般，无对外报告义务", "external_reported_at")
            if ob.met_at is None:
                step.meet(ob, external_at)
                if ob.status == ObligationStatus.missed:
                    step.warn(f"对外报告迟报：时限为{deadline_text(ob.due_at)}前，实际报告于{beijing(external_at)}，"
                              f"迟报{overdue_by(ob.due_at, external_at)}")
        notes = list(case.data.get("updates", []))
        notes.append({"note": req.note, "at": iso(step.effective_at), "by": step.actor})
        case.data = {**case.data, "updates": notes}
        if req.concealed and not case.data.get("concealed"):
            case.data = {**case.data, "concealed": True, "concealed_by": "update"}
            step.warn("经查存在瞒报")
            step.payload["concealed"] = True
        if step.rule.action == "resolve":
            case.data = {**case.data, "resolved_at": iso(step.effective_at)}
            step.open("summary_report",
                      add_days(step.effective_at, policy.get("incident", "summary_report_days"), calendar(step.s)),
                      role="cyber_officer")
        evaluate_accountability(step)

    return transition(MACHINE, action, actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      payload={"note": req.note})


def submit_summary(req: SubmitIncidentSummaryRequest, flow_run_id: str | None = None) -> Result:
    """事件处置总结报告 → closed."""

    def effect(step: Step) -> None:
        s, case = step.s, step.case
        d = case.data
        case.data = {**d, "summary": {
            "cause": req.cause, "handling": req.handling, "harm": req.harm, "lessons": req.lessons}}
        on = local(step.effective_at).date()
        unit = get_unit(s, case.unit)
        office, office_people = office_recipients(s, case.unit, on)
        signer = holders(s, case.unit, "principal", on) or holders(s, case.unit, "cyber_lead", on)
        step.meet(step.obligation("summary_report"))
        external = step.obligation("external_report")
        if external is not None and external.met_at is None:  # still owed after closing: stays on the ledger
            step.warn(f"对外报告尚未录入报告时间（时限为{deadline_text(external.due_at)}前）：事件办结后仍须报告并录入报告时间")
        step.notice(
            "incident_summary", issuer=unit, recipients=office_people + unit_leaders(s, case.unit, on),
            title=f"关于{unit.name}“{case.title}”事件处置情况的总结报告",
            main_to=office.name if office else "街道网信办",
            signer=get_person(s, signer[0]).name if signer else unit.name,
            context={"unit_name": unit.name, "title": case.title,
                     "category_label": IncidentCategory[d["category"]].value,
                     "level_label": IncidentLevel[d["level"]].value,
                     "discovered_at": beijing(parse_time(d["discovered_at"])),
                     "resolved_at": beijing(parse_time(d["resolved_at"])),
                     "cause": req.cause, "handling": req.handling, "harm": req.harm, "lessons": req.lessons,
                     "deadlines": _deadline_rows(step), "warnings": list(case.warnings)},
        )

    return transition(MACHINE, "submit_summary", actor=req.actor, case_id=req.case_id,
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id)


def _state_of(case_id: str) -> str | None:
    with session() as s:
        case = s.get(Case, case_id)
        return case.state if case else None


def _remind(step: Step, ob, implied) -> None:
    """催报通知 from the street 网信办 to the unit's responsible persons."""
    s, case = step.s, step.case
    on = local(step.recorded_at).date()
    office, _ = office_recipients(s, case.unit, on)
    if office is None:
        raise DomainError(f"单位 {case.unit} 找不到街道网信办（office 岗位），无法发出催报通知")
    unit = get_unit(s, case.unit)
    label = OBLIGATION_LABELS.get(ob.kind, ob.kind)
    requirement = {
        "internal_report": "立即向街道网信办报告事件情况",
        "external_report": f"立即向{ob.data.get('report_to', '上级网信部门')}报告，并将报告时间录入系统",
        "handling": "立即组织处置，处置完毕后录入系统",
        "summary_report": "立即报送事件处置总结报告",
    }.get(ob.kind, "立即办理")
    reporting = ob.kind in ("internal_report", "external_report", "summary_report")
    step.remind(ob, issuer=office, recipients=unit_leaders(s, case.unit, on), unit_name=unit.name, label=label,
                requirement=requirement,
                explain="请在办结的同时书面说明未按时完成的原因" + (
                    "。确因情况尚未核实的，可先报告已掌握的情况，其余情况及时续报" if reporting else ""),
                warning="迟报、漏报、谎报、瞒报造成严重后果的，将依规依纪依法追究有关单位和人员的责任" if reporting
                else "未及时组织处置造成严重后果的，将依规依纪依法追究有关单位和人员的责任")


def _remind_and_evaluate(step: Step, ob, implied) -> None:
    _remind(step, ob, implied)
    evaluate_accountability(step)


def evaluate_accountability(step: Step) -> None:
    """At a report, an update, a resolution or a miss: the facts are announced; accountability
    proposes 问责 when they match (SPEC 3.3, ``models/accountability.py``)."""
    reactions.emit("incident.facts", step)


def ladders() -> dict:
    missed = [LadderStep(1, "missed", "逾期催报", lambda ob, cal: ob.due_at, _remind_and_evaluate, marks_missed=True)]
    return {kind: missed for kind in OBLIGATION_LABELS}


def escalate(ob_id: int, case_id: str, flow_run_id: str | None = None, session=None) -> Result | None:
    """Sweep step for an incident obligation past its due time: mark it missed (迟报/逾期)
    and send the 催报通知 once. A second sweep finds nothing to do."""
    return ladder.escalate(MACHINE, ladders(), ob_id, case_id, flow_run_id, session)
