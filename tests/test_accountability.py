"""逐级倒查问责 (SPEC 3.3): automatic proposals, the chain, responsibility, decision, appeal."""
from __future__ import annotations

import os

import pytest
import yaml
from conftest import db_state

from models.db import session
from models.errors import DomainError

OFFICE, STREET = "p-sun-jianhua", "p-wang-zhiqiang"  # 网信办主任, 党工委书记
LIAISON, OFFICER, LEAD, PRINCIPAL = "p-he-xiaoli", "p-guo-tao", "p-hu-haiyan", "p-zhu-hongwei"  # SQ03
MEMBERS = ["p-gao-jianping", "p-lin-xiulan"]  # SQ03


def at(when: str) -> None:
    os.environ["DUTYFLOW_NOW"] = when


def core(name: str, **params):
    from models import accountability as a
    from models import incident as i
    from models.requests import validate_request

    fn, model = {
        "report": (i.report, i.ReportIncidentRequest), "update": (i.update, i.UpdateIncidentRequest),
        "open": (a.open_case, a.OpenAccountabilityRequest), "dismiss": (a.dismiss, a.DismissAccountabilityRequest),
        "decide": (a.decide, a.RecordAccountabilityDecisionRequest), "appeal": (a.appeal, a.FileAppealRequest),
        "decide_appeal": (a.decide_appeal, a.DecideAppealRequest),
    }[name]
    return fn(validate_request(model, params))


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def proposals(source: str) -> list[dict]:
    from sqlmodel import select

    from models.case import Case

    with session() as s:
        ids = s.exec(select(Case.id).where(Case.proposed_from == source).order_by(Case.id)).all()
    return [show(i) for i in ids]


def incident(**over) -> str:
    params = dict(actor=OFFICER, unit="SQ03", category="defacement", level="relatively_major",
                  title="社区门户网站首页被篡改", description="首页被植入有害信息",
                  discovered_at="2026-11-20T08:00:00+08:00", involved_persons=[LIAISON])
    params.update(over)
    return core("report", **params).case.id


def load(posts: list[dict], persons: list[dict] = ()) -> None:
    from models.org import load_org

    data = {"units": [], "persons": list(persons), "posts": posts}
    with session() as s:
        load_org(s, data, yaml.safe_dump(data, allow_unicode=True))


def chain_of(case: dict) -> list[tuple]:
    return [(c["person"], c["role"], c["responsibility"]) for c in case["chain"]]


# ---------------------------------------------------------------- from the facts to the decision


@pytest.mark.usefixtures("prefect_harness")
def test_late_reported_defacement_traces_the_holders_on_the_incident_date(org, clock):
    from support import run_flow

    at("2026-11-20T10:30:00+08:00")  # found 08:00, reported 10:30: internal report missed (迟报)
    inc = incident()
    [proposal] = proposals(inc)
    assert proposal["state"] == "proposed" and proposal["data"]["circumstance"] == "c1_defacement_unreported"
    assert proposal["notices"][0]["kind"] == "accountability_proposal"
    # SQ03 gets a new principal after the incident
    load([{"unit": "SQ03", "person": "p-new-sec", "role": "principal", "valid_from": "2026-11-25"}],
         [{"id": "p-new-sec", "name": "新书记", "channels": []}])
    clock("2026-11-28T10:00:00+08:00")
    out = run_flow("open-accountability", actor=OFFICE, case_id=proposal["id"])
    assert out["state"] == "investigating"
    case = show(proposal["id"])
    assert chain_of(case) == [
        (LIAISON, "involved", "直接责任"), (OFFICER, "cyber_officer", "领导责任"),
        (LEAD, "cyber_lead", "领导责任"), (PRINCIPAL, "principal", "领导责任")]  # not p-new-sec
    assert case["chain"][3]["suggested_forms"] == ["通报"]
    out = run_flow("record-accountability-decision", actor=STREET, case_id=proposal["id"], decided_by="JD01",
                   forms={LIAISON: ["诫勉"], PRINCIPAL: ["通报"]})
    assert out["state"] == "decided"
    case = show(proposal["id"])
    decision = [n for n in case["notices"] if n["kind"] == "accountability_decision"][0]
    assert sorted(decision["recipients"]) == sorted([LIAISON, OFFICER, LEAD, PRINCIPAL])
    persons = case["data"]["decision"]["persons"]
    assert persons[LIAISON] == {"forms": ["诫勉"], "suggested": ["通报", "诫勉"], "responsibility": "直接责任"}
    assert persons[LEAD]["forms"] == [] and persons[LEAD]["suggested"] == ["通报"]  # the decision may differ
    windows = [o for o in case["obligations"] if o["kind"] == "appeal_window"]
    assert len(windows) == 2 and windows[0]["due_at"] == "2026-12-29T00:00:00+08:00"  # 1 calendar month
    assert len(proposals(inc)) == 1


