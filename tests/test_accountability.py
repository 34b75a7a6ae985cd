"""逐级倒查问责 (SPEC 3.3): automatic proposals, the chain, responsibility, decision, appeal."""
from __future__ import annotations

import os
from datetime import date, datetime

import pytest
import yaml
from conftest import db_state

from models.clock import TZ
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
    params = dict(actor=OFFICER if over.get("unit", "SQ03") == "SQ03" else OFFICE, unit="SQ03", category="defacement", level="relatively_major",
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


def link(case: dict, person: str) -> dict:
    [found] = [c for c in case["chain"] if c["person"] == person]
    return found


def unit_without_supervisor(*codes: str) -> None:
    """Re-load communities with no supervising unit (the 网信办 coordinates them)."""
    from models.org import dump_org, load_org

    with session() as s:
        units = [dict(u, supervisor=None) for u in dump_org(s)["units"] if u["code"] in codes]
        data = {"units": units, "persons": [], "posts": []}
        load_org(s, data, yaml.safe_dump(data, allow_unicode=True))


def rect(action: str, **params):
    from models import rectification as r
    from models.requests import validate_request

    fn, model = {
        "notify": (r.notify, r.NotifyRiskRequest), "acknowledge": (r.acknowledge, r.AcknowledgeRiskRequest),
        "submit": (r.submit, r.SubmitRectificationRequest), "verify": (r.verify, r.VerifyRectificationRequest),
    }[action]
    return fn(validate_request(model, params))


def notice_of(case_id: str, kind: str):
    from sqlmodel import select

    from models.notice import Notice

    with session() as s:
        [n] = s.exec(select(Notice).where(Notice.case_id == case_id, Notice.kind == kind)).all()
        return n


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


def test_accepting_a_proposal_with_edits_revises_the_proposal_and_the_edits_stand(org):
    """An automatic proposal is a draft for the 网信办 (no 文号, no 签发人, not sent to the
    党工委); accepting it issues the 问责建议书 itself, numbered and signed, to the 党工委 and
    the 纪工委. When the investigation changed the chain (a person removed with a reason, a
    collective decision) the signed one says so and lists the chain as changed; a removed
    participant is not put back by the collective decision; the edits are in the audit event."""
    import json

    from support import refused
    from sqlmodel import select

    from models.audit import AuditEvent, verify
    from models.notice import Notice

    at("2026-11-20T09:30:00+08:00")
    [plain] = proposals(incident(category="secret_leak", level="general", discovered_at="2026-11-20T09:00:00+08:00"))
    [draft] = plain["notices"]
    assert draft["doc_number"] is None and draft["title"].endswith("（草稿）")
    assert set(draft["recipients"]) <= {OFFICE, "p-liu-jianguo"}  # the 网信办 confirms it first
    with session() as s:
        text = s.get(Notice, draft["id"]).text
    assert "签发人" not in text and "经街道网信办审核确认。" not in text and "尚待审核确认" in text
    [signed] = core("open", actor=OFFICE, case_id=plain["id"]).notices
    assert signed.doc_number and "签发人：孙建华" in signed.text and not signed.title.endswith("（草稿）")
    assert signed.title == "关于建议对建设社区有关责任人员进行问责的请示"  # 请示 in title and 文种
    assert "经街道网信办审核确认。" in signed.text and "作了调整" not in signed.text
    assert STREET in signed.recipients and OFFICE not in signed.recipients
    [proposal] = proposals(incident(category="secret_leak", level="general", title="涉密文件外泄",
                                    discovered_at="2026-11-20T09:10:00+08:00"))
    refused(core, "open", field="chain_add[0]", contains="已在倒查链中", actor=OFFICE, case_id=proposal["id"],
            chain_add=[{"person": OFFICER, "reason": "重复"}])
    out = core("open", actor=OFFICE, case_id=proposal["id"],
               chain_remove=[{"person": PRINCIPAL, "reason": "事发时病休，未履职"}],
               collective_decision={"date": "2026-10-15", "participants": [PRINCIPAL, LEAD, MEMBERS[0]],
                                    "dissenters": []})
    case = show(proposal["id"])
    assert PRINCIPAL not in [c["person"] for c in case["chain"]]  # the removal stands
    assert case["data"]["chain_edits"]["remove"] == [{"person": PRINCIPAL, "reason": "事发时病休，未履职"}]
    assert (LEAD, "cyber_lead", "主要领导责任") in chain_of(case) and (MEMBERS[0], "member", "重要领导责任") in chain_of(case)
    [revised] = out.notices
    assert revised.kind == "accountability_proposal" and "并在审核中对责任链条作了调整" in revised.text
    assert revised.doc_number and PRINCIPAL not in json.dumps(revised.context, ensure_ascii=False)
    assert "朱宏伟" not in revised.text and "事发时病休" not in revised.text
    with session() as s:
        assert len(s.exec(select(Notice).where(Notice.case_id == proposal["id"])).all()) == 2
        event = s.exec(select(AuditEvent).where(AuditEvent.case_id == proposal["id"])
                       .order_by(AuditEvent.seq.desc())).first()
        assert event.payload["chain_basis"]["edits"]["remove"][0]["reason"] == "事发时病休，未履职"
        assert event.payload["chain_basis"]["collective_decision"]["participants"] == [PRINCIPAL, LEAD, MEMBERS[0]]
        assert verify(s)[0]


def test_each_circumstance_is_proposed_once_whoever_notices_it(org):
    from models.sweep import sweep

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
    # 瞒报 by lateness: first reported at 09:30, after the 4-hour external deadline (08:00) had passed
    hidden = incident(category="ransomware", level="relatively_major", discovered_at="2026-11-20T04:00:00+08:00")
    assert [p["data"]["circumstance"] for p in proposals(hidden)] == ["c4_concealment_or_unrectified"]
    assert "超过对外报告时限才报告事件（瞒报）" in proposals(hidden)[0]["data"]["facts"]
    assert show(hidden)["data"]["concealed"] is True and any("瞒报" in w for w in show(hidden)["warnings"])
    # reported in time, external report not made: 迟报 (reminded by the sweep), no proposal
    late_external = incident(category="ransomware", level="relatively_major", discovered_at="2026-11-20T09:00:00+08:00")
    at("2026-11-21T10:00:00+08:00")  # cii: external report (1 h) and handling (24 h) missed
    sweep()
    sweep()
    assert [p["data"]["circumstance"] for p in proposals(c3)] == ["c3_cii_attack_unhandled"]
    assert proposals(late_external) == [] and len(proposals(hidden)) == 1
    assert {o["kind"]: o["status"] for o in show(late_external)["obligations"]}["external_report"] == "missed"
    assert len(proposals(c2)) == 1


def test_two_transactions_proposing_at_once_make_one_proposal(org, monkeypatch):
    """Both pass the "already proposed?" check before either commits: the unique key lets one
    proposal in and the other call returns None (no crash, no duplicate, audit chain intact)."""
    import threading

    from sqlmodel import select

    from models import accountability as acc
    from models.audit import verify
    from models.case import Case
    from models.db import engine

    if engine().dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): two proposals cannot interleave")
    at("2026-11-20T09:30:00+08:00")
    source = incident(category="malware", level="general", discovered_at="2026-11-20T09:00:00+08:00")
    both_checked = threading.Barrier(2, timeout=10)
    waited = threading.local()
    real = acc.Circumstance

    class AfterBothChecked:  # read right after the existence check, before the transaction writes
        def __getitem__(self, name):
            if not getattr(waited, "done", False):
                waited.done = True
                both_checked.wait()
            return real[name]

    monkeypatch.setattr(acc, "Circumstance", AfterBothChecked())
    outcomes = []

    def propose() -> None:
        with session() as s:
            case = s.get(Case, source)
            made = acc.propose(s, source=case, circumstance="c4_concealment_or_unrectified", facts="经查存在瞒报",
                               facts_date=date(2026, 11, 20))
            outcomes.append(made.id if made else None)

    threads = [threading.Thread(target=propose) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o is None for o in outcomes) == [False, True], outcomes  # one made it, the other was told
    with session() as s:
        assert len(s.exec(select(Case.id).where(Case.proposed_from == source)).all()) == 1
        assert verify(s)[0]


