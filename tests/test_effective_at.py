"""补录 (issue #13 item 5): how far back an action's ``effective_at`` may go, and what a
back-dated action does to an obligation; the bounds of an assessment year.

The rules (models/statemachine.py):
- a back-dated action on a case is not dated before the case began — the effective time of
  its first event (a case reported by 补录 began at that earlier time), to the minute —, nor
  before the obligation it meets was opened; refused with one line naming ``effective_at``
  and the earliest allowed time, nothing written. Later events may be entered out of order
  (a 续报 of 11:00 after one of 12:00): only the case's start and the obligations bound them;
- an obligation is met on time only when the time of the act is not after its due time AND
  the miss had not been recorded yet (the sweep marks it ``missed`` at its due time). A
  back-dated act entered after the sweep recorded the miss is met late: it stays ``missed``,
  ``met_at`` is the recording time, the claimed time is kept in ``claimed_at``. Entered after
  the due time but before the sweep recorded the miss, a timely act counts (the audit event
  keeps both times and the ``met`` entry says ``recorded_after_due``).

Core-level tests: no Prefect.
"""
from __future__ import annotations

import pytest
from support import refused

from models.db import session

OFFICER, OFFICE = "p-guo-tao", "p-sun-jianhua"


def report_params(**over):
    params = dict(actor=OFFICER, unit="SQ03", category="ransomware", level="relatively_major",
                  title="社区服务器感染勒索病毒", description="文件被加密，已断网",
                  discovered_at="2026-11-28T10:00:00+08:00")
    params.update(over)
    return params


def incident(name: str, **params):
    from models import incident as i
    from models.requests import validate_request

    fn, model = {"report": (i.report, i.ReportIncidentRequest), "update": (i.update, i.UpdateIncidentRequest)}[name]
    return fn(validate_request(model, params))


def rectification(action: str, **params):
    from models import rectification as r
    from models.requests import validate_request

    fn, model = {"notify": (r.notify, r.NotifyRiskRequest), "acknowledge": (r.acknowledge, r.AcknowledgeRiskRequest),
                 "submit": (r.submit, r.SubmitRectificationRequest),
                 "verify": (r.verify, r.VerifyRectificationRequest)}[action]
    return fn(validate_request(model, params))


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def obligation_row(case_id: str, kind: str):
    """The obligation row itself (``data`` is not in the case JSON)."""
    from sqlmodel import select

    from models.case import Obligation

    with session() as s:
        return s.exec(select(Obligation).where(Obligation.case_id == case_id, Obligation.kind == kind)
                      .order_by(Obligation.id.desc())).first()


def sweep_at(clock, when: str) -> dict:
    from models.sweep import sweep

    clock(when)
    return sweep()


def counts(case_id: str) -> tuple[int, int, int]:
    case = show(case_id)
    return len(case["events"]), len(case["notices"]), len(case["notifications"])


# ---------------------------------------------------------------- not before the case began


