"""年度检查考核 (SPEC 3.4): a scripted year, then start → self-assess → score → publish."""
from __future__ import annotations

import csv
import os

import pytest
from conftest import db_state

from models.db import session
from models.errors import DomainError

OFFICE, STREET = "p-sun-jianhua", "p-wang-zhiqiang"
OFFICERS = {"SQ04": "p-liang-chen", "SQ05": "p-yu-yang", "SQ08": "p-wei-shuai"}
FULL_MANUAL = {"org_duties": 10, "systems": 14, "protection": 22, "plan": 8}  # 54


def at(when: str) -> None:
    os.environ["DUTYFLOW_NOW"] = when


def act(fn, model, **params):
    from models.requests import validate_request

    return fn(validate_request(model, params))


def manual(total: int) -> dict:
    """Manual scores adding up to ``total`` (≤ 54)."""
    lost = 54 - total
    return {**FULL_MANUAL, "protection": 22 - lost}


def script_the_year() -> None:
    """Activities, incidents and rectifications across the 12 communities in 2026."""
    from models import assessment as a
    from models import incident as i
    from models import rectification as r
    from tasks.sweep import sweep

    at("2026-11-30T10:00:00+08:00")
    acts = [("SQ01", "meeting", "2026-03-02"), ("SQ01", "meeting", "2026-09-10"), ("SQ01", "training", "2026-05-12"),
            ("SQ01", "drill", "2026-06-18"), ("SQ01", "publicity", "2026-09-15"),
            ("SQ02", "meeting", "2026-04-01"), ("SQ02", "drill", "2026-07-01"), ("SQ02", "publicity", "2026-09-16"),
            ("SQ03", "meeting", "2025-12-20")]  # last year's meeting does not count
    for unit, kind, day in acts:
        act(a.record_activity, a.RecordActivityRequest, actor=OFFICE, unit=unit, kind=kind, date=day,
            title=f"{unit} {kind}", participants=[OFFICE])
    at("2026-05-10T12:00:00+08:00")  # SQ04: found 09:00, reported 12:00 → 迟报
    act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ04"], unit="SQ04", category="malware", level="general",
        title="终端感染病毒", description="办公终端感染", discovered_at="2026-05-10T09:00:00+08:00")
    act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ05"], unit="SQ05", category="malware", level="general",
        title="终端感染病毒", description="办公终端感染", discovered_at="2026-05-10T11:30:00+08:00")
    inc8 = act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ08"], unit="SQ08", category="malware",
               level="general", title="服务器中毒", description="服务器感染",
               discovered_at="2026-05-10T11:30:00+08:00").case.id
    act(i.update, i.UpdateIncidentRequest, actor=OFFICE, case_id=inc8, note="核查发现曾隐瞒", concealed=True)
    at("2026-06-01T10:00:00+08:00")
    params = dict(actor=OFFICE, source="区网信办检查", risk_level="medium", problem="弱口令", requirement="整改")
    rect6 = act(r.notify, r.NotifyRiskRequest, unit="SQ06", **params).case.id
    act(r.notify, r.NotifyRiskRequest, unit="SQ07", **params)
    act(r.acknowledge, r.AcknowledgeRiskRequest, actor="p-deng-hao", case_id=rect6)
    at("2026-06-05T10:00:00+08:00")
    act(r.submit, r.SubmitRectificationRequest, actor="p-deng-hao", case_id=rect6, measures="已改口令", evidence=["截图"])
    act(r.verify, r.VerifyRectificationRequest, actor=OFFICE, case_id=rect6, passed=True, opinion="通过")
    at("2026-06-20T10:00:00+08:00")  # SQ07's rectification is overdue (due 6/13 24:00)
    sweep()


# the hand-computed expectations (auto max 46: agenda 10, reporting 8, overdue 6, on-time 6, drill 6,
# training 6, publicity 4; manual max 54)
AUTO = {"SQ01": 46, "SQ02": 46 - 5 - 6, "SQ04": 20 - 2, "SQ07": 20 - 1 - 6}  # others: 46 − 10 − 6 − 6 − 4 = 20
MANUAL = {"SQ01": 50, "SQ02": 50}  # others 45
BONUS = {"SQ01": 3}


def expected() -> dict[str, tuple[float, str, int]]:
    final = {f"SQ{n:02d}": AUTO.get(f"SQ{n:02d}", 20) + MANUAL.get(f"SQ{n:02d}", 45) + BONUS.get(f"SQ{n:02d}", 0)
             for n in range(1, 13)}
    assert final["SQ01"] == 99 and final["SQ02"] == 85 and final["SQ04"] == 63 and final["SQ07"] == 58
    grades = {"SQ01": "优秀", "SQ02": "良好", "SQ04": "合格", "SQ07": "不合格", "SQ08": "不合格"}
    ranks = {"SQ01": 1, "SQ02": 2, "SQ04": 10, "SQ07": 11, "SQ08": 12}  # seven units tie at 65 on rank 3
    return {u: (final[u], grades.get(u, "合格"), ranks.get(u, 3)) for u in final}