def test_c1_from_a_missed_handling_and_c2_from_a_relatively_major_personal_info_leak(org):
    from models.sweep import sweep

    at("2026-11-20T09:30:00+08:00")
    # a defacement reported in time, externally too: nothing yet; its handling (24 h) then missed
    defaced = incident(discovered_at="2026-11-20T09:00:00+08:00")
    core("update", actor=OFFICER, case_id=defaced, note="已报告", external_reported_at="2026-11-20T09:20:00+08:00")
    assert proposals(defaced) == []
    leak = incident(category="personal_info_leak", level="relatively_major", affected_persons=1_200_000,
                    discovered_at="2026-11-20T09:00:00+08:00")
    assert [p["data"]["circumstance"] for p in proposals(leak)] == ["c2_data_leak"]
    at("2026-11-21T10:00:00+08:00")
    sweep()
    [c1] = proposals(defaced)
    assert c1["data"]["circumstance"] == "c1_defacement_unreported" and "处置逾期" in c1["data"]["facts"]
    sweep()
    assert len(proposals(defaced)) == 1 and len(proposals(leak)) == 1


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


def test_collective_decision_roles_are_the_posts_held_on_the_decision_date(org):
    """A decision taken on 2026-02-15 under the former secretary p-ma-yumei: she bears 主要领导责任,
    not the secretary in post on the facts date (p-zhu-hongwei, who did not take part); the
    当事人 keeps 直接责任; the unit's leaders who did not take part bear none for the decision."""
    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="2月集体决定停用网站防篡改系统，11月网站被篡改",
                  facts_date="2026-11-10", involved_persons=[LIAISON],
                  collective_decision={"date": "2026-02-15", "participants": ["p-ma-yumei", LEAD, MEMBERS[0]],
                                       "dissenters": []})
    case = show(result.case.id)
    assert chain_of(case) == [
        (LIAISON, "involved", "直接责任"), (OFFICER, "cyber_officer", "无"), (LEAD, "cyber_lead", "主要领导责任"),
        (PRINCIPAL, "principal", "无"), ("p-ma-yumei", "principal", "主要领导责任"),
        (MEMBERS[0], "member", "重要领导责任")]
    assert "未参与2026年2月15日集体决策" in link(case, PRINCIPAL)["note"]
    assert link(case, PRINCIPAL)["suggested_forms"] == []
    former = link(case, "p-ma-yumei")
    assert former["role_label"] == "决策时任主要负责人（第一责任人）"
    assert "时任主要负责人（第一责任人）" in former["note"] and former["suggested_forms"] == ["诫勉"]
    assert MEMBERS[1] not in [c["person"] for c in case["chain"]]  # a member who did not take part
    # the decision names each as the chain says
    core("decide", actor=STREET, case_id=result.case.id, decided_by="JD01",
         forms={"p-ma-yumei": ["诫勉"], LEAD: ["诫勉"], MEMBERS[0]: ["通报"], LIAISON: ["通报"]})
    decision = notice_of(result.case.id, "accountability_decision")
    # each person the decision names is served, also those it holds not responsible
    assert sorted(decision.recipients) == sorted(["p-ma-yumei", LEAD, MEMBERS[0], LIAISON, OFFICER, PRINCIPAL])
    assert "马玉梅，决策时任主要负责人（第一责任人），主要领导责任；问责方式：诫勉。" in decision.text
    assert "朱宏伟，主要负责人（第一责任人），不承担责任（未参与该项集体决策）；问责方式：不予问责。" in decision.text
    assert "朱宏伟同志未参与该项集体决策，不承担该项决策的责任，不予问责。" in decision.text
    assert "明确表示不同意见" not in decision.text.split("三、问责决定")[1]