def test_each_circumstance_is_proposed_once_whoever_notices_it(org):
    from tasks.sweep import sweep

    at("2026-11-20T09:30:00+08:00")
    c2 = incident(category="secret_leak", level="general", title="涉密文件外泄",
                  discovered_at="2026-11-20T09:00:00+08:00")
    assert [p["data"]["circumstance"] for p in proposals(c2)] == ["c2_data_leak"]
    pi_small = incident(category="personal_info_leak", level="general", discovered_at="2026-11-20T09:00:00+08:00")
    assert proposals(pi_small) == []
    c3 = incident(category="cii_attack", level="relatively_major", discovered_at="2026-11-20T09:00:00+08:00",
                  reporter_path="cii_operator")
    c4 = incident(category="malware", level="general", discovered_at="2026-11-20T09:00:00+08:00")
    core("update", actor=OFFICER, case_id=c4, note="核查发现曾隐瞒", concealed=True)
    core("update", actor=OFFICER, case_id=c4, note="再次续报", concealed=True)
    assert [p["data"]["circumstance"] for p in proposals(c4)] == ["c4_concealment_or_unrectified"]
    at("2026-11-21T10:00:00+08:00")  # cii: external report (1 h) and handling (24 h) missed
    sweep()
    sweep()
    assert sorted(p["data"]["circumstance"] for p in proposals(c3)) == [
        "c3_cii_attack_unhandled", "c4_concealment_or_unrectified"]
    assert len(proposals(c2)) == 1


def test_collective_decision_separates_main_and_important_responsibility(org):
    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="集体决定关闭日志审计导致泄露",
                  facts_date="2026-11-10", involved_persons=[LIAISON],
                  collective_decision={"date": "2026-10-15", "participants": [PRINCIPAL, LEAD, *MEMBERS, OFFICER],
                                       "dissenters": [OFFICER]})
    case = show(result.case.id)
    assert case["state"] == "investigating" and case["proposed_from"] is None
    resp = {c["person"]: c["responsibility"] for c in case["chain"]}
    assert resp[PRINCIPAL] == resp[LEAD] == "主要领导责任"
    assert resp[MEMBERS[0]] == resp[MEMBERS[1]] == "重要领导责任"
    assert resp[OFFICER] == "无"
    assert resp[LIAISON] == "直接责任"
    assert [n["kind"] for n in case["notices"]] == ["accountability_proposal"]


def test_weak_supervision_adds_the_supervisor_head_and_a_vacant_post_shows(org):
    load([{"unit": "SQ05", "person": "p-feng-jianxin", "role": "cyber_lead", "valid_from": "2024-01-01",
           "valid_to": "2026-10-31"}])
    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ05", circumstance="c6_other", facts="监管缺位",
                  facts_date="2026-11-10", weak_supervision=True)
    chain = show(result.case.id)["chain"]
    lead = [c for c in chain if c["role"] == "cyber_lead"][0]
    assert lead["person"] is None and lead["vacant"] is True and lead["responsibility"] == "无"
    head = [c for c in chain if c["role"] == "supervisor_head"][0]
    assert head["person"] == "p-huang-guoqing" and head["unit"] == "ZHB"
    assert head["responsibility"] == "领导责任"
    without = core("open", actor=OFFICE, unit="SQ05", circumstance="c6_other", facts="同上",
                   facts_date="2026-11-10", weak_supervision=False)
    assert "supervisor_head" not in [c["role"] for c in show(without.case.id)["chain"]]


