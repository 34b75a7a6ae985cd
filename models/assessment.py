"""年度检查考核 — the annual assessment cycle (SPEC 3.4), and the activity records that feed it.

One cycle per year (a case of kind ``assessment``) with one ``assessment_unit`` row per
assessed unit. Automatic points come from the year's records (models/scoring.py, in bulk):
computed at the start over the records so far, and again at publication over the whole
year (up to 31 Dec 24:00 Beijing time, or the publication when earlier), the start's
figures kept beside and every change spelled out. Units self-assess, assessors score the
manual items, and publishing ranks and grades them (veto → 不合格) and writes the export for
the secretaries' year-end evaluation.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Callable, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, UniqueConstraint, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field as SQLField, Session, SQLModel, select

from models import ladder, policy
from models.case import Case, Obligation, ObligationStatus, _dt
from models.clock import beijing, cn_date, deadline_text, iso, listed, local, now, parse_time
from models.db import JSONDict, session
from models.deadlines import add_working_days, calendar
from models.errors import DomainError
from models.labels import LabeledEnum
from models.ladder import LadderStep, first_action_at
from models.org import (
    OrgUnit,
    committee_unit,
    get_person,
    get_unit,
    holders,
    holders_many,
    office_unit,
    prefetch_persons,
)
from models.requests import PersonId, Request, UnitCode, picks
from models.scoring import (
    DEFAULT_CATALOGUE,
    auto_changes,
    compute_auto,
    deduction_lines,
    grade_of,
    in_order,
    load_catalogue,
    manual_items,
    rank,
    year_bounds,
    year_cutoff,
)
from models.statemachine import Machine, Result, Rule, Step, transition


class AssessmentUnit(SQLModel, table=True):
    """One assessed unit in one year's cycle: automatic points with their records, the
    self-assessment, the assessors' scores and the published result."""

    __tablename__ = "assessment_unit"
    __table_args__ = (UniqueConstraint("cycle_id", "unit"),)
    id: int | None = SQLField(default=None, primary_key=True)
    cycle_id: str = SQLField(foreign_key="case.id", index=True)
    unit: str = SQLField(foreign_key="org_unit.code")
    auto: dict = SQLField(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    self_scores: dict = SQLField(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    self_submitted_at: datetime | None = _dt()
    manual: dict = SQLField(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    scored_at: datetime | None = _dt()
    final: float | None = None
    grade: str | None = None
    rank: int | None = None
    secretary: str | None = None


class CriteriaCatalogue(SQLModel, table=True):
    """The criteria catalogue loaded for one year (`dutyflow criteria load FILE --year Y`),
    checked when loaded; the year's cycle copies it at its start."""

    __tablename__ = "criteria_catalogue"
    year: int = SQLField(primary_key=True, sa_column_kwargs={"autoincrement": False})
    data: dict = SQLField(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    source: str
    loaded_at: datetime = _dt(nullable=False)


class ActivityKind(LabeledEnum):
    meeting = "专题会议"
    training = "培训"
    drill = "应急演练"
    publicity = "宣传"


ACTIVITY = Machine(kind="activity", id_prefix="ACT", states={"recorded": "已登记"},
                   rules=(Rule("record", "登记工作记录", (), "recorded"),))

STATES = {"started": "考核进行中", "published": "结果已通报"}
OBLIGATION_LABELS = {"self_assessment": "年度考核自评"}
MACHINE = Machine(
    kind="assessment",
    id_prefix="ASM",
    states=STATES,
    rules=(
        Rule("start", "启动年度考核", (), "started"),
        Rule("self_assess", "提交自评", ("started",), None),
        Rule("score", "考核评分", ("started",), None),
        Rule("publish", "通报考核结果", ("started",), "published"),
        Rule("escalate", "自评督办", tuple(STATES), None, system_only=True),
    ),
)


# ---------------------------------------------------------------- requests


class RecordActivityRequest(Request):
    """登记全年工作记录：专题会议、培训、应急演练、宣传。年度考核据此自动计分。"""

    FLOW: ClassVar[str] = "record-activity"

    unit: UnitCode = Field(title="单位", json_schema_extra=picks("unit"))
    kind: ActivityKind = Field(title="类型")
    date: dt.date = Field(title="日期")
    title: str = Field(title="名称", min_length=1)
    participants: list[PersonId] = Field(default_factory=list, title="参加人员", json_schema_extra=picks("person"))
    evidence: str = Field(default="", title="佐证材料", description="会议纪要、签到表等的编号或存放位置")


class StartAssessmentRequest(Request):
    """启动年度网络安全责任制检查考核：按全年记录自动计分，下发考核通知，开启 10 个工作日的自评时限。"""

    FLOW: ClassVar[str] = "start-annual-assessment"

    actor: PersonId = Field(default="system", title="操作人", description="定时任务为 system；人工启动选择办理人",
                            json_schema_extra=picks("person"))
    year: int = Field(default=0, ge=0, le=2100, title="考核年度", description="0 表示当年")
    units: list[UnitCode] = Field(default_factory=list, title="参加考核的单位", description="留空为全部社区",
                                  json_schema_extra=picks("unit"))


class SelfAssessmentRequest(Request):
    """提交自评：对人工评分项逐项自评打分，并说明情况。"""

    FLOW: ClassVar[str] = "submit-self-assessment"

    year: int = Field(title="考核年度")
    unit: UnitCode = Field(title="单位", json_schema_extra=picks("unit"))
    scores: dict[str, float] = Field(title="自评得分", description="{考核项 id: 分数}，仅人工评分项")
    notes: str = Field(default="", title="自评说明")


class UnitScore(BaseModel):
    """一个单位的考核组评分。"""

    model_config = ConfigDict(extra="forbid")
    unit: UnitCode = Field(title="单位", json_schema_extra=picks("unit"))
    scores: dict[str, float] = Field(title="人工评分项得分", description="{考核项 id: 分数}")
    bonus: dict[str, float] = Field(default_factory=dict, title="加分", description="{加分项 id: 分数}")
    falsified: bool = Field(default=False, title="发现弄虚作假（一票否决）")
    note: str = Field(default="", title="评分说明")


class ScoreAssessmentRequest(Request):
    """考核组评分：逐个单位（填写单位和得分）或批量（填写评分表）录入人工评分项得分、加分和一票否决情况。"""

    FLOW: ClassVar[str] = "score-assessment"

    year: int = Field(title="考核年度")
    unit: UnitCode = Field(default="", title="单位", description="逐个单位评分时选择；批量评分请用评分表",
                           json_schema_extra=picks("unit"))
    scores: dict[str, float] = Field(default_factory=dict, title="人工评分项得分", description="{考核项 id: 分数}")
    bonus: dict[str, float] = Field(default_factory=dict, title="加分", description="{加分项 id: 分数}")
    falsified: bool = Field(default=False, title="发现弄虚作假（一票否决）")
    note: str = Field(default="", title="评分说明")
    table: list[UnitScore] = Field(default_factory=list, title="评分表（批量）", description="每行一个单位")

    def entries(self) -> list[tuple[str, UnitScore]]:
        """(field prefix, entry) for each unit scored: the single unit, or each row of the table."""
        single = bool(self.unit or self.scores or self.bonus or self.falsified or self.note)
        if single and self.table:
            raise DomainError("逐个单位评分（unit、scores）和批量评分（table）只能填写一种", "table")
        if self.table:
            return [(f"table[{i}].", entry) for i, entry in enumerate(self.table)]
        if not self.unit:
            raise DomainError("必填：逐个单位评分填写 unit 和 scores，批量评分填写 table", "unit")
        return [("", UnitScore(unit=self.unit, scores=self.scores, bonus=self.bonus, falsified=self.falsified,
                               note=self.note))]


class PublishAssessmentRequest(Request):
    """通报考核结果：计算总分、等次和名次，生成《考核结果通报》和供社区书记年底考核使用的导出表，通知各单位主要负责人。"""

    FLOW: ClassVar[str] = "publish-assessment"

    year: int = Field(title="考核年度")


# ---------------------------------------------------------------- helpers


def catalogue_for(s: Session, year: int) -> tuple[dict, str]:
    """The catalogue for ``year`` and where it came from: the one loaded for that year, else
    the configured (``DUTYFLOW_CRITERIA``) or shipped default."""
    row = s.get(CriteriaCatalogue, year)
    if row is not None:
        return load_catalogue(data=row.data), f"{year} 年度考核指标（{row.source}）"
    return load_catalogue(), os.environ.get("DUTYFLOW_CRITERIA") or str(DEFAULT_CATALOGUE.name)


def load_year_catalogue(s: Session, year: int, path: str) -> dict:
    """Check a catalogue file and store it for ``year``; refused once that year's cycle has
    started (the cycle scores by the catalogue it copied at its start)."""
    check_year(year, "--year", latest=local(now()).year + 1)  # next year's catalogue may be prepared
    started = s.exec(select(Case.id).where(Case.dedupe_key == cycle_key(year))).first()
    if started:
        raise DomainError(f"{year} 年度考核已启动（{started}），按启动时的考核指标计分，不能再更换", "--year")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DomainError(f"不能读取考核指标文件：{exc}", "FILE") from None
    checked = load_catalogue(data=data)
    row = s.get(CriteriaCatalogue, year) or CriteriaCatalogue(year=year, source="")
    row.data, row.source, row.loaded_at = data, Path(path).name, now()
    s.add(row)
    return {"year": year, "source": row.source, "items": len(checked["items"]),
            "total": checked.get("total", 100)}


def check_year(year: int, field: str, *, latest: int) -> None:
    """An assessment year lies between policy ``assessment.first_year`` (the first year
    assessed under the responsibility system) and ``latest``."""
    first = policy.get("assessment", "first_year", default=2017)
    if not first <= year <= latest:
        raise DomainError(f"考核年度 {year} 超出范围：须在 {first} 年至 {latest} 年之间"
                          f"（{first} 年起实行网络安全工作责任制考核，见政策文件 assessment.first_year）", field)


def cycle_key(year: int) -> str:
    return f"assessment:{year}"


def get_cycle(s: Session, year: int, field: str = "year") -> Case:
    case = s.exec(select(Case).where(Case.dedupe_key == cycle_key(year))).first()
    if case is None:
        raise DomainError(f"{year} 年度考核尚未启动", field)
    return case


def _rows(s: Session, cycle_id: str) -> dict[str, AssessmentUnit]:
    return {r.unit: r for r in s.exec(select(AssessmentUnit).where(AssessmentUnit.cycle_id == cycle_id)).all()}


def _check_scores(scores: dict[str, float], items: dict[str, dict], field: str) -> None:
    """Each score names a known item and is a finite number within 0–max (NaN and ±inf,
    which JSON parsers let through, are refused: NaN compares false and would pass a range check)."""
    for iid, value in scores.items():
        if iid not in items:
            raise DomainError(f"未知考核项 '{iid}'（可评：{', '.join(items)}）", f"{field}.{iid}")
        if not math.isfinite(value):
            raise DomainError(f"{items[iid]['item']} 得分 {value!r} 不是有效数字，应为 0–{items[iid]['max_points']:g} 之间的数",
                              f"{field}.{iid}")
        if value < 0 or value > items[iid]["max_points"]:
            raise DomainError(f"{items[iid]['item']} 得分 {value:g} 超出范围 0–{items[iid]['max_points']:g}",
                              f"{field}.{iid}")


# ---------------------------------------------------------------- actions


def record_activity(req: RecordActivityRequest, flow_run_id: str | None = None) -> Result:
    def effect(step: Step) -> None:
        if req.date > local(step.recorded_at).date():
            raise DomainError(f"日期 {cn_date(req.date)} 晚于今天", "date")
        for i, p in enumerate(req.participants):
            get_person(step.s, p, f"participants[{i}]")
        step.case.data = {"kind": req.kind.name, "date": req.date.isoformat(), "title": req.title,
                          "participants": list(req.participants), "evidence": req.evidence}

    return transition(ACTIVITY, "record", actor=req.actor, unit=req.unit, effective_at=req.effective_time(), effect=effect,
                      title=f"{req.kind.value}：{req.title}", flow_run_id=flow_run_id,
                      payload={"kind": req.kind.name, "date": req.date.isoformat()})


def start(req: StartAssessmentRequest, flow_run_id: str | None = None,
          progress: Callable[[float], None] | None = None) -> Result:
    """One cycle per year (a second start returns the existing one): a row per unit with
    its automatic points (bulk), the 考核通知, and a `self_assessment` obligation per unit."""
    this_year = local(now()).year
    year = req.year or this_year
    if year > this_year:
        raise DomainError(f"{year} 年度尚未开始（今年为 {this_year} 年），不能启动考核", "year")
    check_year(year, "year", latest=this_year)
    duplicates = sorted(u for u, n in Counter(req.units).items() if n > 1)
    if duplicates:
        raise DomainError(f"单位重复：{listed(duplicates, '个单位')}", "units")

    def effect(step: Step) -> None:
        s, case = step.s, step.case
        existing = s.exec(select(Case.id).where(Case.dedupe_key == cycle_key(year))).first()
        if existing:
            raise _Existing(existing)
        if req.units:
            units = [get_unit(s, u, f"units[{i}]").code for i, u in enumerate(req.units)]
        else:
            units = list(s.exec(select(OrgUnit.code).where(OrgUnit.kind == "community").order_by(OrgUnit.code)).all())
        if not units:
            raise DomainError("没有可考核的单位", "units")
        cat, source = catalogue_for(s, year)
        case.dedupe_key = cycle_key(year)
        case.data = {"year": year, "units": units, "catalogue": cat, "catalogue_source": source}
        cal = calendar(s)
        due = add_working_days(step.effective_at, policy.get("assessment", "self_assessment_working_days", default=10), cal)
        cutoff = year_cutoff(year, step.effective_at)  # the year's records so far
        case.data = {**case.data, "auto_cutoff": iso(cutoff)}
        auto = compute_auto(s, cat, year, units, progress, cutoff=cutoff)  # a few bulk queries for all units
        s.flush()
        s.execute(insert(AssessmentUnit.__table__), [
            {"cycle_id": case.id, "unit": u, "auto": auto[u], "self_scores": {}, "manual": {}} for u in units])
        probe = Obligation(case_id=case.id, unit=units[0], kind="self_assessment", due_at=due.due_at)
        first = first_action_at(ladders()["self_assessment"], probe, cal)
        s.execute(insert(Obligation.__table__), [
            {"case_id": case.id, "unit": u, "kind": "self_assessment", "role": "principal", "status": "open",
             "step": 0, "due_at": due.due_at, "next_action_at": first, "met_at": None,
             "calendar_unconfirmed": due.calendar_unconfirmed, "data": due.obligation_data(), "version_id": 1} for u in units])
        step.payload["opened"] = [{"kind": "self_assessment", "units": len(units), "due_at": iso(due.due_at)}]
        if due.calendar_unconfirmed:
            step.warn(f"自评期限为{deadline_text(due.due_at)}前，所在年度的节假日安排尚未公布，期限按周一至周五计算，可能调整")
        on = local(step.recorded_at).date()
        committee = committee_unit(s, units[0]) or get_unit(s, units[0])
        names = {u.code: u.name for u in s.exec(select(OrgUnit).where(OrgUnit.code.in_(units))).all()}
        principals = holders_many(s, units, "principal", on)
        recipients = [p for u in units for p in principals[u]]
        step.notice(
            "assessment_notice", issuer=committee, recipients=recipients,
            title=f"关于开展{year}年度网络安全责任制检查考核的通知", main_to="各社区党委",
            context={"year": year, "units": [names[u] for u in units],
                     "self_assessment_due": deadline_text(due.due_at), "calendar_unconfirmed": due.calendar_unconfirmed,
                     "grades": {name: cat["grades"][name] for name in ("优秀", "良好", "合格")},
                     "criteria": [{"category": cn_text(it["category"]), "item": cn_text(it["item"]),
                                   "max_points": it["max_points"],
                                   "method_label": "系统自动计分" if it["method"] == "auto" else "人工评分",
                                   "requirement": cn_text(it.get("requirement", ""))} for it in cat["items"]],
                     "bonus_items": [{"item": cn_text(b["item"]), "max_points": b["max_points"]}
                                     for b in cat.get("bonus") or []],
                     "veto_items": [cn_text(v["item"]) for v in cat.get("veto") or []],
                     **_office_contact(s, units[0], on, committee.name)},
        )

    try:
        return transition(MACHINE, "start", actor=req.actor, unit=_street_of(req.units), effective_at=req.effective_time(),
                          effect=effect, title=f"{year}年度网络安全工作责任制检查考核", flow_run_id=flow_run_id,
                          payload={"year": year})
    except (_Existing, IntegrityError) as exc:  # IntegrityError: a concurrent start won the year's key
        with session() as s:
            found = exc.case_id if isinstance(exc, _Existing) else s.exec(
                select(Case.id).where(Case.dedupe_key == cycle_key(year))).first()
            if found is None:
                raise
            return Result(case=s.get(Case, found), notices=[], event_seq=0, skipped=True)


def _end_self_assessments(step: Step) -> None:
    """At publication nothing is left to self-assess: every self_assessment not yet met is
    waived (a missed one keeps its ``missed_at``; the result already says 未自评), so the sweep
    and the ledger stop chasing it. A unit whose time had not yet run out is warned of."""
    early = []
    for ob in step.obligations("self_assessment"):
        if ob.met_at is not None or ob.status == ObligationStatus.waived:
            continue
        if ob.status == ObligationStatus.open and ob.due_at > step.effective_at:
            early.append(ob.unit)
        ob.data = {**ob.data, "ended_by_publication": iso(step.effective_at), "was": ob.status}
        ob.status, ob.next_action_at = ObligationStatus.waived, None
        step.s.add(ob)
    if early:
        step.warn(f"自评期限未到即通报考核结果：{listed(sorted(early), '个单位')} 未提交自评")


def _office_contact(s: Session, unit: str, on, fallback: str) -> dict:
    """联系人 of the 考核通知: the street 网信办 and its staff (``fallback``, the issuer, when
    there is no office)."""
    office = office_unit(s, unit, on)
    if office is None:
        return {"contact_office": fallback, "contacts": []}
    return {"contact_office": office.name,
            "contacts": [get_person(s, p).name for p in holders(s, office.code, "office", on)]}


_LOOSE_SPACE = re.compile(r"(?<![A-Za-z0-9.%]) +| +(?![A-Za-z0-9])")


def cn_text(text: str) -> str:
    """Catalogue text as a 公文 prints it: no half-width space next to a Chinese character or
    punctuation (``至少召开 2 次`` → ``至少召开2次``); a space between two Latin or digit tokens stays."""
    return _LOOSE_SPACE.sub("", text.strip()) if isinstance(text, str) else text


class _Existing(Exception):
    def __init__(self, case_id: str):
        self.case_id = case_id


def _street_of(units: list[str]) -> str:
    """The cycle belongs to the street 党工委 over the assessed units."""
    with session() as s:
        first = units[0] if units else s.exec(
            select(OrgUnit.code).where(OrgUnit.kind == "community").order_by(OrgUnit.code)).first()
        if not first:
            raise DomainError("组织名册中没有社区", "units")
        unit = get_unit(s, first, "units[0]")
        street = committee_unit(s, unit.code)
        return (street or unit).code


def ladders() -> dict:
    """自评督办: a reminder 1 working day before the self-assessment is due, 催报 when missed."""
    return {"self_assessment": [
        LadderStep(1, "reminder", "自评临期提醒", lambda ob, cal: add_working_days(ob.due_at, -1, cal).due_at,
                   _self_reminder("请在期限内通过系统提交年度网络安全责任制考核自评")),
        LadderStep(2, "urge", "自评催报", lambda ob, cal: ob.due_at,
                   _self_reminder("请立即通过系统提交年度网络安全责任制考核自评"), marks_missed=True),
    ]}


def _self_reminder(requirement: str):
    def act(step: Step, ob: Obligation, implied) -> None:
        s, on = step.s, local(step.recorded_at).date()
        unit = get_unit(s, ob.unit)
        late = step.recorded_at >= ob.due_at
        step.remind(ob, issuer=get_unit(s, step.case.unit), recipients=holders(s, ob.unit, "principal", on),
                    unit_name=unit.name, label=OBLIGATION_LABELS[ob.kind], requirement=requirement,
                    title=f"关于督促{unit.name}提交年度考核自评的通知" if late
                    else f"关于提醒{unit.name}按时提交年度考核自评的通知",
                    explain="请在提交自评时说明未按时自评的原因",
                    warning="逾期未提交自评的，在考核结果中标注为未按时自评")
    return act


def escalate(ob_id: int, case_id: str, flow_run_id: str | None = None, session=None) -> Result | None:
    return ladder.escalate(MACHINE, ladders(), ob_id, case_id, flow_run_id, session)


def self_assess(req: SelfAssessmentRequest, flow_run_id: str | None = None) -> Result:
    def effect(step: Step) -> None:
        s = step.s
        rows = _rows(s, step.case.id)
        if req.unit not in rows:
            raise DomainError(f"单位 '{req.unit}' 不在 {req.year} 年度考核范围内", "unit")
        _check_scores(req.scores, _manual(step.case), "scores")
        row = rows[req.unit]
        ob = next((o for o in step.obligations("self_assessment") if o.unit == req.unit), None)
        if ob is not None and ob.met_at is None:
            step.meet(ob)
        # late when the obligation was met late (a re-submission keeps the first one's lateness)
        late = ob is not None and ob.status == ObligationStatus.missed
        row.self_scores = {"scores": dict(req.scores), "notes": req.notes, "late": late}
        row.self_submitted_at = step.effective_at
        s.add(row)

    case_id = _cycle_id(req.year)
    return transition(MACHINE, "self_assess", actor=req.actor, case_id=case_id, effective_at=req.effective_time(),
                      effect=effect, flow_run_id=flow_run_id, payload={"unit": req.unit, "scores": req.scores},
                      scope={"unit": req.unit})


def _manual(case: Case) -> dict[str, dict]:
    return manual_items(case.data["catalogue"])


def _cycle_id(year: int) -> str:
    with session() as s:
        return get_cycle(s, year).id


def score(req: ScoreAssessmentRequest, flow_run_id: str | None = None) -> Result:
    """考核组评分 (per unit or a bulk table); re-scoring a unit replaces its scores."""
    entries = req.entries()

    def effect(step: Step) -> None:
        s = step.s
        rows = _rows(s, step.case.id)
        items = _manual(step.case)
        bonus = {b["id"]: b for b in step.case.data["catalogue"].get("bonus") or []}
        for at, entry in entries:
            if entry.unit not in rows:
                raise DomainError(f"单位 '{entry.unit}' 不在 {req.year} 年度考核范围内", f"{at}unit")
            _check_scores(entry.scores, items, f"{at}scores")
            missing = [iid for iid in items if iid not in entry.scores]
            if missing:
                raise DomainError(f"{entry.unit} 缺少人工评分项：{', '.join(missing)}", f"{at}scores")
            _check_scores(entry.bonus, bonus, f"{at}bonus")
            if entry.falsified and _falsified_veto(step.case.data["catalogue"]) is None:
                raise DomainError("本年度考核指标未设“考核材料弄虚作假”一票否决项（规则 veto_falsified），不能据此否决",
                                  f"{at}falsified")
            row = rows[entry.unit]
            row.manual = {"scores": dict(entry.scores), "bonus": dict(entry.bonus), "falsified": entry.falsified,
                          "note": entry.note, "by": step.actor}
            row.scored_at = step.effective_at
            s.add(row)
        step.payload["units"] = [e.unit for _at, e in entries]

    return transition(MACHINE, "score", actor=req.actor, case_id=_cycle_id(req.year),
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id,
                      scope={"units": [e.unit for _at, e in entries]})


def _falsified_veto(cat: dict) -> dict | None:
    """The catalogue's veto item for falsified records (found by the assessors), if any."""
    return next((v for v in cat.get("veto") or [] if v.get("rule") == "veto_falsified"), None)


def results(s: Session, case: Case, stored: dict[str, AssessmentUnit] | None = None) -> list[dict]:
    """Each unit's score, grade, rank, deductions and what changed in its automatic figures
    since the start (computed; stored at publication, with the secretary). ``stored``: the
    cycle's rows, when the caller has loaded them."""
    cat = case.data["catalogue"]
    bonus_cap = policy.get("assessment", "bonus_cap", default=5)
    cap = float(cat.get("total", 100))
    falsified = _falsified_veto(cat)
    names = dict(s.exec(select(OrgUnit.code, OrgUnit.name)).all())
    out = []
    for unit, row in sorted((stored if stored is not None else _rows(s, case.id)).items()):
        auto_points = sum(it["points"] for it in row.auto["items"].values())
        manual_points = sum((row.manual.get("scores") or {}).values())
        bonus = min(bonus_cap, sum((row.manual.get("bonus") or {}).values()))
        vetoes = list(row.auto.get("vetoes", []))
        if row.manual.get("falsified"):
            vetoes.append({"id": falsified["id"] if falsified else "falsified",
                           "item": falsified["item"] if falsified else "考核材料弄虚作假",
                           "records": [f"考核组认定：{row.manual['note']}" if row.manual.get("note") else "考核组认定"]})
        total = auto_points + manual_points + bonus
        if not math.isfinite(total):  # refused on input; a row written otherwise is not published
            raise DomainError(f"{names.get(unit, unit)} 的得分不是有效数字，请重新评分", "year")
        final = round(min(cap, total), 2)
        out.append({"unit": unit, "unit_name": names.get(unit, unit), "auto": round(auto_points, 2),
                    "manual": round(manual_points, 2), "bonus": bonus, "final": final, "veto": bool(vetoes),
                    "vetoes": vetoes, "grade": grade_of(final, bool(vetoes), cat),
                    "self_assessment": ("逾期自评" if row.self_scores.get("late") else "已自评")
                    if row.self_submitted_at else "未自评",
                    "deductions": [d for _iid, it in in_order(row.auto, cat) for d in it["deductions"]],
                    "deduction_lines": deduction_lines(row.auto, cat), "auto_changes": auto_changes(row.auto, cat),
                    "scored": row.scored_at is not None, "secretary": row.secretary})
    rank(out)
    return out


def publish(req: PublishAssessmentRequest, flow_run_id: str | None = None,
            progress: Callable[[float], None] | None = None) -> Result:
    """Recomputes the automatic points over the whole year (records up to 31 Dec 24:00
    Beijing time, or up to the publication when earlier: December's records count too),
    keeping the self-assessments and the assessors' scores; then ranks, grades (veto →
    不合格), issues the 考核结果通报 to each unit's principal and notes every automatic
    figure that changed since the start."""
    def effect(step: Step) -> None:
        s, case = step.s, step.case
        stored = _rows(s, case.id)
        missing = sorted(u for u, row in stored.items() if row.scored_at is None)
        if missing:
            raise DomainError(f"以下单位尚未评分，不能通报：{', '.join(missing)}", "year")
        year = case.data["year"]
        cutoff = year_cutoff(year, step.effective_at)
        units = sorted(stored)
        cat = case.data["catalogue"]
        auto = compute_auto(s, cat, year, units, progress, cutoff=cutoff)
        for unit in units:  # the start's figures are kept beside where they differ
            row = stored[unit]
            kept = {**auto[unit], "at_start": {"items": row.auto["items"], "vetoes": row.auto.get("vetoes", [])}}
            row.auto = kept if auto_changes(kept, cat) else auto[unit]
        case.data = {**case.data, "auto_cutoff_at_start": case.data.get("auto_cutoff"), "auto_cutoff": iso(cutoff)}
        rows = results(s, case, stored)
        dec31 = dt.date(year, 12, 31)
        secretaries = holders_many(s, stored, "principal", dec31)
        prefetch_persons(s, (sec[0] for sec in secretaries.values() if sec))
        for r in rows:
            sec = secretaries[r["unit"]]
            r["secretary"] = get_person(s, sec[0]).name if sec else "（空缺）"
            row = stored[r["unit"]]
            row.final, row.grade, row.rank, row.secretary = r["final"], r["grade"], r["rank"], r["secretary"]
            s.add(row)
        _end_self_assessments(step)
        case.data = {**case.data, "published_at": iso(step.effective_at),
                     "summary": {g: sum(1 for r in rows if r["grade"] == g) for g in ("优秀", "良好", "合格", "不合格")}}
        on = local(step.recorded_at).date()
        principals = holders_many(s, stored, "principal", on)
        ranked = sorted(rows, key=lambda r: r["rank"])
        pass_mark = case.data["catalogue"].get("grades", {}).get("合格", 60)
        step.notice(
            "assessment_result", issuer=get_unit(s, case.unit),
            recipients=[p for r in rows for p in principals[r["unit"]]],
            title=f"关于{year}年度网络安全责任制检查考核结果的通报", main_to="各社区党委",
            context={"year": year,
                     "results": [{"rank": r["rank"], "unit_name": r["unit_name"],
                                  "secretary": "" if r["secretary"] == "（空缺）" else r["secretary"],
                                  "score": f"{r['final']:g}", "grade": r["grade"], "deductions": len(r["deductions"]),
                                  "veto": r["veto"], "self_assessment": r["self_assessment"]} for r in ranked],
                     "grade_counts": [[g, n] for g, n in case.data["summary"].items()],
                     "excellent": [r["unit_name"] for r in ranked if r["grade"] == "优秀"],
                     "failed": [{"unit_name": r["unit_name"], "reason": _failed_reason(r, pass_mark)}
                                for r in ranked if r["grade"] == "不合格"],
                     "notes": _changed_note(ranked, year, cutoff)},
        )
        step.payload["published"] = {r["unit"]: [r["final"], r["grade"], r["rank"]] for r in rows}
        step.payload["auto_cutoff"] = iso(cutoff)
        step.payload["auto_changed"] = [r["unit"] for r in rows if r["auto_changes"]]

    return transition(MACHINE, "publish", actor=req.actor, case_id=_cycle_id(req.year),
                      effective_at=req.effective_time(), effect=effect, flow_run_id=flow_run_id)


def _failed_reason(r: dict, pass_mark: float) -> str:
    """Why a unit is 不合格, in one sentence: the veto items it touched (whatever its score), or
    its score under the pass mark."""
    if r["veto"]:
        items = "、".join(f"“{cn_text(v['item'])}”" for v in r["vetoes"])
        return f"考核得分{r['final']:g}分，但触及{items}一票否决项目，考核等次确定为不合格"
    return f"考核得分{r['final']:g}分，低于合格分数线{pass_mark:g}分"


def cutoff_text(year: int, cutoff: datetime | str) -> str:
    """``2026年12月31日24时`` at the year's end, else the Beijing time of the cutoff."""
    at = parse_time(cutoff) if isinstance(cutoff, str) else cutoff
    return f"{year}年12月31日24时" if at >= year_bounds(year)[1] else beijing(at)


def _changed_note(ranked: list[dict], year: int, cutoff: datetime) -> list[str]:
    changed = [r["unit_name"] for r in ranked if r["auto_changes"]]
    if not changed:
        return []
    names = listed(changed, "个社区")
    return [f"系统自动计分已按截至{cutoff_text(year, cutoff)}的全年工作记录重新计算，{names}的自动计分较考核启动时有变动，"
            f"变动情况见考核结果明细表"]