def test_collective_decision_in_the_future_is_refused(org):
    from support import refused

    at("2026-11-28T10:00:00+08:00")
    refused(core, "open", field="collective_decision.date", actor=OFFICE, unit="SQ03", circumstance="c6_other",
            facts="x", facts_date="2026-11-10",
            collective_decision={"date": "2026-12-01", "participants": [PRINCIPAL], "dissenters": []})


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


# ---------------------------------------------------------------- weak coordination or supervision


def test_weak_supervision_without_a_supervising_unit_falls_back_to_the_coordinating_office(org):
    unit_without_supervisor("SQ05")
    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ05", circumstance="c6_other", facts="协调不力",
                  facts_date="2026-11-10", weak_supervision=True)
    [head] = [c for c in show(result.case.id)["chain"] if c["role"] == "supervisor_head"]
    assert (head["person"], head["unit"], head["responsibility"]) == (OFFICE, "WXB", "领导责任")
    assert "未登记监管部门" in head["note"] and "网信办" in head["note"]


def _late_defacement(unit: str, day: str = "2026-11-20") -> str:
    """A defacement reported 2.5 h after discovery (迟报): the c1 proposal, accepted 11/28."""
    at(f"{day}T10:30:00+08:00")
    inc = incident(unit=unit, involved_persons=[], discovered_at=f"{day}T08:00:00+08:00")
    [proposal] = proposals(inc)
    at("2026-11-28T10:00:00+08:00")
    # accepted by the 网信办's staff member: its head may be named in the chain (weak supervision)
    core("open", actor="p-liu-jianguo", case_id=proposal["id"])
    return proposal["id"]


def _on_time_incident(unit: str, category: str = "defacement") -> str:
    at("2026-03-10T09:30:00+08:00")
    return incident(unit=unit, category=category, level="general", involved_persons=[],
                    discovered_at="2026-03-10T09:00:00+08:00")


def heads(case_id: str) -> list[dict]:
    return [c for c in show(case_id)["chain"] if c["role"] == "supervisor_head"]


