"""Who may do what (SPEC §3.6, ``models/authority.py``): every row an operator takes is
admitted for a person it names and refused for one it does not (and for each ``never`` bar,
refused for a person otherwise admitted but barred); plus the eight violations a hostile
tester found. Every refusal goes through ``support.refused``: one DomainError on the field
named, the flow and the authority it needs in the message, and nothing written.

The domain cores are called directly (no Prefect): the check sits in the one generic
``transition()``, whatever the entry.
"""
from __future__ import annotations

import pytest
import yaml
from support import refused

from models import accountability as a
from models import assessment as asm
from models import incident as i
from models import rectification as r
from models.db import session
from models.errors import DomainError

# the street and its departments (deployments/demo_org.yaml)
OFFICE, OFFICE_STAFF = "p-sun-jianhua", "p-liu-jianguo"  # 网信办: principal + office, office
STREET, STREET_OFFICER, STREET_MEMBER = "p-wang-zhiqiang", "p-zhao-weiguo", "p-chen-lixin"  # 党工委 JD01
JGW_HEAD, DISCIPLINE = "p-wu-zhendong", "p-zheng-xiaoyan"  # 纪工委
ZHB_HEAD, GGFW_HEAD = "p-huang-guoqing", "p-ma-lijuan"  # supervise SQ01–SQ06, SQ07–SQ12
# SQ03 建设社区 (the responsible / accused unit)
PRINCIPAL, LEAD, OFFICER, LIAISON, MEMBER = "p-zhu-hongwei", "p-hu-haiyan", "p-guo-tao", "p-he-xiaoli", "p-gao-jianping"
# peers
SQ02_PRINCIPAL, SQ02_OFFICER, SQ02_LIAISON = "p-zhao-shuzhen", "p-zhou-peng", "p-wu-jing"
SQ01_PRINCIPAL, SQ01_LIAISON = "p-zhang-xiuying", "p-liu-ting"
SQ04_PRINCIPAL = "p-luo-chunmei"

FULL_MANUAL = {"org_duties": 10, "systems": 14, "protection": 22, "plan": 8}  # the catalogue's manual items


# ---------------------------------------------------------------- helpers


def act(fn, model, **params):
    from models.requests import validate_request

    return fn(validate_request(model, params))


def denied(fn, model, *, flow: str, field: str = "actor", contains: str = "", needs: str = "须由",
           **params) -> DomainError:
    """``fn`` is refused (nothing written, the field named); the message names the flow and
    what authority it needs, and (for an actor refused) who tried."""
    err = refused(act, fn, model, field=field, contains=contains, **params)
    assert f"办理 {flow}（" in err.message, err.message
    assert needs in err.message, err.message
    if field == "actor" and params["actor"] != "system":
        assert "操作人 " in err.message and params["actor"] in err.message, err.message
    return err


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def last_event(case_id: str) -> dict:
    return show(case_id)["events"][-1]


def proposals(source: str) -> list[str]:
    from sqlmodel import select

    from models.case import Case

    with session() as s:
        return list(s.exec(select(Case.id).where(Case.proposed_from == source).order_by(Case.id)).all())


def add_posts(posts: list[dict]) -> None:
    from models.org import load_org

    data = {"units": [], "persons": [], "posts": posts}
    with session() as s:
        load_org(s, data, yaml.safe_dump(data, allow_unicode=True))


# -- rectification


def notify(**over):
    params = dict(actor=OFFICE, unit="SQ03", source="X区网安〔2026〕3号通报", risk_level="high",
                  problem="社区门户网站后台存在弱口令", requirement="修改口令并启用双因素认证")
    params.update(over)
    return act(r.notify, r.NotifyRiskRequest, **params)


def acknowledge(actor, case_id):
    return act(r.acknowledge, r.AcknowledgeRiskRequest, actor=actor, case_id=case_id)


def submit(actor, case_id):
    return act(r.submit, r.SubmitRectificationRequest, actor=actor, case_id=case_id, measures="已修改口令",
               evidence=["整改截图-1"])


def verify(actor, case_id, passed=True):
    return act(r.verify, r.VerifyRectificationRequest, actor=actor, case_id=case_id, passed=passed,
               opinion="复测通过" if passed else "仍有弱口令")


def request_extension(actor, case_id):
    return act(r.request_extension, r.RequestExtensionRequest, actor=actor, case_id=case_id, reason="需采购设备",
               new_due_at="2026-11-20T00:00:00+08:00")


def decide_extension(actor, case_id, approved=True):
    return act(r.decide_extension, r.DecideExtensionRequest, actor=actor, case_id=case_id, approved=approved,
               opinion="同意" if approved else "不同意")


# -- accountability


def open_manual(actor=OFFICE, unit="SQ03", involved=(LIAISON,), **more):
    return act(a.open_case, a.OpenAccountabilityRequest, actor=actor, unit=unit, circumstance="c6_other",
               facts="违规在门户网站发布未经审核的信息", facts_date="2026-11-10", involved_persons=list(involved), **more)


