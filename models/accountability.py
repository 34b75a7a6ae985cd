"""Accountability: layer-by-layer reverse tracing (逐级倒查), SPEC 3.3.

This module holds the circumstances, the state machine and the automatic proposal
(`propose`), created once per source case and circumstance whichever flow or sweep
notices it first.
"""
from __future__ import annotations

from sqlmodel import Session, select

from models.case import Case
from models.clock import cn_date, local
from models.labels import LabeledEnum
from models.org import committee_unit, get_person, get_unit, holders, role_unit
from models.statemachine import Machine, Rule, Step, transition


class Circumstance(LabeledEnum):
    c1_defacement_unreported = "门户网站等被攻击篡改，且没有及时报告和组织处置（四（四）1）"
    c2_data_leak = "国家秘密、大面积个人信息或大量国家基础数据泄露（四（四）2）"
    c3_cii_attack_unhandled = "关键信息基础设施遭受攻击，没有及时处置（四（四）3）"
    c4_concealment_or_unrectified = "封锁、瞒报事件，或对通报的问题和风险隐患不及时整改（四（四）4）"
    c5_obstruction = "阻碍公安机关、国家安全机关依法工作或拒不提供支持（四（四）5）"
    c6_other = "发生其他严重危害网络安全行为（四（四）6）"


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
        Rule("escalate", "逾期督办", tuple(STATES), None, system_only=True),
    ),
)

BASIS = ("《党委（党组）网络安全工作责任制实施办法》、《中国共产党问责条例》和"
         "《XX街道网络安全责任制实施办法》四（四）、四（五）")


def proposal_key(source_id: str, circumstance: str) -> str:
    return f"proposal:{source_id}:{circumstance}"


def propose(s: Session, *, source: Case, circumstance: str, facts: str, facts_date,
            flow_run_id: str | None = None) -> Case | None:
    """Create the proposal (state ``proposed``) inside the caller's transaction, once per
    (source case, circumstance). Issues the 问责建议书 from the 网信办 to the 党工委, copy to
    the 纪工委. Returns None when the proposal already exists."""
    key = proposal_key(source.id, circumstance)
    if s.exec(select(Case.id).where(Case.dedupe_key == key)).first():
        return None
    label = Circumstance[circumstance].value
    on = local(facts_date).date() if hasattr(facts_date, "tzinfo") else facts_date

    def effect(step: Step) -> None:
        case = step.case
        case.proposed_from, case.dedupe_key = source.id, key
        case.data = {"circumstance": circumstance, "facts": facts, "facts_date": on.isoformat(),
                     "source_kind": source.kind, "chain": []}
        today = local(step.recorded_at).date()
        unit = get_unit(s, source.unit)
        office = role_unit(s, source.unit, "office", today)
        committee = committee_unit(s, source.unit)
        discipline = role_unit(s, source.unit, "discipline", today)
        if office is None or committee is None:
            from models.errors import DomainError

            raise DomainError(f"单位 {source.unit} 找不到网信办或党工委，无法提出问责建议")
        signer = holders(s, office.code, "principal", today) or holders(s, office.code, "office", today)
        recipients = holders(s, committee.code, "principal", today)
        if discipline is not None:
            recipients += holders(s, discipline.code, "discipline", today)
        step.notice(
            "accountability_proposal", issuer=office, recipients=recipients,
            title=f"关于对{unit.name}有关责任人员问责的建议", main_to=committee.name,
            signer=get_person(s, signer[0]).name if signer else office.name,
            cc=[discipline.name] if discipline else [],
            context={"case_id": case.id, "source_case_id": source.id, "unit_name": unit.name,
                     "circumstance_label": label, "facts": facts, "facts_date": cn_date(on),
                     "chain": [], "suggested_forms": [], "basis": BASIS},
        )

    result = transition(MACHINE, "propose", actor="system", unit=source.unit, effect=effect,
                        title=f"{get_unit(s, source.unit).name}：{label}", classified=source.classified,
                        flow_run_id=flow_run_id, session=s,
                        payload={"proposed_from": source.id, "circumstance": circumstance})
    return result.case