def test_derived_weak_supervision_needs_prior_knowledge_of_the_same_risk(org):
    """SQ05 and SQ06 have no supervising department: the street 网信办 coordinates them and
    receives their incident reports. SQ05's portal was defaced in March (the 网信办 was told)
    and the 网信办 issued no 整改通知 on it — only one on another matter —, so November's
    defacement adds its head. SQ06 had only a malware incident in March: another risk."""
    unit_without_supervisor("SQ05", "SQ06")
    march = _on_time_incident("SQ05")
    assert proposals(march) == [] and OFFICE in notice_of(march, "incident_report").recipients
    _on_time_incident("SQ06", category="malware")
    at("2026-04-01T10:00:00+08:00")
    rect("notify", actor=OFFICE, unit="SQ05", source="2026年一季度网络安全检查", risk_level="low",
         problem="办公终端未安装防病毒软件", problem_code="AV-MISSING", requirement="安装并更新防病毒软件")
    [head] = heads(_late_defacement("SQ05"))
    assert (head["person"], head["unit"], head["responsibility"]) == (OFFICE, "WXB", "领导责任")
    assert "收到《关于胜利社区发生门户网站/平台被攻击篡改事件的报告》（胜利社〔2026〕1号）" in head["note"]
    assert march not in head["note"] and "2026年3月10日" in head["note"] and "未就此下发整改通知" in head["note"]
    assert heads(_late_defacement("SQ06")) == []


def test_derived_weak_supervision_is_cancelled_by_a_notice_on_that_risk(org):
    """The 网信办 issued a 整改通知 on SQ05's March defacement (its source names the incident):
    not weak. SQ03's supervisor (综治办) was never told of SQ03's March defacement (the report
    went to the 网信办): no knowledge, nothing derived."""
    unit_without_supervisor("SQ05")
    march = _on_time_incident("SQ05")
    at("2026-03-12T10:00:00+08:00")
    rect("notify", actor=OFFICE, unit="SQ05", source=f"{march}事件暴露的网站安全问题", risk_level="high",
         problem="门户网站内容管理系统存在漏洞", requirement="升级系统并加固")
    assert heads(_late_defacement("SQ05")) == []
    _on_time_incident("SQ03")
    assert heads(_late_defacement("SQ03", day="2026-11-21")) == []


# ---------------------------------------------------------------- up the territorial line


def _unrectified(*, verify_late: bool) -> str:
    """SQ03 is told (by the street 网信办) to fix a weak password; it reports back at once; the
    网信办 verifies late (``verify_late``) or in time, fails the work, and SQ03 never fixes it:
    10 working days after the new due day the sweep proposes accountability (c4). Returns the
    proposal's id."""
    from models.sweep import sweep

    at("2026-06-01T10:00:00+08:00")
    rid = rect("notify", actor=OFFICE, unit="SQ03", source="X区网安〔2026〕3号通报", risk_level="high",
               problem="门户网站后台弱口令", problem_code="WEAK-PWD", requirement="修改口令并启用登录失败锁定").case.id
    at("2026-06-01T11:00:00+08:00")
    rect("acknowledge", actor=OFFICER, case_id=rid)
    at("2026-06-02T10:00:00+08:00")
    rect("submit", actor=OFFICER, case_id=rid, measures="已修改口令", evidence=["截图1"])  # verify due 6/5 24:00
    if verify_late:
        at("2026-06-08T10:00:00+08:00")
        sweep()  # the 网信办's verification is overdue: missed, 催验收
    else:
        at("2026-06-04T10:00:00+08:00")
    rect("verify", actor=OFFICE, case_id=rid, passed=False, opinion="复测仍可弱口令登录")
    verify = [o for o in show(rid)["obligations"] if o["kind"] == "verify"][0]
    assert (verify["status"], verify["unit"]) == ("missed" if verify_late else "met", "WXB")
    at("2026-07-06T10:00:00+08:00")
    sweep()
    [proposal] = proposals(rid)
    assert proposal["data"]["circumstance"] == "c4_concealment_or_unrectified"
    return proposal["id"]


STREET_LEADERS = [("p-zhao-weiguo", "cyber_officer"), ("p-li-hongmei", "cyber_lead"), (STREET, "principal")]


#: SQ03's supervising department (综治办) was copied on the 整改通知 and issued no 整改通知 of its
#: own: derived weak supervision adds its head.
SUPERVISOR_LINK = ("p-huang-guoqing", "supervisor_head", "领导责任")


def test_the_chain_climbs_to_the_street_when_its_office_also_missed_its_obligation(org):
    pid = _unrectified(verify_late=True)
    at("2026-07-06T11:00:00+08:00")
    core("open", actor=OFFICE, case_id=pid)
    case = show(pid)
    assert chain_of(case) == [(OFFICER, "cyber_officer", "领导责任"), (LEAD, "cyber_lead", "领导责任"),
                              (PRINCIPAL, "principal", "领导责任"), SUPERVISOR_LINK] + [
        (p, role, "领导责任") for p, role in STREET_LEADERS]  # not up to the district: it missed nothing
    street = case["chain"][4]
    assert street["unit"] == "JD01" and "上级单位东湖街道党工委对同一事实的义务同样逾期" in street["note"]
    assert "复核验收" in street["note"] and "《关于建设社区限期整改网络安全问题的通知》（X街网安〔2026〕" in street["note"]
    assert case["proposed_from"] not in street["note"]  # documents are cited by 文号, never by case id