def proposal_at(unit: str, reporter: str) -> str:
    """An automatic proposal (state ``proposed``): a 泄密 incident reported at ``unit``."""
    inc = act(i.report, i.ReportIncidentRequest, actor=reporter, unit=unit, category="secret_leak", level="general",
              title="涉密文件误发", description="涉密文件误发至工作群", discovered_at="2026-11-20T09:00:00+08:00").case.id
    [proposal] = proposals(inc)
    assert show(proposal)["state"] == "proposed"
    return proposal


def chain(case_id: str) -> set[str]:
    return {c["person"] for c in show(case_id)["chain"] if c["person"]}


def decide(actor, case_id, decided_by="JD01", forms=None, **more):
    return act(a.decide, a.RecordAccountabilityDecisionRequest, actor=actor, case_id=case_id, decided_by=decided_by,
               forms={} if forms is None else forms, **more)


def appeal(actor, case_id, person):
    return act(a.appeal, a.FileAppealRequest, actor=actor, case_id=case_id, person=person, reason="事实认定有误")


def decide_appeal(actor, case_id, person, upheld=True):
    return act(a.decide_appeal, a.DecideAppealRequest, actor=actor, case_id=case_id, person=person, upheld=upheld,
               opinion="维持原决定")


def decided_case(**forms) -> str:
    """A manual case at SQ03 naming the liaison and a 党工委 member (STREET_MEMBER, also a
    party to the facts), decided by the 党工委 with a form for each: both may appeal."""
    cid = open_manual(involved=(LIAISON, STREET_MEMBER)).case.id
    assert {LIAISON, STREET_MEMBER, OFFICER, LEAD, PRINCIPAL} <= chain(cid)
    out = decide(STREET, cid, forms=forms or {LIAISON: ["诫勉"], STREET_MEMBER: ["通报"]})
    assert out.case.state == "decided"
    return cid


# -- assessment


def start(actor, year=2026, units=("SQ01", "SQ02")):
    return act(asm.start, asm.StartAssessmentRequest, actor=actor, year=year, units=list(units))


def score(actor, *units, year=2026):
    return act(asm.score, asm.ScoreAssessmentRequest, actor=actor, year=year,
               table=[{"unit": u, "scores": FULL_MANUAL} for u in units])


def assessed(year: int = 2026) -> dict:
    from sqlmodel import select

    with session() as s:
        cycle = asm.get_cycle(s, year)
        return {row.unit: row for row in s.exec(select(asm.AssessmentUnit).where(
            asm.AssessmentUnit.cycle_id == cycle.id)).all()}


# ---------------------------------------------------------------- the table itself


def test_every_rule_of_every_machine_has_a_row():
    from models import authority
    from models.processes import machines

    for kind, machine in machines().items():
        for rule in machine.rules:
            row = authority.row_for(kind, rule.action)  # raises (fail closed) when no row names it
            assert row.may, (kind, rule.action)
            if rule.system_only:  # the sweep's own steps: the schedule only
                assert row.may == (authority.SCHEDULE,), (kind, rule.action)
            else:  # an operator's: some person may take it
                assert any(t is not authority.SCHEDULE for t in row.may), (kind, rule.action)
    with pytest.raises(DomainError) as info:
        authority.row_for("rectification", "no_such_action")
    assert info.value.field == "actor" and "未列入权限表" in info.value.message


# the operator rows of §3.6 and the test(s) below that prove each one
OPERATOR_FLOWS = {
    "report-incident", "update-incident", "submit-incident-summary",  # test_incident_row
    "notify-risk", "verify-rectification", "decide-extension",  # test_issuing_side_*, violations 1, 7, 8
    "record-interview",  # no action yet: no rule of any machine takes it (not testable)
    "acknowledge-risk", "submit-rectification", "request-extension",  # test_responsible_unit_row, violation 2
    "open-accountability", "dismiss-accountability",  # test_open_accountability_row, test_dismiss_row, 3, 6
    "record-accountability-decision",  # test_decision_row, violations 4, 6
    "file-appeal", "decide-appeal",  # test_file_appeal_row, test_decide_appeal_row, violation 5
    "start-annual-assessment", "publish-assessment", "score-assessment",  # test_start_and_publish_row, test_score_row
    "submit-self-assessment", "record-activity",  # test_self_assessment_and_activity_row
}


def test_the_operator_rows_are_the_ones_this_file_covers():
    """A row added to the table fails here until a test proves it both ways."""
    from models import authority

    flows = {name for row in authority.TABLE if row.may != (authority.SCHEDULE,) for name in row.actions.values()}
    assert flows == OPERATOR_FLOWS
    assert {name for row in authority.TABLE if row.may == (authority.SCHEDULE,)
            for name in row.actions.values()} == {"sweep-deadlines"}


def test_system_is_refused_an_operator_action_and_admitted_to_start_the_assessment(org, clock):
    clock("2026-11-20T10:00:00+08:00")
    case_id = notify().case.id
    err = denied(r.acknowledge, r.AcknowledgeRiskRequest, flow="acknowledge-risk", contains="'system' 仅供定时任务使用",
                 actor="system", case_id=case_id)
    assert "建设社区的在岗人员" in err.message
    denied(r.notify, r.NotifyRiskRequest, flow="notify-risk", contains="'system' 仅供定时任务使用", actor="system",
           unit="SQ03", source="通报", risk_level="low", problem="问题", requirement="要求")
    denied(a.decide, a.RecordAccountabilityDecisionRequest, flow="record-accountability-decision",
           contains="'system' 仅供定时任务使用", actor="system", case_id=open_manual().case.id, decided_by="JD01",
           forms={})
    assert show(case_id)["state"] == "notified"
    clock("2026-12-01T10:00:00+08:00")
    out = start("system")
    assert out.case.state == "started" and last_event(out.case.id)["actor"] == "system"
    assert sorted(assessed()) == ["SQ01", "SQ02"]


