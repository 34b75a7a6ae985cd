"""事件报告和及时处置 (SPEC 3.1): scenario tests through the flows, rule tests on the core."""
from __future__ import annotations

import re

import pytest
from support import refused, run_flow

from models.db import session

OFFICER, LEAD, PRINCIPAL = "p-guo-tao", "p-hu-haiyan", "p-zhu-hongwei"  # SQ03 today
OFFICE_HEAD = "p-sun-jianhua"  # 街道网信办主任
DOC_NUMBER = re.compile(r"^建设社〔2026〕[1-9]\d*号$")


def report_params(**over):
    params = dict(
        actor=OFFICER, unit="SQ03", category="defacement", level="relatively_major",
        title="社区门户网站首页被篡改", description="首页被植入有害信息，已断开外网",
        discovered_at="2026-11-28T10:00:00+08:00",
    )
    params.update(over)
    return params


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def obligation(case: dict, kind: str) -> dict:
    found = [o for o in case["obligations"] if o["kind"] == kind]
    assert found, f"no {kind} obligation in {case['obligations']}"
    return found[-1]


# ---------------------------------------------------------------- scenarios through the flows


@pytest.mark.usefixtures("prefect_harness")
class TestScenarios:
    def test_in_time_relatively_major_report(self, org, sink, clock):
        clock("2026-11-28T10:30:00+08:00")
        out = run_flow("report-incident", **report_params())
        assert out["state"] == "reported"
        case = show(out["case_id"])
        internal = obligation(case, "internal_report")
        assert internal["status"] == "met"
        external = obligation(case, "external_report")
        assert external["status"] == "open"
        assert external["due_at"] == "2026-11-28T14:00:00+08:00"  # discovered + 4 h (other path)
        assert obligation(case, "handling")["due_at"] == "2026-11-29T10:00:00+08:00"  # 较大: 24 h
        [notice] = case["notices"]
        assert DOC_NUMBER.match(notice["doc_number"]), notice["doc_number"]
        assert sorted(notice["recipients"]) == sorted([OFFICER, LEAD, PRINCIPAL, OFFICE_HEAD])
        assert [n["status"] for n in case["notifications"]] == ["sent"] * 4
        assert sorted(m["_path"] for m in sink.messages) == sorted([OFFICER, LEAD, PRINCIPAL, OFFICE_HEAD])
        assert all(notice["doc_number"] in m["title"] + m["message"] for m in sink.messages)
        assert out["delivery"]["sent"] == 4

    def test_late_report_records_the_delay(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        out = run_flow("report-incident", **report_params(discovered_at="2026-11-28T08:00:00+08:00"))
        case = show(out["case_id"])
        internal = obligation(case, "internal_report")
        assert internal["status"] == "missed"
        assert internal["late_minutes"] == 90  # due 09:00, reported 10:30
        assert any("迟报" in w and "90 分钟" in w for w in case["warnings"])

    def test_general_incident_has_no_external_obligation(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        out = run_flow("report-incident", **report_params(level="general", category="malware"))
        case = show(out["case_id"])
        kinds = [o["kind"] for o in case["obligations"]]
        assert "external_report" not in kinds
        assert obligation(case, "handling")["due_at"] == "2026-12-01T10:00:00+08:00"  # 一般: 72 h

    def test_personal_info_leak_entered_too_low_is_warned(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        out = run_flow("report-incident", **report_params(
            category="personal_info_leak", level="一般（Ⅳ级）", affected_persons=2_000_000))
        case = show(out["case_id"])
        assert case["data"]["level"] == "general"  # the operator's level stands
        assert case["data"]["suggested_level"] == "relatively_major"
        assert any("较大（Ⅲ级）" in w and "200万人" in w for w in case["warnings"]), case["warnings"]
        assert out["warnings"] == case["warnings"]

    def test_resolution_opens_the_30_day_summary_then_closes(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        case_id = run_flow("report-incident", **report_params())["case_id"]
        clock("2026-11-28T16:00:00+08:00")
        out = run_flow("update-incident", actor=OFFICER, case_id=case_id, note="已恢复页面",
                       external_reported_at="2026-11-28T11:00:00+08:00", resolved=True)
        assert out["state"] == "resolved"
        case = show(case_id)
        assert obligation(case, "external_report")["status"] == "met"
        assert obligation(case, "handling")["status"] == "met"
        summary = obligation(case, "summary_report")
        # 30 calendar days start the next day: 11/29 … 12/28 (a Monday) → ends 24:00 of 12/28
        assert summary["due_at"] == "2026-12-29T00:00:00+08:00"
        assert summary["status"] == "open"
        out = run_flow("submit-incident-summary", actor=OFFICER, case_id=case_id, cause="弱口令",
                       handling="断网、恢复", harm="有限", lessons="启用双因素认证")
        assert out["state"] == "closed"
        case = show(case_id)
        assert obligation(case, "summary_report")["status"] == "met"
        summary = [n for n in case["notices"] if n["kind"] == "incident_summary"]
        assert len(summary) == 1 and OFFICE_HEAD in summary[0]["recipients"]
        assert DOC_NUMBER.match(summary[0]["doc_number"])

    def test_sweep_after_missed_external_deadline_reminds_once(self, org, sink, clock):
        clock("2026-11-28T10:30:00+08:00")
        case_id = run_flow("report-incident", **report_params())["case_id"]
        sent_before = len(sink.messages)
        clock("2026-11-28T14:05:00+08:00")  # external report due 14:00
        first = run_flow("sweep-deadlines")
        assert first["acted"] == 1
        case = show(case_id)
        external = obligation(case, "external_report")
        assert external["status"] == "missed" and external["step"] == 1
        reminders = [n for n in case["notices"] if n["kind"] == "report_reminder"]
        assert len(reminders) == 1
        assert sorted(reminders[0]["recipients"]) == sorted([OFFICER, LEAD, PRINCIPAL])
        reminder_msgs = [m for m in sink.messages[sent_before:] if reminders[0]["doc_number"] in m["title"]]
        assert sorted(m["_path"] for m in reminder_msgs) == sorted([OFFICER, LEAD, PRINCIPAL])
        sent_after_first = len(sink.messages)  # also the c1/c4 accountability proposals (test_accountability)
        clock("2026-11-28T14:06:00+08:00")
        second = run_flow("sweep-deadlines")
        assert second["acted"] == 0
        assert len([n for n in show(case_id)["notices"] if n["kind"] == "report_reminder"]) == 1
        assert len(sink.messages) == sent_after_first
        from models.audit import verify

        with session() as s:
            assert verify(s)[0]


# ---------------------------------------------------------------- bad input: one message, nothing written


def core(name: str, **params):
    from models import incident
    from models.requests import validate_request

    fn, model = {
        "report-incident": (incident.report, incident.ReportIncidentRequest),
        "update-incident": (incident.update, incident.UpdateIncidentRequest),
        "submit-incident-summary": (incident.submit_summary, incident.SubmitIncidentSummaryRequest),
    }[name]
    return fn(validate_request(model, params))


class TestBadInput:
    @pytest.fixture
    def case_id(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        return core("report-incident", **report_params()).case.id

    def test_unknown_unit(self, case_id):
        refused(core, "report-incident", field="unit", contains="SQ99", **report_params(unit="SQ99"))

    def test_level_outside_the_enum(self, case_id):
        err = refused(core, "report-incident", field="level", **report_params(level="huge"))
        assert "relatively_major" in err.message and "较大（Ⅲ级）" in err.message

    def test_category_outside_the_enum(self, case_id):
        refused(core, "report-incident", field="category", contains="defacement", **report_params(category="spam"))

    @pytest.mark.parametrize("name,extra", [
        ("report-incident", {}),
        ("update-incident", {"note": "进展"}),
        ("submit-incident-summary", {"cause": "a", "handling": "b", "harm": "c", "lessons": "d"}),
    ])
    def test_future_effective_at(self, case_id, name, extra):
        params = report_params() if name == "report-incident" else {"actor": OFFICER, "case_id": case_id, **extra}
        params["effective_at"] = "2026-11-28T12:00:00+08:00"
        refused(core, name, field="effective_at", contains="2026年11月28日 12:00（北京时间）", **params)

    @pytest.mark.parametrize("field,value", [
        ("discovered_at", "2026-11-28T09:30:00"),  # no offset: UTC or Beijing? 8 hours apart
        ("discovered_at", "2026-11-28"),
        ("discovered_at", 1795825800),
        ("effective_at", "2026-11-28T10:00:00"),
        ("occurred_at", "2026-11-28T09:00:00"),
    ])
    def test_request_times_need_their_offset(self, case_id, field, value):
        refused(core, "report-incident", field=field, contains="+08:00", **report_params(**{field: value}))

    def test_future_discovery(self, case_id):
        refused(core, "report-incident", field="discovered_at",
                **report_params(discovered_at="2026-11-29T10:00:00+08:00"))

    def test_unknown_actor(self, case_id):
        refused(core, "update-incident", field="actor", actor="p-nobody", case_id=case_id, note="x")

    def test_unknown_involved_person(self, case_id):
        refused(core, "report-incident", field="involved_persons[0]", **report_params(involved_persons=["p-x"]))

    def test_unknown_case(self, case_id):
        refused(core, "update-incident", field="case_id", actor=OFFICER, case_id="INC-2026-9999", note="x")

    def test_summary_before_resolution_names_state_and_allowed_actions(self, case_id):
        err = refused(core, "submit-incident-summary", actor=OFFICER, case_id=case_id,
                      cause="a", handling="b", harm="c", lessons="d")
        assert "reported（已报告）" in err.message
        assert "progress" in err.message and "resolve" in err.message

    def test_external_report_time_on_a_general_incident(self, org, clock):
        clock("2026-11-28T10:30:00+08:00")
        cid = core("report-incident", **report_params(level="general")).case.id
        refused(core, "update-incident", field="external_reported_at", actor=OFFICER, case_id=cid,
                note="x", external_reported_at="2026-11-28T10:40:00+08:00")

    def test_external_report_before_discovery(self, case_id):
        refused(core, "update-incident", field="external_reported_at", contains="早于发现时间", actor=OFFICER,
                case_id=case_id, note="x", external_reported_at="2026-11-28T09:59:00+08:00")

    def test_update_after_closing_names_state_and_allowed_actions(self, case_id):
        core("update-incident", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True)
        err = refused(core, "update-incident", actor=OFFICER, case_id=case_id, note="再次处置完毕", resolved=True)
        assert "resolved（处置完毕）" in err.message and "submit_summary" in err.message
        core("submit-incident-summary", actor=OFFICER, case_id=case_id, cause="a", handling="b", harm="c", lessons="d")
        err = refused(core, "update-incident", actor=OFFICER, case_id=case_id, note="再次处置完毕", resolved=True)
        assert "closed（已办结）" in err.message and "supplement" in err.message  # 补充报告 is still allowed

    def test_concurrent_updates_one_wins_the_other_is_told(self, case_id, monkeypatch):
        """Two operators act on one case at once: one update lands, the other gets the clear
        optimistic-lock message (not a crash), and the audit chain stays intact."""
        import threading

        from models import statemachine
        from models.audit import verify
        from models.db import engine
        from models.errors import ConcurrentUpdate

        if engine().dialect.name == "sqlite":
            pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): two updates cannot interleave")
        both_read = threading.Barrier(2, timeout=10)
        real_step = statemachine.Step

        def step_after_both_read(**kw):  # both transactions hold the case at the same version
            both_read.wait()
            return real_step(**kw)

        monkeypatch.setattr(statemachine, "Step", step_after_both_read)
        outcomes: list[str] = []

        def act(note: str) -> None:
            try:
                outcomes.append(core("update-incident", actor=OFFICER, case_id=case_id, note=note).case.state)
            except ConcurrentUpdate as exc:
                outcomes.append(exc.message)

        threads = [threading.Thread(target=act, args=(n,)) for n in ("续报一", "续报二")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["handling", f"案件 {case_id} 刚被其他操作修改，请刷新后重试"], outcomes
        assert len(show(case_id)["events"]) == 2  # report + the one update that landed
        with session() as s:
            assert verify(s)[0]

    def test_unknown_field(self, case_id):
        refused(core, "update-incident", field="colour", actor=OFFICER, case_id=case_id, note="x", colour="red")


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize("category,figures,expected", [
    ("personal_info_leak", {"affected_persons": 999_999}, "general"),
    ("personal_info_leak", {"affected_persons": 1_000_000}, "relatively_major"),
    ("personal_info_leak", {"affected_persons": 10_000_000}, "major"),
    ("personal_info_leak", {"affected_persons": 100_000_000}, "particularly_major"),
    ("defacement", {"affected_persons": 5_000_000}, "general"),  # persons count only for data leaks
    ("defacement", {"spread_shares": 1000}, "relatively_major"),
    ("defacement", {"spread_views": 1_000_000}, "particularly_major"),
    ("ransomware", {"direct_loss_yuan": 20_000_000}, "major"),
    ("cii_attack", {"downtime_hours": 0.5}, "relatively_major"),
])
def test_level_suggestion(category, figures, expected):
    from models.incident import suggest_level

    assert suggest_level(category, figures)[0] == expected


@pytest.mark.parametrize("path,due", [
    ("cii_operator", "2026-11-28T11:00:00+08:00"),
    ("中央和国家机关及其所属单位（2小时）", "2026-11-28T12:00:00+08:00"),
    ("other", "2026-11-28T14:00:00+08:00"),
])
def test_external_report_due_by_reporter_path(org, clock, path, due):
    clock("2026-11-28T10:30:00+08:00")
    case = show(core("report-incident", **report_params(reporter_path=path)).case.id)
    assert obligation(case, "external_report")["due_at"] == due  # discovered 10:00 + 1/2/4 h


def test_summary_reminder_says_when_its_time_limit_is_in_an_unannounced_year(org, clock):
    """A summary due in 2027 (holidays not yet announced): flagged, and the 催报通知 says so."""
    from tasks.sweep import sweep

    clock("2026-12-10T10:30:00+08:00")
    case_id = core("report-incident", **report_params(level="general", discovered_at="2026-12-10T10:00:00+08:00")).case.id
    core("update-incident", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True)
    summary = obligation(show(case_id), "summary_report")
    assert summary["calendar_unconfirmed"] is True  # 30 days end 2027-01-09 (Sat), rolled Mon–Fri
    clock("2027-01-13T09:00:00+08:00")
    assert sweep()["acted"] == 1
    [reminder] = [n for n in show(case_id)["notices"] if n["kind"] == "report_reminder"]
    from models.notice import Notice

    with session() as s:
        notice = s.get(Notice, reminder["id"])
        assert "上述时限所在年度的法定节假日安排尚未公布" in notice.text and "尚未公布" in notice.html


def test_an_external_report_still_owed_at_closing_stays_owed_and_can_be_recorded_after(org, clock):
    """Closing does not drop the external report: the summary warns, the obligation stays on the
    ledger, and a 补充报告 on the closed case records the report time (the state stays closed)."""
    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params(category="ransomware")).case.id
    core("update-incident", actor=OFFICER, case_id=case_id, note="已恢复", resolved=True)
    out = core("submit-incident-summary", actor=OFFICER, case_id=case_id, cause="钓鱼邮件", handling="隔离恢复",
               harm="有限", lessons="培训")
    assert out.case.state == "closed"
    case = show(case_id)
    assert obligation(case, "external_report")["status"] == "open"
    assert any("对外报告尚未录入" in w and "14:00" in w for w in case["warnings"])
    from tasks.ledger import ledger_rows

    with session() as s:
        assert [r["kind"] for r in ledger_rows(s) if r["case_id"] == case_id] == ["external_report"]
    clock("2026-11-28T13:00:00+08:00")
    out = core("update-incident", actor=OFFICER, case_id=case_id, note="已向省网信办报告",
               external_reported_at="2026-11-28T12:30:00+08:00")
    assert out.case.state == "closed"
    case = show(case_id)
    assert obligation(case, "external_report")["status"] == "met"
    assert case["events"][-1]["type"] == "supplement" and case["events"][-1]["to_state"] == "closed"
    refused(core, "update-incident", contains="closed", actor=OFFICER, case_id=case_id, note="再次处置完毕",
            resolved=True)


def test_labels_and_ids_are_both_accepted():
    from models.incident import IncidentLevel, ReportIncidentRequest

    a = ReportIncidentRequest.model_validate(report_params(level="较大（Ⅲ级）"))
    b = ReportIncidentRequest.model_validate(report_params(level="relatively_major"))
    assert a.level is b.level is IncidentLevel.relatively_major