def test_the_climb_stops_when_the_street_met_its_obligations(org):
    pid = _unrectified(verify_late=False)
    at("2026-07-06T11:00:00+08:00")
    core("open", actor=OFFICE, case_id=pid)
    case = show(pid)
    assert chain_of(case) == [(OFFICER, "cyber_officer", "领导责任"), (LEAD, "cyber_lead", "领导责任"),
                              (PRINCIPAL, "principal", "领导责任"), SUPERVISOR_LINK]
    # derived through the flows: 综治办 had the 整改通知 (抄送) and issued none of its own
    [head] = [c for c in case["chain"] if c["role"] == "supervisor_head"]
    assert head["unit"] == "ZHB" and "未就此下发整改通知" in head["note"] and case["proposed_from"] not in head["note"]
    assert "收到《关于建设社区限期整改网络安全问题的通知》（X街网安〔2026〕1号），获知同一风险" in head["note"]


def test_the_climb_follows_the_same_problem_up_to_the_district(org):
    """The district notified the street of the same weak-password problem (WEAK-PWD); the
    street fixed it late, and the district never verified: the chain climbs to the street and
    then to the district (its posts are vacant in the demo org, shown as such)."""
    from models.sweep import sweep

    at("2026-06-01T10:00:00+08:00")
    street = rect("notify", actor=OFFICE, unit="JD01", issuer="QU01", source="X区网安〔2026〕3号通报",
                  risk_level="medium", problem="街道门户网站后台弱口令", problem_code="WEAK-PWD",
                  requirement="全面排查弱口令").case.id
    at("2026-06-17T10:00:00+08:00")  # the street acknowledges and reports late
    rect("acknowledge", actor="p-zhao-weiguo", case_id=street)
    rect("submit", actor="p-zhao-weiguo", case_id=street, measures="已整改", evidence=["报告"])
    pid = _unrectified(verify_late=False)  # SQ03's own 网信办 verified in time
    at("2026-07-06T11:00:00+08:00")
    sweep()
    core("open", actor=OFFICE, case_id=pid)
    case = show(pid)
    street_links = [c for c in case["chain"] if c["unit"] == "JD01"]
    assert [(c["person"], c["role"]) for c in street_links] == STREET_LEADERS
    assert "（X区网安〔2026〕1号）所定完成整改并报送整改报告" in street_links[0]["note"] and street not in street_links[0]["note"]
    district = [c for c in case["chain"] if c["unit"] == "QU01"]
    assert [(c["role"], c["vacant"]) for c in district] == [
        ("cyber_officer", True), ("cyber_lead", True), ("principal", True)]
    assert "上级单位江城区对同一事实的义务同样逾期" in district[0]["note"] and "复核验收" in district[0]["note"]


def test_collective_main_responsibility_stays_in_the_deciding_unit(org):
    """Accepting the climbed proposal with an SQ03 collective decision: the street's principal
    (role principal, unit JD01) keeps 领导责任 for the street's own miss, never 主要领导责任."""
    pid = _unrectified(verify_late=True)
    at("2026-07-06T11:00:00+08:00")
    core("open", actor=OFFICE, case_id=pid,
         collective_decision={"date": "2026-06-03", "participants": [PRINCIPAL, LEAD, MEMBERS[0]], "dissenters": []})
    case = show(pid)
    assert chain_of(case) == [(OFFICER, "cyber_officer", "无"), (LEAD, "cyber_lead", "主要领导责任"),
                              (PRINCIPAL, "principal", "主要领导责任"), SUPERVISOR_LINK] + [
        (p, role, "领导责任") for p, role in STREET_LEADERS] + [(MEMBERS[0], "member", "重要领导责任")]


# ---------------------------------------------------------------- operator edits


def test_an_added_person_takes_the_role_given(org):
    from support import refused

    at("2026-11-28T10:00:00+08:00")
    result = core("open", actor=OFFICE, unit="SQ03", circumstance="c5_obstruction", facts="拒不配合调查",
                  facts_date="2026-11-10", chain_add=[
                      {"person": MEMBERS[0], "reason": "实际分管网络安全", "role": "主管网络安全的领导班子成员（直接责任人）"},
                      {"person": "p-huang-guoqing", "reason": "未督促整改", "role": "supervisor_head"},
                      {"person": MEMBERS[1], "reason": "删除日志"}])
    case = show(result.case.id)
    assert chain_of(case)[-3:] == [(MEMBERS[0], "cyber_lead", "领导责任"),
                                   ("p-huang-guoqing", "supervisor_head", "领导责任"),
                                   (MEMBERS[1], "involved", "直接责任")]
    assert link(case, MEMBERS[0])["role_label"] == "主管网络安全的领导班子成员（直接责任人）"
    assert link(case, "p-huang-guoqing")["unit"] == "ZHB" and link(case, MEMBERS[1])["note"] == "经办人增列：删除日志"
    assert [e["role"] for e in case["data"]["chain_edits"]["add"]] == ["cyber_lead", "supervisor_head", "involved"]
    err = refused(core, "open", field="chain_add.0.role", actor=OFFICE, unit="SQ03", circumstance="c5_obstruction",
                  facts="x", facts_date="2026-11-10", chain_add=[{"person": MEMBERS[0], "reason": "分管", "role": "组长"}])
    assert "当事人" in err.message