def test_operator_edits_are_kept_beside_the_computed_chain(org):
    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ03", circumstance="c5_obstruction", facts="拒不配合调查",
                  facts_date="2026-11-10", chain_add=[{"person": MEMBERS[0], "reason": "分管该系统"}],
                  chain_remove=[{"person": OFFICER, "reason": "事发时休产假"}])
    data = show(result.case.id)["data"]
    assert OFFICER in [c["person"] for c in data["computed_chain"]]
    assert OFFICER not in [c["person"] for c in data["chain"]]
    assert MEMBERS[0] in [c["person"] for c in data["chain"]]
    assert data["chain_edits"]["remove"][0]["reason"] == "事发时休产假"


def _decided_case() -> str:
    at("2026-03-05T10:00:00+08:00")
    cid = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="事实", facts_date="2026-02-20",
               involved_persons=[LIAISON]).case.id
    core("decide", actor=STREET, case_id=cid, decided_by="JD01", forms={LIAISON: ["诫勉"], "p-ma-yumei": ["通报"]})
    return cid


def test_appeal_inside_the_window_keeps_the_decision_in_force(org, sink):
    from tasks.notify import deliver
    from tasks.sweep import sweep

    cid = _decided_case()
    deliver()
    sweep()  # every decision notification delivered: serve_decision met
    case = show(cid)
    assert [o["status"] for o in case["obligations"] if o["kind"] == "serve_decision"] == ["met"]
    window = [o for o in case["obligations"] if o["kind"] == "appeal_window"][0]
    assert window["due_at"] == "2026-04-08T00:00:00+08:00"  # 4/5 + 清明 (4/4–4/6) → 4/7 24:00
    at("2026-04-07T16:00:00+08:00")
    assert core("appeal", actor=LIAISON, case_id=cid, person=LIAISON, reason="事实认定有误").case.state == "appealed"
    case = show(cid)
    assert case["data"]["decision"]["in_force"] is True
    assert case["data"]["decision"]["persons"][LIAISON]["forms"] == ["诫勉"]
    at("2026-04-08T10:00:00+08:00")
    before = db_state()
    with pytest.raises(DomainError) as info:
        core("appeal", actor=OFFICE, case_id=cid, person="p-ma-yumei", reason="不服")  # recorded by the office
    assert "2026年4月8日 00:00（北京时间）" in info.value.message and "届满" in info.value.message
    assert db_state() == before
    out = core("decide_appeal", actor=STREET, case_id=cid, person=LIAISON, upheld=True, opinion="维持")
    assert out.case.state == "decided"  # p-ma-yumei's window has not been closed by the sweep yet
    sweep()
    assert show(cid)["state"] == "closed"
    from models.audit import verify

    with session() as s:
        assert verify(s)[0]
    events = [e["type"] for e in show(cid)["events"]]
    assert events[:2] == ["open", "decide"] and "appeal" in events and "decide_appeal" in events
    assert "appeal_window_closed" in events


def test_dismissal_needs_a_reason(org):
    at("2026-11-20T09:30:00+08:00")
    [proposal] = proposals(incident(category="secret_leak", level="general", discovered_at="2026-11-20T09:00:00+08:00"))
    before = db_state()
    with pytest.raises(DomainError) as info:
        core("dismiss", actor=STREET, case_id=proposal["id"], reason="")
    assert info.value.field == "reason" and db_state() == before
    assert core("dismiss", actor=STREET, case_id=proposal["id"], reason="经核实不构成泄密").case.state == "dismissed"