# ---------------------------------------------------------------- incidents


def test_incident_row(org, clock):
    """report-incident, update-incident, submit-incident-summary: a post holder of the
    reporting unit, or 网信办 staff for it; nobody else (a peer, its supervising department,
    the street's 党工委)."""
    clock("2026-11-20T09:30:00+08:00")
    report = dict(unit="SQ03", category="malware", level="general", title="办公终端感染病毒",
                  description="一台办公终端感染勒索病毒", discovered_at="2026-11-20T09:00:00+08:00")
    for outsider in (SQ02_OFFICER, ZHB_HEAD, STREET, DISCIPLINE):
        denied(i.report, i.ReportIncidentRequest, flow="report-incident", contains="建设社区的在岗人员",
               actor=outsider, **report)
    by_member = act(i.report, i.ReportIncidentRequest, actor=MEMBER, **report).case
    assert by_member.state == "reported" and by_member.unit == "SQ03"
    by_office = act(i.report, i.ReportIncidentRequest, actor=OFFICE_STAFF, **report).case
    assert by_office.state == "reported" and last_event(by_office.id)["actor"] == OFFICE_STAFF
    cid = by_member.id

    update = i.UpdateIncidentRequest
    for outsider in (SQ02_OFFICER, ZHB_HEAD):
        denied(i.update, update, flow="update-incident", actor=outsider, case_id=cid, note="续报")  # progress
    assert act(i.update, update, actor=LIAISON, case_id=cid, note="已断网隔离").case.state == "handling"
    denied(i.update, update, flow="update-incident", actor=SQ02_OFFICER, case_id=cid, note="处置完毕", resolved=True)
    assert act(i.update, update, actor=OFFICE, case_id=cid, note="处置完毕", resolved=True).case.state == "resolved"

    summary = dict(case_id=cid, cause="弱口令", handling="隔离并重装", harm="无数据泄露", lessons="加强口令管理")
    for outsider in (SQ02_OFFICER, STREET):
        denied(i.submit_summary, i.SubmitIncidentSummaryRequest, flow="submit-incident-summary", actor=outsider,
               **summary)
    assert act(i.submit_summary, i.SubmitIncidentSummaryRequest, actor=OFFICER, **summary).case.state == "closed"
    # a supplement after closing is an update too
    denied(i.update, update, flow="update-incident", actor=SQ02_OFFICER, case_id=cid, note="补充")
    out = act(i.update, update, actor=OFFICE_STAFF, case_id=cid, note="补充：已通报全街道")
    assert out.case.state == "closed" and last_event(cid)["type"] == "supplement"


# ---------------------------------------------------------------- rectification: the issuing side


def test_issuing_side_notify_risk(org, clock):
    """notify-risk: the 网信办 serving the unit, or a unit above it on its line (the 党工委
    above the 网信办; the supervising department when it issues in its own name); never a
    peer, never a department supervising other units, never the unit itself."""
    clock("2026-11-02T10:00:00+08:00")
    by_office = notify(actor=OFFICE_STAFF).case
    assert by_office.state == "notified" and by_office.data["issuer"] == "WXB"
    by_street = notify(actor=STREET).case  # 党工委: above the 网信办 on its territorial line
    assert by_street.state == "notified" and by_street.data["issuer"] == "WXB"
    by_supervisor = notify(actor=ZHB_HEAD, issuer="ZHB").case  # SQ03's supervising department
    assert by_supervisor.state == "notified" and by_supervisor.data["issuer"] == "ZHB"

    params = dict(unit="SQ03", source="检查", risk_level="medium", problem="弱口令", requirement="整改")
    notice = r.NotifyRiskRequest
    for own in (OFFICER, PRINCIPAL):  # the responsible unit itself (the office named as issuer)
        denied(r.notify, notice, flow="notify-risk", contains="网信办", actor=own, **params)
    denied(r.notify, notice, flow="notify-risk", actor=SQ02_PRINCIPAL, **params)  # a peer, in the office's name
    denied(r.notify, notice, flow="notify-risk", contains="下发单位（街道综合治理办公室）或其上级的在岗人员",
           actor=SQ02_OFFICER, issuer="ZHB", **params)  # a peer, in the supervisor's name
    # the supervising department of other communities is not on SQ03's line: the issuer is refused
    err = denied(r.notify, notice, flow="notify-risk", field="issuer", needs="须为", actor=GGFW_HEAD,
                 issuer="GGFW", contains="不能是责任单位本身或平级单位", **params)
    assert "所填：公共服务办公室" in err.message
    # ... and the supervisor may not sign in the 网信办's name (it is not on the 网信办's line)
    denied(r.notify, notice, flow="notify-risk", contains="下发单位（街道网络安全和信息化领导小组办公室（网信办））或其上级",
           actor=ZHB_HEAD, **params)
    denied(r.notify, notice, flow="notify-risk", field="issuer", needs="须为", actor=OFFICE, issuer="SQ03",
           contains="所填：建设社区", **params)