@pytest.mark.usefixtures("prefect_harness")
def test_a_scripted_year_start_self_assess_score_publish(org, sink, clock, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from support import run_flow

    from models import assessment as a
    from tasks.sweep import sweep

    script_the_year()
    clock("2026-11-30T11:00:00+08:00")
    assert run_flow("record-activity", actor=OFFICE, unit="SQ12", kind="宣传", date="2025-11-02",
                    title="去年的宣传", participants=[])["state"] == "recorded"  # 2025: does not count for 2026
    clock("2026-12-01T09:00:00+08:00")
    out = run_flow("start-annual-assessment", actor="system", year=2026)
    cycle = out["case_id"]
    assert out["state"] == "started"
    assert run_flow("start-annual-assessment", actor="system", year=2026)["case_id"] == cycle  # once a year
    with session() as s:
        rows = {r.unit: r for r in s.exec(__import__("sqlmodel").select(a.AssessmentUnit)).all()}
    assert len(rows) == 12
    assert {u: sum(i["points"] for i in r.auto["items"].values()) for u, r in rows.items()} == {
        f"SQ{n:02d}": AUTO.get(f"SQ{n:02d}", 20) for n in range(1, 13)}
    late = rows["SQ04"].auto["items"]["incident_reporting"]["deductions"][0]
    assert late["points"] == -2 and len(late["records"]) == 1 and late["records"][0].startswith("INC-2026-")
    assert [v["id"] for v in rows["SQ08"].auto["vetoes"]] == ["concealment"]
    # self-assessment: SQ01 and SQ02 on time; SQ03 late; the rest never
    clock("2026-12-05T10:00:00+08:00")
    for unit in ("SQ01", "SQ02"):
        run_flow("submit-self-assessment", actor=OFFICE, year=2026, unit=unit, scores=manual(50), notes="自评")
    clock("2026-12-15T09:00:00+08:00")  # due 12/16 00:00: reminder 1 working day before
    sweep()
    clock("2026-12-16T09:00:00+08:00")
    sweep()
    sweep()
    from models.case_view import case_json, load_case

    with session() as s:
        case = case_json(s, load_case(s, cycle))
    reminders = [n for n in case["notices"] if n["kind"] == "report_reminder"]
    assert len(reminders) == 20  # 10 units × (临期提醒, 催报), each once
    assert "p-zhang-xiuying" not in {p for n in reminders for p in n["recipients"]}  # SQ01 had self-assessed
    clock("2026-12-17T10:00:00+08:00")
    run_flow("submit-self-assessment", actor=OFFICE, year=2026, unit="SQ03", scores=manual(45))
    # scoring: bad input first
    before = db_state()
    with pytest.raises(DomainError) as info:
        run_flow("score-assessment", actor=OFFICE, year=2026,
                 table=[{"unit": "SQ01", "scores": {**FULL_MANUAL, "protection": 23}}])
    assert info.value.field == "table[0].scores.protection" and "0–22" in info.value.message
    with pytest.raises(DomainError) as info:
        run_flow("score-assessment", actor=OFFICE, year=2026, table=[{"unit": "SQ99", "scores": FULL_MANUAL}])
    assert info.value.field == "table[0].unit"
    assert db_state() == before
    table = [{"unit": f"SQ{n:02d}", "scores": manual(MANUAL.get(f"SQ{n:02d}", 45)),
              "bonus": {"commendation": 3} if n == 1 else {}} for n in range(1, 12)]
    run_flow("score-assessment", actor=OFFICE, year=2026, table=table)
    before = db_state()
    with pytest.raises(DomainError) as info:
        run_flow("publish-assessment", actor=STREET, year=2026)
    assert "SQ12" in info.value.message and "SQ11" not in info.value.message
    assert db_state() == before
    run_flow("score-assessment", actor=OFFICE, year=2026, table=[{"unit": "SQ12", "scores": manual(45)}])
    clock("2026-12-20T10:00:00+08:00")
    out = run_flow("publish-assessment", actor=STREET, year=2026)
    assert out["state"] == "published"
    with session() as s:
        results = {r["unit"]: r for r in a.results(s, a.get_cycle(s, 2026))}
    assert {u: (r["final"], r["grade"], r["rank"]) for u, r in results.items()} == expected()
    assert results["SQ08"]["veto"] and results["SQ08"]["final"] == 65  # vetoed whatever its points
    assert results["SQ01"]["self_assessment"] == "已自评"
    assert results["SQ03"]["self_assessment"] == "逾期自评"
    assert results["SQ09"]["self_assessment"] == "未自评"
    assert any("INC-2026-" in line for line in results["SQ04"]["deduction_lines"])
    # the exports open with the expected rows
    rows = list(csv.DictReader(open(out["export"]["csv"], encoding="utf-8-sig")))
    assert [r["单位代码"] for r in rows][:2] == ["SQ01", "SQ02"] and len(rows) == 12
    sq03 = [r for r in rows if r["单位代码"] == "SQ03"][0]
    assert sq03["社区书记（12月31日在任）"] == "朱宏伟" and sq03["等次"] == "合格" and sq03["名次"] == "3"
    from openpyxl import load_workbook

    ws = load_workbook(out["export"]["xlsx"]).active
    values = list(ws.iter_rows(values_only=True))
    assert values[0][0] == "单位代码" and len(values) == 13
    assert values[1][:6] == ("SQ01", "东风社区", "张秀英", 99, "优秀", 1)
    from prefect.client.schemas.filters import ArtifactFilterType

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["assessment-2026"])))
        progress = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    assert any(p.data == 100.0 for p in progress)  # the cycle's computation reported its progress
    import json

    table_rows = json.loads(arts[-1].data) if isinstance(arts[-1].data, str) else arts[-1].data
    assert [(r["单位"], r["名次"], r["等次"]) for r in table_rows][:2] == [("东风社区", 1, "优秀"), ("红旗社区", 2, "良好")]
    with session() as s:
        case = case_json(s, load_case(s, cycle))
    [result_notice] = [n for n in case["notices"] if n["kind"] == "assessment_result"]
    assert len(result_notice["recipients"]) == 12