# ---------------------------------------------------------------- decision and appeal


def test_a_decision_with_no_forms_closes_at_once(org, sink):
    from tasks.notify import deliver
    from models.sweep import sweep

    at("2026-03-05T10:00:00+08:00")
    cid = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="事实", facts_date="2026-02-20",
               involved_persons=[LIAISON]).case.id
    out = core("decide", actor=STREET, case_id=cid, decided_by="JD01", forms={})
    assert out.case.state == "closed"
    case = show(cid)
    assert [o["kind"] for o in case["obligations"]] == ["serve_decision"]  # no appeal window to wait for
    assert case["events"][-1]["to_state"] == "closed"
    decision = notice_of(cid, "accountability_decision")
    assert "申诉" not in decision.text and "申诉" not in decision.html  # nobody held accountable: nothing to appeal
    deliver()
    sweep()  # the decision is still served after the case closed
    case = show(cid)
    assert case["state"] == "closed" and [o["status"] for o in case["obligations"]] == ["met"]
    from support import refused

    err = refused(core, "appeal", field="person", actor=LIAISON, case_id=cid, person=LIAISON, reason="不服")
    assert "可以申诉的：无" in err.message


def _decided_case(**more_forms) -> str:
    at("2026-03-05T10:00:00+08:00")
    cid = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="事实", facts_date="2026-02-20",
               involved_persons=[LIAISON]).case.id
    core("decide", actor=STREET, case_id=cid, decided_by="JD01",
         forms={LIAISON: ["诫勉"], "p-ma-yumei": ["通报"], **more_forms})
    return cid


def _obligations(case_id: str) -> list[dict]:
    from sqlmodel import select

    from models.case import Obligation

    with session() as s:
        return [{"kind": o.kind, "status": o.status, "due_at": o.due_at, "met_at": o.met_at,
                 "person": o.data.get("person")}
                for o in s.exec(select(Obligation).where(Obligation.case_id == case_id).order_by(Obligation.id)).all()]


def _others_of(obligations: list[dict], person: str) -> list[tuple]:
    """Every obligation but the appellant's own appeal window and appeal decision."""
    return [(o["kind"], o["status"], o["due_at"], o["met_at"]) for o in obligations
            if not (o["kind"] in ("appeal_window", "appeal_decision") and o["person"] == person)]


def test_appeal_inside_the_window_keeps_the_decision_in_force(org, sink):
    from tasks.notify import deliver
    from models.sweep import sweep

    cid = _decided_case()
    deliver()
    sweep()  # every decision notification delivered: serve_decision met
    case = show(cid)
    assert [o["status"] for o in case["obligations"] if o["kind"] == "serve_decision"] == ["met"]
    window = [o for o in case["obligations"] if o["kind"] == "appeal_window"][0]
    assert window["due_at"] == "2026-04-08T00:00:00+08:00"  # 4/5 + 清明 (4/4–4/6) → 4/7 24:00
    text = notice_of(cid, "accountability_decision").text  # the window runs from receipt: no date printed
    assert "可以自收到本决定之日起1个月内，向东湖街道党工委提出书面申诉" in text and "4月7日" not in text
    decision, chain, obligations = case["data"]["decision"], case["chain"], _obligations(cid)
    at("2026-04-07T16:00:00+08:00")
    assert core("appeal", actor=LIAISON, case_id=cid, person=LIAISON, reason="事实认定有误").case.state == "appealed"
    case = show(cid)
    # not suspended: the decision, its forms and the chain are exactly as decided; only the
    # appellant's window is used and an appeal decision is due
    assert case["data"]["decision"] == decision and decision["in_force"] is True
    assert case["data"]["decision"]["persons"][LIAISON]["forms"] == ["诫勉"] and case["chain"] == chain
    assert _others_of(_obligations(cid), LIAISON) == _others_of(obligations, LIAISON)
    mine = [o for o in _obligations(cid) if o["person"] == LIAISON]
    assert [(o["kind"], o["status"]) for o in mine] == [("appeal_window", "met"), ("appeal_decision", "open")]
    at("2026-04-08T10:00:00+08:00")  # p-ma-yumei's window ended at 4/7 24:00 (the sweep has not closed it yet)
    before = db_state()
    with pytest.raises(DomainError) as info:
        core("appeal", actor="p-ma-yumei", case_id=cid, person="p-ma-yumei", reason="不服")  # no post since 2/28
    assert "2026年4月7日（当日24时）届满" in info.value.message and "4月8日" not in info.value.message
    assert db_state() == before
    out = core("decide_appeal", actor=STREET, case_id=cid, person=LIAISON, upheld=True, opinion="维持")
    assert out.case.state == "closed"  # no appeal pending (p-ma-yumei's window is left to the sweep)
    assert show(cid)["data"]["decision"] == decision  # upheld: unchanged, still in force
    sweep()
    assert show(cid)["state"] == "closed"
    assert [o["status"] for o in _obligations(cid) if o["person"] == "p-ma-yumei"] == ["waived"]
    from support import refused

    refused(core, "appeal", field="person", contains="已于", actor=LIAISON, case_id=cid, person=LIAISON, reason="再次申诉")
    from models.audit import verify

    with session() as s:
        assert verify(s)[0]
    events = [e["type"] for e in show(cid)["events"]]
    assert events[:2] == ["open", "decide"] and "appeal" in events and "decide_appeal" in events
    assert "appeal_window_closed" in events