def test_issuing_side_never_the_responsible_unit_itself(org, clock):
    """The ``never`` bar: the street's party secretary is on the 网信办's line (admitted for
    SQ03) but is a post holder of JD01, so JD01's own rectification is not his to issue,
    verify or extend; the 网信办 does it."""
    clock("2026-11-02T10:00:00+08:00")
    params = dict(unit="JD01", source="X区网安〔2026〕3号通报", risk_level="high", problem="街道门户弱口令",
                  requirement="修改口令")
    bar = "不得由东湖街道党工委的在岗人员办理"
    err = denied(r.notify, r.NotifyRiskRequest, flow="notify-risk", contains=bar, actor=STREET, **params)
    assert err.message.rstrip().endswith("是东湖街道党工委的在岗人员")
    case_id = act(r.notify, r.NotifyRiskRequest, actor=OFFICE, **params).case.id
    request_extension(STREET_OFFICER, case_id)
    denied(r.decide_extension, r.DecideExtensionRequest, flow="decide-extension", contains=bar, actor=STREET,
           case_id=case_id, approved=True, opinion="同意")
    assert decide_extension(OFFICE_STAFF, case_id).case.data["extensions"][-1]["status"] == "approved"
    acknowledge(STREET_OFFICER, case_id)
    submit(STREET, case_id)
    denied(r.verify, r.VerifyRectificationRequest, flow="verify-rectification", contains=bar, actor=STREET,
           case_id=case_id, passed=True, opinion="通过")
    assert verify(OFFICE, case_id).case.state == "closed"


def test_issuing_side_verify_and_decide_extension(org, clock):
    """verify-rectification, decide-extension: the issuing side of the case: the 网信办, the
    党工委 above it, the supervising department that issued it; never the unit, a peer or
    another department."""
    clock("2026-11-02T10:00:00+08:00")
    case_id = notify().case.id
    request_extension(OFFICER, case_id)
    for outsider in (SQ02_PRINCIPAL, GGFW_HEAD, ZHB_HEAD, DISCIPLINE):  # ZHB did not issue this one
        denied(r.decide_extension, r.DecideExtensionRequest, flow="decide-extension", actor=outsider,
               case_id=case_id, approved=True, opinion="同意")
    assert decide_extension(STREET, case_id, approved=False).case.data["extensions"][-1]["status"] == "rejected"
    request_extension(OFFICER, case_id)
    out = decide_extension(OFFICE, case_id)
    assert out.case.data["extensions"][-1]["status"] == "approved"
    acknowledge(OFFICER, case_id)
    submit(OFFICER, case_id)
    for outsider in (SQ02_PRINCIPAL, GGFW_HEAD, ZHB_HEAD):
        denied(r.verify, r.VerifyRectificationRequest, flow="verify-rectification", actor=outsider,
               case_id=case_id, passed=False, opinion="不通过")
    assert verify(STREET, case_id, passed=False).case.state == "acknowledged"
    submit(OFFICER, case_id)
    assert verify(OFFICE_STAFF, case_id).case.state == "closed"
    # a notice the supervising department issued is its to verify (and the 网信办's)
    zhb = notify(actor=ZHB_HEAD, issuer="ZHB", problem_code="ZHB-1").case.id
    acknowledge(LIAISON, zhb)
    submit(LIAISON, zhb)
    denied(r.verify, r.VerifyRectificationRequest, flow="verify-rectification", actor=GGFW_HEAD, case_id=zhb,
           passed=True, opinion="通过")
    out = verify(ZHB_HEAD, zhb)
    assert out.case.state == "closed" and last_event(zhb)["actor"] == ZHB_HEAD


# ---------------------------------------------------------------- rectification: the responsible unit


def test_responsible_unit_row(org, clock):
    """acknowledge-risk, submit-rectification, request-extension: a post holder of the
    responsible unit; not the issuer, not a peer."""
    clock("2026-11-02T10:00:00+08:00")
    case_id = notify().case.id
    for outsider in (OFFICE, STREET, SQ02_OFFICER, ZHB_HEAD):
        denied(r.acknowledge, r.AcknowledgeRiskRequest, flow="acknowledge-risk", contains="建设社区的在岗人员",
               actor=outsider, case_id=case_id)
        denied(r.request_extension, r.RequestExtensionRequest, flow="request-extension", actor=outsider,
               case_id=case_id, reason="理由", new_due_at="2026-11-20T00:00:00+08:00")
    out = request_extension(PRINCIPAL, case_id)
    assert out.case.data["extensions"][-1]["status"] == "pending" and out.case.data["extensions"][-1]["by"] == PRINCIPAL
    assert acknowledge(MEMBER, case_id).case.state == "acknowledged"
    for outsider in (OFFICE, STREET, SQ02_OFFICER):
        denied(r.submit, r.SubmitRectificationRequest, flow="submit-rectification", actor=outsider,
               case_id=case_id, measures="已改", evidence=["截图"])
    assert submit(LIAISON, case_id).case.state == "submitted"


# ---------------------------------------------------------------- accountability