def test_catalogue_that_does_not_add_up_or_names_an_unknown_rule_is_refused():
    import yaml

    from tasks.scoring import DEFAULT_CATALOGUE, load_catalogue

    data = yaml.safe_load(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
    assert sum(i["max_points"] for i in load_catalogue(data=data)["items"]) == 100
    data["items"][0]["max_points"] = 11
    with pytest.raises(DomainError, match="101"):
        load_catalogue(data=data)
    data["items"][0]["max_points"] = 10
    data["items"][0]["rule"] = "meetings_at_most"
    with pytest.raises(DomainError) as info:
        load_catalogue(data=data)
    assert info.value.field == "items.org_agenda"


def test_the_served_schedule_is_yearly_in_beijing_time():
    from deployments.deployments import build

    [dep] = [d for d in build() if d.name == "start-annual-assessment"]
    [sched] = dep.schedules
    assert sched.schedule.cron == "0 9 1 12 *"
    assert sched.schedule.timezone == "Asia/Shanghai"


@pytest.mark.usefixtures("prefect_harness")
def test_a_notice_to_every_community_is_left_to_the_sweep(org, sink, clock, tmp_path, monkeypatch):
    """Above ``notifications.inline_max`` messages the flow does not wait for delivery: the
    考核通知 is queued and the next sweep sends it, each principal once."""
    import yaml
    from support import run_flow

    from models import policy

    pol = yaml.safe_load(policy.DEFAULT.read_text(encoding="utf-8"))
    pol["notifications"]["inline_max"] = 5
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(pol, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_POLICY", str(tmp_path / "policy.yaml"))
    clock("2026-12-01T09:00:00+08:00")
    out = run_flow("start-annual-assessment", actor="system", year=2026)
    assert out["delivery"] == {"sent": 0, "failed": 0, "skipped": 0, "queued": 12}
    assert sink.messages == []
    swept = run_flow("sweep-deadlines")
    assert swept["delivery"]["sent"] == 12
    titles = [m["title"] for m in sink.messages]
    assert len(titles) == 12 and all("检查考核的通知" in t for t in titles)
    assert len({m["_path"] for m in sink.messages}) == 12  # one message per principal
    assert run_flow("sweep-deadlines")["delivery"]["sent"] == 0


def test_year_records_read_per_unit_equal_the_whole_year(org, clock, monkeypatch):
    """``YearRecords`` reads a few units' records only (SQL IN) or the whole year at once;
    both give the same points, deductions and vetoes — including the major-incident veto,
    whose accountability case belongs to the street, not to the unit."""
    from datetime import datetime, timezone

    from models import incident as i
    from models.case import Case
    from tasks import scoring

    script_the_year()
    at("2026-07-01T10:00:00+08:00")
    inc = act(i.report, i.ReportIncidentRequest, actor=OFFICE, unit="SQ07", category="ddos",
              level="relatively_major", title="门户网站遭攻击", description="网站中断 3 小时",
              discovered_at="2026-07-01T09:30:00+08:00").case.id
    t = datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc)
    with session() as s:
        s.add(Case(id="ACC-2026-0901", kind="accountability", state="decided", unit="JD01", proposed_from=inc,
                   data={"decision": {"date": "2026-10-01"}}, created_at=t, updated_at=t))
    at("2026-12-01T09:00:00+08:00")
    cat = scoring.load_catalogue()
    units = [f"SQ{n:02d}" for n in range(1, 13)]
    with session() as s:
        few = scoring.compute_auto(s, cat, 2026, units)
        single = scoring.compute_auto(s, cat, 2026, ["SQ07"])
    monkeypatch.setattr(scoring, "UNIT_FILTER_MAX", 0)
    with session() as s:
        whole = scoring.compute_auto(s, cat, 2026, units)
    assert few == whole
    assert single["SQ07"] == whole["SQ07"]
    assert whole["SQ07"]["vetoes"] == [{"id": "major_incident_accountability", "item": "发生较大及以上网络安全事件并被问责",
                                        "records": [f"{inc}（问责 ACC-2026-0901）"]}]
    assert [v["id"] for v in whole["SQ08"]["vetoes"]] == ["concealment"]