def test_an_appeal_that_changes_the_decision_touches_only_the_appellant(org):
    cid = _decided_case(**{LEAD: ["通报"]})
    decision = show(cid)["data"]["decision"]
    at("2026-03-20T10:00:00+08:00")
    core("appeal", actor=LIAISON, case_id=cid, person=LIAISON, reason="事实认定有误")
    assert show(cid)["data"]["decision"] == decision
    from support import refused

    refused(core, "decide_appeal", field="forms", actor=STREET, case_id=cid, person=LIAISON, upheld=True,
            opinion="维持", forms=["通报"])
    out = core("decide_appeal", actor=STREET, case_id=cid, person=LIAISON, upheld=False, opinion="改为通报",
               forms=["通报"])
    assert out.case.state == "closed"  # SPEC: decide-appeal → closed
    after = show(cid)["data"]["decision"]
    assert after["in_force"] is True and after["persons"][LIAISON]["changed_by_appeal"] == "改为通报"
    assert (after["persons"][LIAISON]["forms"], after["persons"][LIAISON]["forms_before_appeal"]) == (["通报"], ["诫勉"])
    assert {k: v for k, v in after["persons"].items() if k != LIAISON} == {
        k: v for k, v in decision["persons"].items() if k != LIAISON}
    [told] = out.notices  # 申诉处理决定 to the appellant
    assert told.kind == "appeal_decision" and told.recipients == [LIAISON]
    assert "理由是：事实认定有误。" in told.text and "将原问责决定中对何晓丽同志的问责方式变更为通报。" in told.text
    assert "经复查，经复查" not in told.text and "抄送：建设社区。" in told.text  # the appellant's 党组织
    assert show(cid)["data"]["appeals"][LIAISON]["status"] == "changed"
    # another person named keeps the right to appeal inside their own window, closed or not
    at("2026-03-25T10:00:00+08:00")
    assert core("appeal", actor=LEAD, case_id=cid, person=LEAD, reason="不服").case.state == "appealed"
    at("2026-03-26T10:00:00+08:00")
    assert core("decide_appeal", actor=STREET, case_id=cid, person=LEAD, upheld=True,
                opinion="维持").case.state == "closed"
    assert {k: v["status"] for k, v in show(cid)["data"]["appeals"].items()} == {LIAISON: "changed", LEAD: "upheld"}


def test_the_organisation_held_accountable_may_appeal_under_its_unit_code(org):
    """被问责党组织 may appeal too (the decision tells it so): a window of its own, the appeal
    filed under the unit code, a changed decision recorded for the organisation only."""
    from support import refused

    at("2026-03-05T10:00:00+08:00")
    cid = core("open", actor=OFFICE, unit="SQ03", circumstance="c6_other", facts="事实", facts_date="2026-02-20",
               involved_persons=[LIAISON]).case.id
    core("decide", actor=STREET, case_id=cid, decided_by="JD01", forms={LIAISON: ["诫勉"]},
         organisation_forms=["检查"])
    windows = {o["person"]: o["status"] for o in _obligations(cid) if o["kind"] == "appeal_window"}
    assert windows == {LIAISON: "open", "SQ03": "open"}
    refused(core, "appeal", field="person", contains="SQ03", actor="p-luo-chunmei", case_id=cid, person="SQ04", reason="不服")
    at("2026-03-20T10:00:00+08:00")
    assert core("appeal", actor=PRINCIPAL, case_id=cid, person="SQ03", reason="已整改到位").case.state == "appealed"
    decision = show(cid)["data"]["decision"]
    refused(core, "decide_appeal", field="forms", actor=STREET, case_id=cid, person="SQ03", upheld=False,
            opinion="改为通报", forms=["通报"])  # an organisation's forms go in organisation_forms
    out = core("decide_appeal", actor=STREET, case_id=cid, person="SQ03", upheld=False, opinion="改为通报",
               organisation_forms=["通报"])
    assert out.case.state == "closed"
    after = show(cid)["data"]["decision"]
    assert after["organisation_changed_by_appeal"] == "改为通报" and after["persons"] == decision["persons"]
    assert after["organisation_forms"] == ["通报"] and after["organisation_forms_before_appeal"] == ["检查"]
    assert after["in_force"] is True
    [told] = out.notices  # 申诉处理决定 to the organisation's principal
    assert told.kind == "appeal_decision" and told.recipients == [PRINCIPAL]
    assert "将原问责决定中对建设社区的问责方式变更为通报。" in told.text
    windows = {o["person"]: o["status"] for o in _obligations(cid) if o["kind"] == "appeal_window"}
    assert windows == {LIAISON: "open", "SQ03": "met"}  # the person's own window is untouched