def test_open_accountability_row(org, clock):
    """open-accountability (a manual case, or accepting a proposal): 网信办 staff or the
    党工委/纪工委; not the unit, a peer or a supervising department."""
    clock("2026-11-20T09:30:00+08:00")
    manual = dict(unit="SQ03", circumstance="c6_other", facts="违规发布信息", facts_date="2026-11-10",
                  involved_persons=[LIAISON])
    for outsider in (PRINCIPAL, SQ02_PRINCIPAL, ZHB_HEAD):
        denied(a.open_case, a.OpenAccountabilityRequest, flow="open-accountability",
               contains="东湖街道党工委、街道纪工委的成员", actor=outsider, **manual)
    for insider in (OFFICE_STAFF, DISCIPLINE, STREET_MEMBER):
        out = open_manual(actor=insider)
        assert out.case.state == "investigating" and last_event(out.case.id)["actor"] == insider
    proposal = proposal_at("SQ03", OFFICER)
    for outsider in (PRINCIPAL, LIAISON, SQ02_PRINCIPAL):
        denied(a.open_case, a.OpenAccountabilityRequest, flow="open-accountability", actor=outsider,
               case_id=proposal)
    out = act(a.open_case, a.OpenAccountabilityRequest, actor=JGW_HEAD, case_id=proposal)
    assert out.case.state == "investigating" and last_event(proposal)["type"] == "accept"


def test_dismiss_row(org, clock):
    """dismiss-accountability: 网信办 staff or the 党工委/纪工委; never a person the case names
    (the ``never`` bar: the street's secretary, a 党工委 member, on a proposal naming him)."""
    clock("2026-11-20T09:30:00+08:00")
    proposal = proposal_at("SQ03", OFFICER)
    for outsider in (PRINCIPAL, SQ02_PRINCIPAL, ZHB_HEAD):
        denied(a.dismiss, a.DismissAccountabilityRequest, flow="dismiss-accountability", actor=outsider,
               case_id=proposal, reason="经核实情节轻微")
    out = act(a.dismiss, a.DismissAccountabilityRequest, actor=OFFICE, case_id=proposal, reason="经核实情节轻微")
    assert out.case.state == "dismissed" and out.case.data["dismissed"]["by"] == OFFICE
    street = proposal_at("JD01", STREET_OFFICER)
    assert STREET in chain(street)
    denied(a.dismiss, a.DismissAccountabilityRequest, flow="dismiss-accountability", contains="是本案倒查链中的人员",
           actor=STREET, case_id=street, reason="不予问责")
    out = act(a.dismiss, a.DismissAccountabilityRequest, actor=DISCIPLINE, case_id=street, reason="经核实情节轻微")
    assert out.case.state == "dismissed"


def test_decision_row(org, clock):
    """record-accountability-decision: a member of the organisation named as ``decided_by``,
    which must have authority over the unit (党工委 or 纪工委); never a person in the chain."""
    clock("2026-11-20T10:00:00+08:00")
    cid = open_manual(involved=(LIAISON, STREET_MEMBER)).case.id
    decision = a.RecordAccountabilityDecisionRequest
    forms = {LIAISON: ["诫勉"]}
    # the organisation named has no authority over SQ03: refused on decided_by, whoever records it
    for unit, name in (("ZHB", "街道综合治理办公室"), ("SQ03", "建设社区"), ("WXB", "网信办")):
        denied(a.decide, decision, flow="record-accountability-decision", field="decided_by", needs="须为",
               contains="所填：", actor=STREET, case_id=cid, decided_by=unit, forms=forms)
    # not a member of the organisation named
    for outsider, org_code in ((DISCIPLINE, "JD01"), (OFFICE, "JD01"), (STREET, "JGW"), (PRINCIPAL, "JD01")):
        denied(a.decide, decision, flow="record-accountability-decision", contains="作出决定的党组织", actor=outsider,
               case_id=cid, decided_by=org_code, forms=forms)
    # a member of the 党工委 named in the chain
    denied(a.decide, decision, flow="record-accountability-decision", contains="是本案倒查链中的人员",
           actor=STREET_MEMBER, case_id=cid, decided_by="JD01", forms=forms)
    out = decide(STREET, cid, forms=forms)
    assert out.case.state == "decided" and out.case.data["decision"]["decided_by"] == "JD01"
    # the 纪工委 records its own 纪律处分
    other = open_manual().case.id
    out = decide(DISCIPLINE, other, decided_by="JGW", forms={LIAISON: ["纪律处分"]})
    assert out.case.state == "decided"
    assert out.case.data["decision"]["decided_by"] == "JGW"
    assert out.case.data["decision"]["persons"][LIAISON]["forms"] == ["纪律处分"]


def test_file_appeal_row(org, clock):
    """file-appeal: the person held accountable, for themselves, or the principal of the
    organisation held accountable; nobody on another's behalf."""
    clock("2026-11-20T10:00:00+08:00")
    cid = open_manual().case.id
    decide(STREET, cid, forms={LIAISON: ["诫勉"]}, organisation_forms=["检查"])
    for other in (OFFICER, PRINCIPAL, OFFICE, STREET):
        denied(a.appeal, a.FileAppealRequest, flow="file-appeal", contains="被问责人员本人", actor=other,
               case_id=cid, person=LIAISON, reason="不服")
    for other in (OFFICER, SQ04_PRINCIPAL, OFFICE):  # the organisation's appeal: its principal only
        denied(a.appeal, a.FileAppealRequest, flow="file-appeal", actor=other, case_id=cid, person="SQ03",
               reason="不服")
    out = appeal(LIAISON, cid, LIAISON)
    assert out.case.state == "appealed" and out.case.data["appeals"][LIAISON]["status"] == "pending"
    out = appeal(PRINCIPAL, cid, "SQ03")
    assert out.case.data["appeals"]["SQ03"]["status"] == "pending" and last_event(cid)["actor"] == PRINCIPAL