class TestRefusals:
    def refused(self, name, field=None, contains="", **params):
        from support import refused

        return refused(core, name, field=field, contains=contains, **params)

    def test_unknown_person(self, org):
        at("2026-11-28T10:00:00+08:00")
        self.refused("open", field="involved_persons[0]", actor=OFFICE, unit="SQ03", circumstance="c6_other",
                     facts="x", facts_date="2026-11-10", involved_persons=["p-ghost"])
        cid = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="x", facts_date="2026-11-10").case.id
        self.refused("decide", field="forms.p-ghost", actor=STREET, case_id=cid, decided_by="JD01", forms={"p-ghost": ["通报"]})
        self.refused("decide", field="forms.p-he-xiaoli", contains="不在本案倒查链", actor=STREET, case_id=cid,
                     decided_by="JD01", forms={LIAISON: ["通报"]})
        self.refused("decide", field="forms.p-guo-tao.0", contains="诫勉", actor=STREET, case_id=cid, decided_by="JD01",
                     forms={OFFICER: ["开除"]})

    def test_decision_on_a_case_not_investigating(self, org):
        at("2026-11-20T09:30:00+08:00")
        [proposal] = proposals(incident(category="secret_leak", level="general", discovered_at="2026-11-20T09:00:00+08:00"))
        err = self.refused("decide", actor=STREET, case_id=proposal["id"], decided_by="JD01", forms={})
        assert "proposed（已提出问责建议）" in err.message and "accept" in err.message and "dismiss" in err.message

    def test_appeal_by_a_person_not_named(self, org):
        cid = _decided_case()
        self.refused("appeal", field="person", contains=LIAISON, actor=OFFICER, case_id=cid, person=OFFICER, reason="不服")

    def test_manual_case_needs_its_fields_and_a_past_date(self, org):
        at("2026-11-28T10:00:00+08:00")
        self.refused("open", field="circumstance", actor=OFFICE, unit="SQ03", facts="x", facts_date="2026-11-10")
        self.refused("open", field="facts_date", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="x",
                     facts_date="2026-12-10")
        self.refused("open", field="collective_decision.dissenters", actor=OFFICE, unit="SQ03", circumstance="c6_other",
                     facts="x", facts_date="2026-11-10",
                     collective_decision={"date": "2026-10-01", "participants": [PRINCIPAL], "dissenters": [LEAD]})


def test_weak_supervision_is_derived_when_the_supervisor_knew_and_issued_nothing(org):
    """ZHB supervises SQ05. Its staff were notified of an SQ05 case and ZHB issued no 整改通知:
    the chain adds ZHB's head without the operator's flag; after ZHB issues one, it does not."""
    from models import rectification as r
    from models.db import session as db_session
    from models.notice import Notice
    from models.requests import validate_request

    at("2026-06-01T10:00:00+08:00")
    rect = r.notify(validate_request(r.NotifyRiskRequest, dict(
        actor=OFFICE, unit="SQ05", source="检查", risk_level="low", problem="弱口令", requirement="整改")))
    with db_session() as s:  # the 整改通知 was copied to the supervisor's head
        notice = s.get(Notice, rect.notices[0].id)
        from tasks.notify import queue_notifications

        notice.recipients = [*notice.recipients, "p-huang-guoqing"]
        queue_notifications(s, notice)
    at("2026-11-28T10:00:00+08:00")
    derived = core("open", actor=OFFICE, unit="SQ05", circumstance="c6_other", facts="监管缺位", facts_date="2026-11-10")
    heads = [c for c in show(derived.case.id)["chain"] if c["role"] == "supervisor_head"]
    assert [h["person"] for h in heads] == ["p-huang-guoqing"] and "未下发整改通知" in heads[0]["note"]
    at("2026-09-01T10:00:00+08:00")
    r.notify(validate_request(r.NotifyRiskRequest, dict(
        actor=OFFICE, unit="SQ05", source="检查", risk_level="low", problem="弱口令", requirement="整改", issuer="ZHB")))
    at("2026-11-28T10:00:00+08:00")
    again = core("open", actor=OFFICE, unit="SQ05", circumstance="c6_other", facts="同上", facts_date="2026-11-10")
    assert "supervisor_head" not in [c["role"] for c in show(again.case.id)["chain"]]
