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
        assert any(w.startswith("迟报：内部报告时限为2026年11月28日（星期六）9时前，实际报告于2026年11月28日10时30分，")
                   and w.endswith("迟报1小时30分钟") for w in case["warnings"]), case["warnings"]

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
        refused(core, name, field="effective_at", contains="2026年11月28日12时", **params)

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
    from models.sweep import sweep

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
    assert any("对外报告尚未录入" in w and "2026年11月28日（星期六）14时前" in w for w in case["warnings"])
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


# ---------------------------------------------------------------- the 事件报告 and the summary as a clerk reads them (issue #11)


def notice_text(case_id: str, kind: str):
    """(html, text) of the case's one notice of ``kind``."""
    from sqlmodel import select

    from models.notice import Notice

    with session() as s:
        [n] = s.exec(select(Notice).where(Notice.case_id == case_id, Notice.kind == kind)).all()
        return n.html, n.text


def test_report_prints_the_measures_a_clean_path_and_the_delay_in_hours(org, clock):
    from test_notices import assert_clean_notice, html_body

    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params(
        discovered_at="2026-11-28T08:00:00+08:00", spread_views=2000,
        measures="已关闭网站并保存日志\n已通知网站运维单位排查")).case.id
    html, text = notice_text(case_id, "incident_report")
    assert_clean_notice(html, text, case_id)
    for out in (html_body(html), text):
        assert "已关闭网站并保存日志。" in out and "已通知网站运维单位排查。" in out
        assert "报告时未填报已采取的措施" not in out
        # 较大: one clean phrase, the provincial 网信部门 named once
        assert "报告路径：按规定应于发现后4小时内，即2026年11月28日（星期六）12时前，报告省级网信部门。" in out
        assert out.count("省级网信部门") == 1 and "其他单位，报省级网信部门（4小时）" not in out
        assert "迟报1小时30分钟" in out and "90 分钟" not in out and "90分钟" not in out
        assert "有害信息浏览量：2000次。" in out
    assert "签发人：" in text and "签发人" in html  # 报告: upward
    assert "紧急程度：加急" in text
    assert "　　1.内部报告（报街道网信办）：2026年11月28日（星期六）9时前（逾期1小时30分钟完成）" in text
    assert "　　2.对外报告：2026年11月28日（星期六）12时前（尚未到期）" in text
    assert "<thead><tr><th>事项</th><th>时限</th><th>状态</th></tr></thead>" in html


def test_report_of_a_general_incident_has_no_provincial_path(org, clock):
    from test_notices import assert_clean_notice, html_body

    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params(level="general", category="malware")).case.id
    html, text = notice_text(case_id, "incident_report")
    assert_clean_notice(html, text, case_id)
    for out in (html_body(html), text):
        assert "省级网信部门" not in out and "对外报告" not in out
        assert "报告路径：一般事件按规定在本单位和街道网信办内部报告。" in out
        assert "报告时未填报已采取的措施，将在续报中补充。" in out  # no measures entered
    assert "紧急程度" not in text


def test_report_of_a_cii_operator_names_its_own_path(org, clock):
    from test_notices import html_body

    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params(reporter_path="cii_operator")).case.id
    html, text = notice_text(case_id, "incident_report")
    for out in (html_body(html), text):
        assert ("本单位为关键信息基础设施运营者，按规定应于发现后1小时内，即2026年11月28日（星期六）11时前，"
                "报告关键信息基础设施保护工作部门及公安机关。") in out
        assert "省级网信部门" not in out


def test_level_hint_has_no_symbols(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params(
        category="personal_info_leak", level="general", affected_persons=2_000_000)).case.id
    hint = ("级别提示：所报级别为一般（Ⅳ级），按分级指南建议至少为较大（Ⅲ级）："
            "个人信息/基础数据泄露涉及人数200万人，已达较大（Ⅲ级）的100万人标准")
    assert hint in show(case_id)["warnings"]
    for out in notice_text(case_id, "incident_report"):
        assert hint + "。" in out and "≥" not in out


def test_summary_prints_its_own_deadline_as_the_last_day(org, clock):
    """The summary's own time limit (due 12/29 00:00) reads as 12月28日（星期一）24时; the late
    external report is said in hours and minutes; no case id outside the 附注."""
    from test_notices import assert_clean_notice, html_body

    clock("2026-11-28T10:30:00+08:00")
    case_id = core("report-incident", **report_params()).case.id
    clock("2026-11-28T16:00:00+08:00")
    core("update-incident", actor=OFFICER, case_id=case_id, note="已恢复页面",
         external_reported_at="2026-11-28T15:10:00+08:00", resolved=True)
    core("submit-incident-summary", actor=OFFICER, case_id=case_id, cause="弱口令", handling="断网、恢复",
         harm="有限", lessons="启用双因素认证")
    html, text = notice_text(case_id, "incident_summary")
    assert_clean_notice(html, text, case_id)
    for out in (html_body(html), text):
        assert "2026年12月28日（星期一）24时前" in out and not re.search(r"(?<!\d)0时", out)
        assert "对外报告迟报：时限为2026年11月28日（星期六）14时前，实际报告于2026年11月28日15时10分，迟报1小时10分钟。" in out
        assert "已于2026年11月28日16时处置完毕" in out
    assert "　　2.对外报告：2026年11月28日（星期六）14时前（逾期1小时10分钟完成）" in text
    assert "　　4.事件处置总结报告：2026年12月28日（星期一）24时前（按时完成）" in text
    assert "<thead><tr><th>事项</th><th>时限</th><th>执行情况</th></tr></thead>" in html