def test_decide_appeal_row(org, clock):
    """decide-appeal: a member of the deciding organisation; never the appellant, never a
    person in the chain (both bars on a 党工委 member held accountable in this case)."""
    clock("2026-11-20T10:00:00+08:00")
    cid = decided_case()
    appeal(LIAISON, cid, LIAISON)
    appeal(STREET_MEMBER, cid, STREET_MEMBER)
    for outsider in (DISCIPLINE, JGW_HEAD, OFFICE, PRINCIPAL):  # the decision is the 党工委's
        denied(a.decide_appeal, a.DecideAppealRequest, flow="decide-appeal", contains="作出决定的党组织（东湖街道党工委）的成员",
               actor=outsider, case_id=cid, person=LIAISON, upheld=True, opinion="维持")
    denied(a.decide_appeal, a.DecideAppealRequest, flow="decide-appeal", contains="是本案倒查链中的人员",
           actor=STREET_MEMBER, case_id=cid, person=LIAISON, upheld=True, opinion="维持")
    denied(a.decide_appeal, a.DecideAppealRequest, flow="decide-appeal", contains="是被问责人员本人",
           actor=STREET_MEMBER, case_id=cid, person=STREET_MEMBER, upheld=False, opinion="撤销")
    out = decide_appeal(STREET, cid, LIAISON)
    assert out.case.state == "appealed" and out.case.data["appeals"][LIAISON]["status"] == "upheld"
    out = decide_appeal("p-zhou-yaqin", cid, STREET_MEMBER)  # another member of the 党工委
    assert out.case.state == "closed" and out.case.data["appeals"][STREET_MEMBER]["status"] == "upheld"


# ---------------------------------------------------------------- assessment


def test_start_and_publish_row(org, clock):
    """start-annual-assessment, publish-assessment: 网信办 staff or the 党工委 (the start is
    also scheduled); not a community, not a supervising department."""
    clock("2026-12-01T10:00:00+08:00")
    for outsider in (SQ01_PRINCIPAL, ZHB_HEAD):
        denied(asm.start, asm.StartAssessmentRequest, flow="start-annual-assessment", contains="定时任务（system）或",
               actor=outsider, year=2026, units=["SQ01", "SQ02"])
    out = start(OFFICE_STAFF)
    assert out.case.state == "started" and last_event(out.case.id)["actor"] == OFFICE_STAFF
    assert start(STREET, year=2025).case.state == "started"
    score(OFFICE, "SQ01", "SQ02")
    for outsider in (SQ01_PRINCIPAL, SQ02_PRINCIPAL, ZHB_HEAD):
        denied(asm.publish, asm.PublishAssessmentRequest, flow="publish-assessment", actor=outsider, year=2026)
    out = act(asm.publish, asm.PublishAssessmentRequest, actor=STREET_MEMBER, year=2026)
    assert out.case.state == "published" and last_event(out.case.id)["actor"] == STREET_MEMBER


def test_score_row(org, clock):
    """score-assessment: 网信办 staff or the 党工委; never a unit for its own score (the
    ``never`` bar: a 党工委 member who also sits on SQ01's committee scores SQ02, not SQ01)."""
    clock("2026-12-01T10:00:00+08:00")
    add_posts([{"unit": "SQ01", "person": STREET_MEMBER, "role": "member", "valid_from": "2026-01-01"}])
    start("system")
    for outsider, unit in ((SQ01_PRINCIPAL, "SQ02"), (SQ02_PRINCIPAL, "SQ02"), (ZHB_HEAD, "SQ01")):
        denied(asm.score, asm.ScoreAssessmentRequest, flow="score-assessment", actor=outsider, year=2026,
               table=[{"unit": unit, "scores": FULL_MANUAL}])
    for table in (["SQ01"], ["SQ02", "SQ01"]):
        denied(asm.score, asm.ScoreAssessmentRequest, flow="score-assessment", contains="是被评分单位的人员（东风社区）",
               actor=STREET_MEMBER, year=2026, table=[{"unit": u, "scores": FULL_MANUAL} for u in table])
    score(STREET_MEMBER, "SQ02")
    score(OFFICE_STAFF, "SQ01")
    rows = assessed()
    assert rows["SQ02"].manual["by"] == STREET_MEMBER and rows["SQ01"].manual["by"] == OFFICE_STAFF