def test_an_appeal_left_undecided_past_its_month_is_chased_once_and_a_revoked_form_ends_the_veto(org):
    from sqlmodel import select

    from models.accountability import imposes_accountability
    from models.notice import Notice
    from models.sweep import sweep

    cid = _decided_case()
    at("2026-03-20T10:00:00+08:00")
    core("appeal", actor=LIAISON, case_id=cid, person=LIAISON, reason="事实认定有误")  # due 4/21 00:00
    at("2026-04-22T10:00:00+08:00")
    sweep()
    sweep()
    with session() as s:
        chased = s.exec(select(Notice).where(Notice.case_id == cid, Notice.kind.in_(
            ["report_reminder", "internal_reminder"]))).all()
    [reminder] = chased  # an internal 督办提醒 to the deciding body, not a numbered 通知 from its office
    assert reminder.kind == "internal_reminder" and reminder.doc_number is None and reminder.issuer_unit == "JD01"
    assert reminder.recipients == [STREET] and "何晓丽同志申诉处理" in reminder.title
    assert [o["status"] for o in _obligations(cid) if o["kind"] == "appeal_decision"] == ["missed"]
    out = core("decide_appeal", actor=STREET, case_id=cid, person=LIAISON, upheld=False, opinion="撤销")  # no forms
    assert out.case.state == "closed" and "撤销原问责决定中对何晓丽同志的问责。" in out.notices[0].text
    decision = show(cid)["data"]["decision"]
    assert decision["persons"][LIAISON]["forms"] == [] and decision["persons"][LIAISON]["forms_before_appeal"] == ["诫勉"]
    # the revoked form no longer counts (the assessment veto reads the forms in force)
    assert not imposes_accountability({**decision, "persons": {LIAISON: decision["persons"][LIAISON]}})


def test_the_appeal_window_runs_from_receipt_of_the_decision(org, sink):
    """Decided 3/5 but delivered only 3/9 (the channels were down): each window is computed
    again from that person's first delivery (4/9 24:00, not 4/7 24:00), never shortened."""
    from tasks.notify import deliver
    from models.sweep import sweep

    cid = _decided_case()
    before = {o["person"]: o["due_at"] for o in _obligations(cid) if o["kind"] == "appeal_window"}
    assert set(before.values()) == {datetime(2026, 4, 8, tzinfo=TZ)}
    at("2026-03-09T10:00:00+08:00")
    deliver()
    sweep()
    windows = {o["person"]: o["due_at"] for o in _obligations(cid) if o["kind"] == "appeal_window"}
    assert windows == {LIAISON: datetime(2026, 4, 10, tzinfo=TZ), "p-ma-yumei": datetime(2026, 4, 10, tzinfo=TZ)}
    assert [o["status"] for o in show(cid)["obligations"] if o["kind"] == "serve_decision"] == ["met"]
    at("2026-04-09T16:00:00+08:00")  # past the decision-date window, inside the one from receipt
    assert core("appeal", actor=LIAISON, case_id=cid, person=LIAISON, reason="不服").case.state == "appealed"
    sweep()  # nothing is moved twice
    assert {o["person"]: o["due_at"] for o in _obligations(cid) if o["kind"] == "appeal_window"} == windows


def test_a_late_appeal_after_the_sweep_closed_the_case_is_refused_with_the_windows_end(org):
    from support import refused
    from models.sweep import sweep

    cid = _decided_case()
    printed = "2026年4月7日"  # decided 3/5, received at once: 4/5 + 清明 (4/4–4/6) → 4/7
    at("2026-04-08T10:00:00+08:00")
    sweep()
    assert show(cid)["state"] == "closed"
    err = refused(core, "appeal", field="effective_at", contains=f"申诉期限已于 {printed}（当日24时）届满",
                  actor=LIAISON, case_id=cid, person=LIAISON, reason="不服")
    assert "4月8日" not in err.message
    # someone the decision did not name is refused, the persons named are listed
    err = refused(core, "appeal", field="person", contains=LIAISON, actor=OFFICER, case_id=cid, person=OFFICER,
                  reason="不服")


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