def test_backdated_before_the_case_began_is_refused_and_writes_nothing(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = incident("report", **report_params()).case.id
    clock("2026-11-28T11:00:00+08:00")
    before = counts(case_id)
    err = refused(incident, "update", field="effective_at", actor=OFFICER, case_id=case_id, note="已隔离",
                  effective_at="2026-11-28T10:15:00+08:00")
    assert err.message == (f"effective_at: 生效时间 2026年11月28日10时15分 早于案件 {case_id} 的开始时间："
                           "补录的时间不得早于 2026年11月28日10时30分")
    assert counts(case_id) == before  # no event, no notice, no notification (refused() compared every table)
    incident("update", actor=OFFICER, case_id=case_id, note="已隔离", effective_at="2026-11-28T10:30:00+08:00")
    assert counts(case_id)[0] == before[0] + 1  # at the case's start itself: accepted


def test_a_case_reported_by_backfill_began_at_its_effective_time_not_at_its_recording(org, clock):
    clock("2026-11-28T16:00:00+08:00")  # entered at 16:00, reported (by phone) at 10:30
    case_id = incident("report", **report_params(effective_at="2026-11-28T10:30:00+08:00")).case.id
    incident("update", actor=OFFICER, case_id=case_id, note="11时已隔离", effective_at="2026-11-28T11:00:00+08:00")
    refused(incident, "update", field="effective_at", contains="补录的时间不得早于 2026年11月28日10时30分",
            actor=OFFICER, case_id=case_id, note="x", effective_at="2026-11-28T10:29:00+08:00")
    events = show(case_id)["events"]
    assert [e["effective_at"] for e in events] == ["2026-11-28T10:30:00+08:00", "2026-11-28T11:00:00+08:00"]
    assert {e["recorded_at"] for e in events} == {"2026-11-28T16:00:00+08:00"}


def test_the_case_start_counts_to_the_minute(org, clock):
    """Times are typed and shown to the minute: a case recorded at 10:30:45 began "at 10:30"."""
    clock("2026-11-28T10:30:45+08:00")
    case_id = incident("report", **report_params()).case.id
    clock("2026-11-28T10:40:00+08:00")
    incident("update", actor=OFFICER, case_id=case_id, note="同时处置", effective_at="2026-11-28T10:30:00+08:00")


def test_backdated_before_the_obligation_it_meets_was_opened_is_refused(org, clock):
    """复核验收 begins with the 整改报告: a verification dated before the report is refused,
    although it is after the case began."""
    clock("2026-09-18T10:00:00+08:00")
    case_id = rectification("notify", actor=OFFICE, unit="SQ03", source="X区网安〔2026〕3号通报", risk_level="high",
                            problem="后台弱口令", requirement="修改口令").case.id
    rectification("acknowledge", actor=OFFICER, case_id=case_id)
    clock("2026-09-22T10:00:00+08:00")
    rectification("submit", actor=OFFICER, case_id=case_id, measures="已修改口令", evidence=["整改报告"])
    clock("2026-09-23T10:00:00+08:00")
    err = refused(rectification, "verify", field="effective_at", actor=OFFICE, case_id=case_id, passed=True,
                  opinion="通过", effective_at="2026-09-22T09:00:00+08:00")
    assert err.message == (f"effective_at: 生效时间 2026年9月22日9时 早于案件 {case_id} “复核验收”时限的开启时间："
                           "补录的时间不得早于 2026年9月22日10时")
    out = rectification("verify", actor=OFFICE, case_id=case_id, passed=True, opinion="通过",
                        effective_at="2026-09-22T15:00:00+08:00")
    assert out.case.state == "closed"


# ---------------------------------------------------------------- a recorded miss stays a miss


def test_a_missed_obligation_stays_missed_when_an_action_backdated_before_its_due_time_arrives_after_the_sweep(
        org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = incident("report", **report_params()).case.id  # handling due 11-29 10:00 (较大: 24 h)
    assert sweep_at(clock, "2026-11-29T10:05:00+08:00")["acted"] >= 1
    handling = [o for o in show(case_id)["obligations"] if o["kind"] == "handling"][0]
    assert handling["status"] == "missed" and handling["met_at"] is None
    clock("2026-11-29T12:00:00+08:00")
    out = incident("update", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True,
                   effective_at="2026-11-29T09:00:00+08:00")  # claims: resolved an hour before the due time
    assert out.case.state == "resolved"
    ob = obligation_row(case_id, "handling")
    assert ob.status == "missed"  # never turned into met
    assert ob.met_at.isoformat() == "2026-11-29T04:00:00+00:00"  # the recording (12:00 Beijing), after the due time
    assert ob.data["late_minutes"] == 120 and ob.data["claimed_at"] == "2026-11-29T09:00:00+08:00"
    event = show(case_id)["events"][-1]
    assert (event["effective_at"], event["recorded_at"]) == ("2026-11-29T09:00:00+08:00", "2026-11-29T12:00:00+08:00")
    assert ob.met_at > ob.due_at  # what the assessment's scoring counts as late


def test_an_external_report_time_before_the_due_time_entered_after_the_sweep_stays_late(org, clock):
    """The same rule for a fact time (``external_reported_at``) that meets an obligation."""
    clock("2026-11-28T10:30:00+08:00")
    case_id = incident("report", **report_params()).case.id  # external report due 14:00
    sweep_at(clock, "2026-11-28T14:05:00+08:00")
    clock("2026-11-28T15:00:00+08:00")
    incident("update", actor=OFFICER, case_id=case_id, note="已报省网信办",
             external_reported_at="2026-11-28T13:00:00+08:00")
    ob = obligation_row(case_id, "external_report")
    assert ob.status == "missed" and ob.met_at > ob.due_at
    assert ob.data["claimed_at"] == "2026-11-28T13:00:00+08:00" and ob.data["late_minutes"] == 60


def test_an_action_after_the_due_time_without_a_sweep_is_late(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = incident("report", **report_params()).case.id
    clock("2026-11-29T12:00:00+08:00")  # handling due 10:00; no sweep ran
    incident("update", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True,
             effective_at="2026-11-29T11:00:00+08:00")
    handling = [o for o in show(case_id)["obligations"] if o["kind"] == "handling"][0]
    assert handling["status"] == "missed" and handling["late_minutes"] == 60
    assert handling["met_at"] == "2026-11-29T11:00:00+08:00"


def test_a_timely_act_entered_after_the_due_time_before_the_sweep_recorded_the_miss_is_on_time(org, clock):
    """补录 records a true earlier time: until the miss is recorded (no 催报 sent, no proposal
    made), a resolution dated before the due time counts as in time; the audit event keeps
    both times and says it was recorded after the due time. A sweep afterwards finds nothing."""
    from models.audit import AuditEvent
    from sqlmodel import select

    clock("2026-11-28T10:30:00+08:00")
    case_id = incident("report", **report_params()).case.id
    clock("2026-11-29T10:00:30+08:00")  # 30 s past the due time; the minute's sweep has not run
    incident("update", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True,
             effective_at="2026-11-29T09:30:00+08:00")
    handling = [o for o in show(case_id)["obligations"] if o["kind"] == "handling"][0]
    assert handling["status"] == "met" and handling["met_at"] == "2026-11-29T09:30:00+08:00"
    with session() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq.desc())).first()
        assert {"kind": "handling", "late": False, "recorded_after_due": True} in event.payload["met"]
    sweep_at(clock, "2026-11-29T10:01:00+08:00")
    assert [o["status"] for o in show(case_id)["obligations"] if o["kind"] == "handling"] == ["met"]


# ---------------------------------------------------------------- assessment year


def start(**params):
    from models import assessment as a
    from models.requests import validate_request

    return a.start(validate_request(a.StartAssessmentRequest, {"actor": "system", **params}))


@pytest.mark.parametrize("year,contains", [
    (2016, "考核年度 2016 超出范围：须在 2017 年至 2026 年之间"),
    (2000, "考核年度 2000 超出范围"),
    (2027, "2027 年度尚未开始"),
])
def test_an_assessment_year_outside_the_bounds_is_refused(org, clock, year, contains):
    clock("2026-12-01T09:00:00+08:00")
    err = refused(start, year=year, units=["SQ01"], field="year", contains=contains)
    assert "\n" not in err.message


def test_the_first_assessment_year_is_policy(org, clock, tmp_path, monkeypatch):
    from models import policy

    text = policy.path().read_text(encoding="utf-8").replace("first_year: 2017", "first_year: 2020")
    assert "first_year: 2020" in text
    (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_POLICY", str(tmp_path / "policy.yaml"))
    clock("2026-12-01T09:00:00+08:00")
    refused(start, year=2019, units=["SQ01"], field="year", contains="须在 2020 年至 2026 年之间")
    assert start(year=2020, units=["SQ01"]).case.data["year"] == 2020


def test_a_catalogue_year_may_be_next_year_at_most(org, clock):
    from models.assessment import load_year_catalogue
    from models.scoring import DEFAULT_CATALOGUE

    clock("2026-12-01T09:00:00+08:00")

    def load(year: int):
        with session() as s:
            return load_year_catalogue(s, year, str(DEFAULT_CATALOGUE))

    refused(load, 2028, field="--year", contains="须在 2017 年至 2027 年之间")
    refused(load, 2016, field="--year", contains="须在 2017 年至 2027 年之间")
    assert load(2027)["year"] == 2027