def test_self_assessment_and_activity_row(org, clock):
    """submit-self-assessment, record-activity: a post holder of that unit, or 网信办 staff
    for it; not a peer, the 党工委 or a supervising department."""
    clock("2026-12-01T10:00:00+08:00")
    start("system")
    self_assess = dict(year=2026, unit="SQ01", scores=FULL_MANUAL)
    for outsider in (SQ02_PRINCIPAL, STREET, ZHB_HEAD):
        denied(asm.self_assess, asm.SelfAssessmentRequest, flow="submit-self-assessment", contains="东风社区的在岗人员",
               actor=outsider, **self_assess)
    act(asm.self_assess, asm.SelfAssessmentRequest, actor=SQ01_LIAISON, **self_assess)
    act(asm.self_assess, asm.SelfAssessmentRequest, actor=OFFICE_STAFF, **{**self_assess, "unit": "SQ02"})
    rows = assessed()
    assert rows["SQ01"].self_scores["scores"] == FULL_MANUAL and rows["SQ02"].self_submitted_at is not None

    activity = dict(unit="SQ01", kind="training", date="2026-11-30", title="网络安全培训", participants=[SQ01_LIAISON])
    for outsider in (SQ02_LIAISON, STREET, ZHB_HEAD):
        denied(asm.record_activity, asm.RecordActivityRequest, flow="record-activity", actor=outsider, **activity)
    out = act(asm.record_activity, asm.RecordActivityRequest, actor=SQ01_PRINCIPAL, **activity)
    assert out.case.state == "recorded" and out.case.unit == "SQ01"
    out = act(asm.record_activity, asm.RecordActivityRequest, actor=OFFICE, **{**activity, "unit": "SQ02"})
    assert out.case.state == "recorded" and out.case.unit == "SQ02"


# ---------------------------------------------------------------- the eight violations found


def test_violation_1_a_peer_community_cannot_issue_a_notice(org, clock):
    """An SQ02 post holder issues a 整改通知 to SQ03 naming SQ02 as issuer: refused on the
    issuer; without naming it (the 网信办 by default) refused on the actor."""
    clock("2026-11-02T10:00:00+08:00")
    params = dict(unit="SQ03", source="红旗社区检查", risk_level="high", problem="弱口令", requirement="整改")
    err = denied(r.notify, r.NotifyRiskRequest, flow="notify-risk", field="issuer", needs="须为",
                 contains="不能是责任单位本身或平级单位", actor=SQ02_PRINCIPAL, issuer="SQ02", **params)
    assert "所填：红旗社区" in err.message
    denied(r.notify, r.NotifyRiskRequest, flow="notify-risk", actor=SQ02_OFFICER, **params)


def test_violation_2_another_communitys_liaison_cannot_acknowledge(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = notify().case.id
    err = denied(r.acknowledge, r.AcknowledgeRiskRequest, flow="acknowledge-risk", contains="须由建设社区的在岗人员办理",
                 actor=SQ02_LIAISON, case_id=case_id)
    assert "红旗社区网络安全联络员" in err.message
    assert show(case_id)["state"] == "notified"


def test_violation_3_a_liaison_cannot_open_accountability_against_another_community(org, clock):
    clock("2026-11-20T10:00:00+08:00")
    denied(a.open_case, a.OpenAccountabilityRequest, flow="open-accountability", actor=SQ01_LIAISON, unit="SQ03",
           circumstance="c6_other", facts="违规发布信息", facts_date="2026-11-10", involved_persons=[LIAISON])
    denied(a.open_case, a.OpenAccountabilityRequest, flow="open-accountability", actor=SQ02_LIAISON, unit="SQ03",
           circumstance="c6_other", facts="违规发布信息", facts_date="2026-11-10", involved_persons=[LIAISON],
           weak_supervision=True)


def test_violation_4_a_liaison_cannot_record_a_discipline_decision(org, clock):
    clock("2026-11-20T10:00:00+08:00")
    cid = open_manual(involved=(OFFICER,)).case.id
    for liaison in (LIAISON, SQ01_LIAISON):
        denied(a.decide, a.RecordAccountabilityDecisionRequest, flow="record-accountability-decision",
               contains="须由作出决定的党组织（街道纪工委）的成员办理", actor=liaison, case_id=cid, decided_by="JGW",
               forms={OFFICER: ["纪律处分"]})
    assert show(cid)["state"] == "investigating"


def test_violation_5_the_appellant_cannot_decide_his_own_appeal(org, clock):
    clock("2026-11-20T10:00:00+08:00")
    cid = decided_case()
    appeal(LIAISON, cid, LIAISON)
    appeal(STREET_MEMBER, cid, STREET_MEMBER)
    # a community liaison (not of the deciding organisation at all) ...
    denied(a.decide_appeal, a.DecideAppealRequest, flow="decide-appeal", actor=LIAISON, case_id=cid,
           person=LIAISON, upheld=False, opinion="撤销", contains="须由作出决定的党组织（东湖街道党工委）的成员办理")
    # ... and a member of the deciding 党工委 himself: barred as the appellant
    denied(a.decide_appeal, a.DecideAppealRequest, flow="decide-appeal", actor=STREET_MEMBER, case_id=cid,
           person=STREET_MEMBER, upheld=False, opinion="撤销", contains="是被问责人员本人")
    assert {p: x["status"] for p, x in show(cid)["data"]["appeals"].items()} == {
        LIAISON: "pending", STREET_MEMBER: "pending"}


def test_violation_6_a_person_in_the_chain_cannot_record_no_accountability(org, clock):
    """The accused principal: SQ03's secretary on SQ03's proposal (not an organisation with
    authority at all), and the street's secretary on the street's own proposal (a member of
    the 党工委, barred because the chain names him) — neither 不予问责 nor a decision with no
    forms."""
    clock("2026-11-20T09:30:00+08:00")
    for unit, reporter, accused in (("SQ03", OFFICER, PRINCIPAL), ("JD01", STREET_OFFICER, STREET)):
        proposal = proposal_at(unit, reporter)
        assert accused in chain(proposal)
        denied(a.dismiss, a.DismissAccountabilityRequest, flow="dismiss-accountability", actor=accused,
               case_id=proposal, reason="情节轻微，不予问责")
        act(a.open_case, a.OpenAccountabilityRequest, actor=OFFICE, case_id=proposal)
        assert accused in chain(proposal)
        denied(a.decide, a.RecordAccountabilityDecisionRequest, flow="record-accountability-decision", actor=accused,
               case_id=proposal, decided_by="JD01", forms={})
        assert show(proposal)["state"] == "investigating"
    denied(a.decide, a.RecordAccountabilityDecisionRequest, flow="record-accountability-decision",
           contains="是本案倒查链中的人员", actor=STREET, case_id=proposal, decided_by="JD01", forms={})
    # the 纪工委 may record it (nobody held accountable: closed at once)
    assert decide(DISCIPLINE, proposal, decided_by="JGW").case.state == "closed"


def test_violation_7_the_unit_cannot_verify_its_own_rectification(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = notify().case.id
    acknowledge(OFFICER, case_id)
    submit(OFFICER, case_id)
    for own in (OFFICER, PRINCIPAL, LEAD):
        denied(r.verify, r.VerifyRectificationRequest, flow="verify-rectification", actor=own, case_id=case_id,
               passed=True, opinion="已整改到位")
    assert show(case_id)["state"] == "submitted"


def test_violation_8_the_unit_cannot_approve_its_own_extension(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = notify().case.id
    request_extension(OFFICER, case_id)
    for own in (PRINCIPAL, OFFICER, LEAD):
        denied(r.decide_extension, r.DecideExtensionRequest, flow="decide-extension", actor=own, case_id=case_id,
               approved=True, opinion="同意")
    assert [e["status"] for e in show(case_id)["data"]["extensions"]] == ["pending"]


def test_the_accused_cannot_take_himself_out_of_the_chain_and_then_decide(org, clock):
    """Violation 6 by another road: the street's secretary, named in the street's proposal,
    tries to accept it with ``chain_remove`` of himself, then to record a decision with no
    forms (a person the case names — in the chain as computed or as edited — may do neither). Whether
    the accept or the decision is refused, he must not end up deciding his own case."""
    clock("2026-11-20T09:30:00+08:00")
    proposal = proposal_at("JD01", STREET_OFFICER)
    assert STREET in chain(proposal)
    try:
        act(a.open_case, a.OpenAccountabilityRequest, actor=STREET, case_id=proposal,
            chain_remove=[{"person": STREET, "reason": "事发当日不在岗"}])
    except DomainError:
        pass  # refused: the fix may sit here ...
    denied(a.decide, a.RecordAccountabilityDecisionRequest, flow="record-accountability-decision",  # ... or here
           contains="是本案倒查链中的人员", actor=STREET, case_id=proposal, decided_by="JD01", forms={})


# ---------------------------------------------------------------- the logged-in person (issue 18 item 3)


def audit_logins(case_id: str) -> list[tuple[str, str, dict | None]]:
    """(event type, actor, what the audit event recorded of the login) of a case, in order."""
    from sqlmodel import select

    from models.audit import AuditEvent

    with session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)).all()
        return [(e.type, e.actor, (e.payload or {}).get("login")) for e in rows]


@pytest.mark.parametrize("login,actor,contains", [
    (("p-liu-ting", "password"), OFFICE, "操作人须为登录人本人（p-liu-ting），不能代他人（p-sun-jianhua）"),
    (("service", "service"), SQ01_LIAISON, "以服务凭据发起的运行只能以 system 办理"),
])
def test_the_actor_must_be_the_logged_in_person(org, clock, login, actor, contains):
    from models import authority

    token = authority.LOGIN.set(login)
    try:
        refused(act, i.report, i.ReportIncidentRequest, actor=actor, unit="SQ01", category="malware",
                level="general", title="终端感染", description="一台终端感染病毒",
                discovered_at="2026-11-20T09:00:00+08:00", field="actor", contains=contains)
    finally:
        authority.LOGIN.reset(token)


def test_the_systems_reaction_inside_a_persons_run_is_recorded_under_that_login(org, clock):
    """A 泄密 incident reported by the logged-in liaison: the report is hers, the accountability
    proposal it causes is the system's — and both audit events say in whose login they happened."""
    from models import authority

    token = authority.LOGIN.set(("p-liu-ting", "password"))
    try:
        proposal = proposal_at("SQ01", SQ01_LIAISON)
    finally:
        authority.LOGIN.reset(token)
    login = {"person": "p-liu-ting", "method": "password"}
    incident = show(proposal)["proposed_from"]
    assert ("report", SQ01_LIAISON, login) in audit_logins(incident)
    assert ("propose", "system", login) in audit_logins(proposal)
