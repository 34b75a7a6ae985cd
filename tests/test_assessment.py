"""年度检查考核 (SPEC 3.4): a scripted year, then start → self-assess → score → publish."""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
from pathlib import Path

import pytest
import yaml
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


def script_the_year() -> dict:
    """Activities, incidents and rectifications across the 12 communities in 2026; returns
    the case ids (activities by (unit, kind))."""
    from models import assessment as a
    from models import incident as i
    from models import rectification as r
    from models.sweep import sweep

    ids: dict = {}
    at("2026-11-30T10:00:00+08:00")
    acts = [("SQ01", "meeting", "2026-03-02"), ("SQ01", "meeting", "2026-09-10"), ("SQ01", "training", "2026-05-12"),
            ("SQ01", "drill", "2026-06-18"), ("SQ01", "publicity", "2026-09-15"),
            ("SQ02", "meeting", "2026-04-01"), ("SQ02", "drill", "2026-07-01"), ("SQ02", "publicity", "2026-09-16"),
            ("SQ03", "meeting", "2025-12-20")]  # last year's meeting does not count
    for unit, kind, day in acts:
        ids.setdefault((unit, kind), []).append(
            act(a.record_activity, a.RecordActivityRequest, actor=OFFICE, unit=unit, kind=kind, date=day,
                title=f"{unit} {kind}", participants=[OFFICE]).case.id)
    at("2026-05-10T12:00:00+08:00")  # SQ04: found 09:00, reported 12:00 → 迟报
    ids["inc4"] = act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ04"], unit="SQ04", category="malware",
                      level="general", title="终端感染病毒", description="办公终端感染",
                      discovered_at="2026-05-10T09:00:00+08:00").case.id
    act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ05"], unit="SQ05", category="malware", level="general",
        title="终端感染病毒", description="办公终端感染", discovered_at="2026-05-10T11:30:00+08:00")
    inc8 = ids["inc8"] = act(i.report, i.ReportIncidentRequest, actor=OFFICERS["SQ08"], unit="SQ08",
                             category="malware", level="general", title="服务器中毒", description="服务器感染",
                             discovered_at="2026-05-10T11:30:00+08:00").case.id
    act(i.update, i.UpdateIncidentRequest, actor=OFFICE, case_id=inc8, note="核查发现曾隐瞒", concealed=True)
    at("2026-06-01T10:00:00+08:00")
    params = dict(actor=OFFICE, source="区网信办检查", risk_level="medium", problem="弱口令", requirement="整改")
    rect6 = ids["rect6"] = act(r.notify, r.NotifyRiskRequest, unit="SQ06", **params).case.id
    ids["rect7"] = act(r.notify, r.NotifyRiskRequest, unit="SQ07", **params).case.id
    act(r.acknowledge, r.AcknowledgeRiskRequest, actor="p-deng-hao", case_id=rect6)
    at("2026-06-05T10:00:00+08:00")
    act(r.submit, r.SubmitRectificationRequest, actor="p-deng-hao", case_id=rect6, measures="已改口令", evidence=["截图"])
    act(r.verify, r.VerifyRectificationRequest, actor=OFFICE, case_id=rect6, passed=True, opinion="通过")
    at("2026-06-20T10:00:00+08:00")  # SQ07's rectification is overdue (due 6/13 24:00)
    sweep()
    return ids


# the hand-computed expectations (auto max 46: agenda 10, reporting 8, overdue 6, on-time 6, drill 6,
# training 6, publicity 4; manual max 54)
AUTO_AT_START = {"SQ01": 46, "SQ02": 46 - 5 - 6, "SQ04": 20 - 2, "SQ07": 20 - 1 - 6}  # others: 46 − 10 − 6 − 6 − 4 = 20
AUTO = {**AUTO_AT_START, "SQ02": 46 - 5}  # at publication: SQ02's training, held after the start, counts
MANUAL = {"SQ01": 50, "SQ02": 50}  # others 45
BONUS = {"SQ01": 3}
VETOED = ("SQ08", "SQ09", "SQ10")  # concealment · a 较大 incident with accountability · falsified records


def expected() -> dict[str, tuple[float, str, int]]:
    final = {f"SQ{n:02d}": AUTO.get(f"SQ{n:02d}", 20) + MANUAL.get(f"SQ{n:02d}", 45) + BONUS.get(f"SQ{n:02d}", 0)
             for n in range(1, 13)}
    assert final["SQ01"] == 99 and final["SQ02"] == 91 and final["SQ04"] == 63 and final["SQ07"] == 58
    grades = {"SQ01": "优秀", "SQ02": "优秀", "SQ04": "合格", "SQ07": "不合格", **{u: "不合格" for u in VETOED}}
    # five units tie at 65 on rank 3; the vetoed units, 65 each, come last and tie on rank 10
    ranks = {"SQ01": 1, "SQ02": 2, "SQ04": 8, "SQ07": 9, **{u: 10 for u in VETOED}}
    return {u: (final[u], grades.get(u, "合格"), ranks.get(u, 3)) for u in final}


def deduction(item: str, reason: str, points: float, records: list[str]) -> dict:
    return {"item": item, "reason": reason, "points": points, "records": records}


MISSING_ACTIVITIES = {  # the deduction lines of a unit with no activity at all
    "org_agenda": "网络安全纳入党委重要议事日程：全年专题会议 0 次，少于要求的 2 次，扣 10 分（全年无相关记录）",
    "drill": "开展网络安全应急演练：全年应急演练 0 次，少于要求的 1 次，扣 6 分（全年无相关记录）",
    "training": "开展网络安全培训：全年培训 0 次，少于要求的 1 次，扣 6 分（全年无相关记录）",
    "publicity": "开展网络安全宣传：全年宣传活动 0 次，少于要求的 1 次，扣 4 分（全年无相关记录）",
}


def progress_spy(monkeypatch) -> list[float]:
    """Every progress value the assessment flows report (the flow's own final 100 included)."""
    import flows.assessment as fa

    seen: list[float] = []
    real = fa.update_progress_artifact

    def spy(artifact_id, progress, *args, **kwargs):
        seen.append(progress)
        return real(artifact_id, progress, *args, **kwargs)

    monkeypatch.setattr(fa, "update_progress_artifact", spy)
    return seen


def major_incident_with_accountability(unit: str, actor: str) -> tuple[str, str]:
    """A 较大 personal-information leak reported in time through the flows; the automatic
    proposal (情形 2) accepted and decided through the flows. Returns (incident, accountability)."""
    from sqlmodel import select
    from support import run_flow

    from models.case import Case

    inc = run_flow("report-incident", actor=actor, unit=unit, category="personal_info_leak", level="relatively_major",
                   title="居民信息泄露", description="居民信息表被上传到公共网盘", affected_persons=12000,
                   discovered_at="2026-08-03T09:00:00+08:00")["case_id"]
    run_flow("update-incident", actor=actor, case_id=inc, note="已向区网信办报告",
             external_reported_at="2026-08-03T09:20:00+08:00")
    with session() as s:
        [acc] = s.exec(select(Case.id).where(Case.proposed_from == inc)).all()
    assert run_flow("open-accountability", actor=OFFICE, case_id=acc)["state"] == "investigating"
    assert run_flow("record-accountability-decision", actor=STREET, case_id=acc, decided_by="JD01",
                    forms={"p-yu-fenglan": ["通报"]})["state"] == "decided"
    return inc, acc


@pytest.mark.usefixtures("prefect_harness")
def test_a_scripted_year_start_self_assess_score_publish(org, sink, clock, tmp_path, monkeypatch):
    import json

    from openpyxl import load_workbook
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, ArtifactFilterType
    from prefect.client.schemas.sorting import ArtifactSort
    from sqlmodel import select
    from support import refused, run_flow

    from models import assessment as a
    from models import rectification as rf
    from models.case_view import case_json, load_case
    from models.notice import Notice
    from models.org import load_org
    from models.sweep import sweep

    ids = script_the_year()
    rect7 = ids["rect7"]
    clock("2026-08-03T09:30:00+08:00")  # SQ09: a 较大 incident, accountability decided (veto)
    inc9, acc9 = major_incident_with_accountability("SQ09", OFFICE)
    clock("2026-11-25T10:00:00+08:00")  # SQ06: a low risk due 2027-01-07, not yet due at the start
    rect6b = act(rf.notify, rf.NotifyRiskRequest, actor=OFFICE, unit="SQ06", source="区网信办检查", risk_level="low",
                 problem="日志留存不足", requirement="整改").case.id
    clock("2026-11-30T11:00:00+08:00")
    assert run_flow("record-activity", actor=OFFICE, unit="SQ12", kind="宣传", date="2025-11-02",
                    title="去年的宣传", participants=[])["state"] == "recorded"  # 2025: does not count for 2026
    progress = progress_spy(monkeypatch)
    clock("2026-12-01T09:00:00+08:00")
    out = run_flow("start-annual-assessment", actor="system", year=2026)
    cycle = out["case_id"]
    assert out["state"] == "started"
    # the scoring reported its progress unit by unit, not only the flow's final 100
    assert progress == pytest.approx([100 * n / 12 for n in range(1, 13)] + [100.0])
    assert run_flow("start-annual-assessment", actor="system", year=2026)["case_id"] == cycle  # once a year
    [notice] = notices_of(cycle, "assessment_notice")  # due 16 Dec 2026: a confirmed working-day calendar
    assert notice.context["calendar_unconfirmed"] is False and "尚未公布" not in notice.text
    with session() as s:
        rows = {r.unit: r for r in s.exec(select(a.AssessmentUnit)).all()}
    assert len(rows) == 12
    assert {u: sum(i["points"] for i in r.auto["items"].values()) for u, r in rows.items()} == {
        f"SQ{n:02d}": AUTO_AT_START.get(f"SQ{n:02d}", 20) for n in range(1, 13)}
    # deductions from records: the reasons and the case ids behind them
    assert rows["SQ04"].auto["items"]["incident_reporting"]["deductions"] == [deduction(
        "网络安全事件按时报告", "事件迟报、漏报 1 起（每起扣 2 分）", -2, [ids["inc4"]])]
    sq02 = rows["SQ02"].auto["items"]
    assert sq02["org_agenda"]["deductions"] == [deduction(
        "网络安全纳入党委重要议事日程", "全年专题会议 1 次，少于要求的 2 次", -5, ids[("SQ02", "meeting")])]
    assert sq02["training"]["deductions"] == [deduction("开展网络安全培训", "全年培训 0 次，少于要求的 1 次", -6, [])]
    assert sq02["drill"]["deductions"] == [] and sq02["publicity"]["deductions"] == []
    sq07 = rows["SQ07"].auto["items"]
    assert sq07["rectification_overdue"]["deductions"] == [deduction(
        "通报问题按期整改", "通报问题逾期整改 1 项（每项扣 1 分）", -1, [rect7])]
    assert sq07["rectification_on_time"]["deductions"] == [deduction(
        "整改按期销号率", "按期整改销号率 0%（0/1）", -6, [rect7])]
    # SQ06: one rectification closed on time, one not yet due (left out, not counted late)
    assert rows["SQ06"].auto["items"]["rectification_on_time"] == {"points": 6, "max": 6, "deductions": []}
    assert [v["id"] for v in rows["SQ08"].auto["vetoes"]] == ["concealment"]
    assert rows["SQ09"].auto["vetoes"] == [{"id": "major_incident_accountability", "item": "发生较大及以上网络安全事件并被问责",
                                           "records": [f"{inc9}（问责 {acc9}）"]}]
    # self-assessment: SQ01 and SQ02 on time; SQ03 late; the rest never
    clock("2026-12-05T10:00:00+08:00")
    for unit in ("SQ01", "SQ02"):
        run_flow("submit-self-assessment", actor=OFFICE, year=2026, unit=unit, scores=manual(50), notes="自评")
    clock("2026-12-10T16:00:00+08:00")  # after the start: SQ02's first training of the year
    training = run_flow("record-activity", actor=OFFICE, unit="SQ02", kind="training", date="2026-12-10",
                        title="网络安全培训", participants=[OFFICE])["case_id"]
    clock("2026-12-15T09:00:00+08:00")  # due 12/16 00:00: reminder 1 working day before
    sweep()
    clock("2026-12-16T09:00:00+08:00")
    sweep()
    sweep()
    with session() as s:
        case = case_json(s, load_case(s, cycle))
    reminders = [n for n in case["notices"] if n["kind"] == "report_reminder"]
    assert len(reminders) == 20  # 10 units × (临期提醒, 催报), each once
    assert "p-zhang-xiuying" not in {p for n in reminders for p in n["recipients"]}  # SQ01 had self-assessed
    from collections import Counter

    from models.case import Obligation
    from models.org import holders

    with session() as s:
        principal = {f"SQ{n:02d}": holders(s, f"SQ{n:02d}", "principal", dt.date(2026, 12, 16))[0] for n in range(1, 13)}
        status = {o.unit: o.status for o in s.exec(select(Obligation).where(
            Obligation.case_id == cycle, Obligation.kind == "self_assessment")).all()}
    late = [u for u in principal if u not in ("SQ01", "SQ02")]
    # each unit that had not self-assessed: its principal reminded twice (临期提醒, 催报), no one else
    assert Counter(p for n in reminders for p in n["recipients"]) == {principal[u]: 2 for u in late}
    assert status == {**{u: "missed" for u in late}, "SQ01": "met", "SQ02": "met"}
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
    with pytest.raises(DomainError) as info:  # one unit, without a table
        run_flow("score-assessment", actor=OFFICE, year=2026, unit="SQ99", scores=FULL_MANUAL)
    assert info.value.field == "unit" and "SQ99" in info.value.message
    with pytest.raises(DomainError) as info:
        run_flow("score-assessment", actor=OFFICE, year=2026, unit="SQ01", scores=FULL_MANUAL,
                 table=[{"unit": "SQ02", "scores": FULL_MANUAL}])
    assert info.value.field == "table"
    with pytest.raises(DomainError) as info:
        run_flow("score-assessment", actor=OFFICE, year=2026)
    assert info.value.field == "unit"
    assert db_state() == before
    # publishing before anyone is scored: refused with every unit still missing listed
    everyone = ", ".join(f"SQ{n:02d}" for n in range(1, 13))
    refused(run_flow, "publish-assessment", actor=STREET, year=2026, field="year",
            contains=f"以下单位尚未评分，不能通报：{everyone}")
    table = [{"unit": f"SQ{n:02d}", "scores": manual(MANUAL.get(f"SQ{n:02d}", 45)),
              "bonus": {"commendation": 3} if n == 1 else {}} for n in range(1, 12)]
    table[9] = {**table[9], "falsified": True, "note": "演练记录系事后补做"}  # SQ10: the assessors find falsified records
    run_flow("score-assessment", actor=OFFICE, year=2026, table=table)
    refused(run_flow, "publish-assessment", actor=STREET, year=2026, field="year", contains="SQ12")
    run_flow("score-assessment", actor=OFFICE, year=2026, unit="SQ12", scores=manual(45))  # one unit
    # after 31 Dec: a meeting of 2027 (does not count for 2026), and SQ03 gets a new secretary
    clock("2027-01-03T10:00:00+08:00")
    run_flow("record-activity", actor=OFFICE, unit="SQ02", kind="meeting", date="2027-01-03", title="新年专题会议",
             participants=[OFFICE])
    new_sec = {"id": "p-new-sq03", "name": "新书记", "channels": [f"json://127.0.0.1:{sink.port}/p-new-sq03"]}
    with session() as s:
        load_org(s, {"persons": [new_sec],
                     "posts": [{"unit": "SQ03", "person": "p-new-sq03", "role": "principal", "valid_from": "2027-01-04"}]})
    clock("2027-01-05T10:00:00+08:00")
    progress.clear()
    out = run_flow("publish-assessment", actor=STREET, year=2026)
    assert out["state"] == "published"
    assert progress == pytest.approx([100 * n / 12 for n in range(1, 13)] + [100.0])  # recomputed at publication
    with session() as s:
        results = {r["unit"]: r for r in a.results(s, a.get_cycle(s, 2026))}
    assert {u: (r["final"], r["grade"], r["rank"]) for u, r in results.items()} == expected()
    assert results["SQ08"]["veto"] and results["SQ08"]["final"] == 65  # vetoed whatever its points
    assert results["SQ09"]["vetoes"] == [{"id": "major_incident_accountability", "item": "发生较大及以上网络安全事件并被问责",
                                         "records": [f"{inc9}（问责 {acc9}）"]}]
    assert results["SQ10"]["vetoes"] == [{"id": "falsified", "item": "考核材料弄虚作假",
                                         "records": ["考核组认定：演练记录系事后补做"]}]
    assert results["SQ10"]["final"] == 65 and results["SQ10"]["grade"] == "不合格"
    assert results["SQ01"]["self_assessment"] == "已自评"
    assert results["SQ03"]["self_assessment"] == "逾期自评"
    assert results["SQ09"]["self_assessment"] == "未自评"
    # SQ02: the December training counts at publication (the 2027 meeting does not), and it is said
    changed = "开展网络安全培训：启动时 0 分，通报时 6 分（启动时：全年培训 0 次，少于要求的 1 次；通报时：无扣分）"
    assert results["SQ02"]["auto"] == 41 and results["SQ02"]["auto_changes"] == [changed]
    assert [u for u, r in results.items() if r["auto_changes"]] == ["SQ02"]
    with session() as s:
        sq02_row = s.exec(select(a.AssessmentUnit).where(a.AssessmentUnit.unit == "SQ02")).one()
        assert sq02_row.auto["at_start"]["items"]["training"]["points"] == 0  # the start's figures are kept
        sq01_row = s.exec(select(a.AssessmentUnit).where(a.AssessmentUnit.unit == "SQ01")).one()
        assert "at_start" not in sq01_row.auto  # ... where they differ
        assert sq02_row.manual["scores"] == manual(50) and sq02_row.self_scores["scores"] == manual(50)
    assert training not in str(results["SQ02"]["deductions"])
    # the exports open with the expected rows
    rows = list(csv.DictReader(open(out["export"]["csv"], encoding="utf-8-sig")))
    assert [r["单位代码"] for r in rows][:2] == ["SQ01", "SQ02"] and len(rows) == 12
    by_unit = {r["单位代码"]: r for r in rows}
    assert {u: (float(r["总分"]), r["等次"], int(r["名次"])) for u, r in by_unit.items()} == expected()  # every row
    sq03 = by_unit["SQ03"]  # the secretary in office on 31 Dec, not the one at publication
    assert sq03["社区书记（12月31日在任）"] == "朱宏伟" and sq03["等次"] == "合格" and sq03["名次"] == "3"
    assert by_unit["SQ07"]["扣分及依据"] == "；".join([
        MISSING_ACTIVITIES["org_agenda"],
        f"通报问题按期整改：通报问题逾期整改 1 项（每项扣 1 分），扣 1 分（{rect7}）",
        f"整改按期销号率：按期整改销号率 0%（0/1），扣 6 分（{rect7}）",
        MISSING_ACTIVITIES["drill"], MISSING_ACTIVITIES["training"], MISSING_ACTIVITIES["publicity"]])
    assert by_unit["SQ02"]["扣分及依据"] == (
        f"网络安全纳入党委重要议事日程：全年专题会议 1 次，少于要求的 2 次，扣 5 分（{ids[('SQ02', 'meeting')][0]}）")
    assert by_unit["SQ02"]["自动计分变动（较考核启动时）"] == changed
    assert by_unit["SQ01"]["扣分及依据"] == "" and by_unit["SQ01"]["自动计分变动（较考核启动时）"] == ""
    assert by_unit["SQ04"]["扣分及依据"].startswith(
        MISSING_ACTIVITIES["org_agenda"] + f"；网络安全事件按时报告：事件迟报、漏报 1 起（每起扣 2 分），扣 2 分（{ids['inc4']}）；")
    assert by_unit["SQ10"]["一票否决"] == "考核材料弄虚作假（考核组认定：演练记录系事后补做）"
    assert by_unit["SQ09"]["一票否决"] == f"发生较大及以上网络安全事件并被问责（{inc9}（问责 {acc9}））"
    ws = load_workbook(out["export"]["xlsx"]).active
    values = list(ws.iter_rows(values_only=True))
    assert values[0][0] == "单位代码" and len(values) == 13
    assert values[1][:6] == ("SQ01", "东风社区", "张秀英", 99, "优秀", 1)
    assert {v[0]: (v[3], v[4], v[5]) for v in values[1:]} == expected()  # every row, as numbers
    assert [v[2] for v in values[1:]] == [by_unit[v[0]]["社区书记（12月31日在任）"] for v in values[1:]]
    with get_client(sync_client=True) as client:  # this publication's (the session's harness holds other tests')
        def latest(key: str):
            return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                         sort=ArtifactSort.CREATED_DESC, limit=1)[0]
        table, md = latest("assessment-2026"), latest("assessment-2026-deductions")
        arts_progress = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    assert any(p.data == 100.0 for p in arts_progress)
    table_rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [(r["单位"], r["名次"], r["等次"]) for r in table_rows][:2] == [("东风社区", 1, "优秀"), ("红旗社区", 2, "优秀")]
    # the markdown artifact: every unit's deductions with their records, vetoes and changes
    text = md.data
    assert text.startswith("# 2026年度考核扣分说明\n")
    assert "系统自动计分依据截至2026年12月31日24时的全年工作记录（考核启动时按截至2026年12月1日9时的记录计算" in text
    assert "## 1. 东风社区（99 分，优秀）\n- 无扣分\n" in text
    assert (f"## 2. 红旗社区（91 分，优秀）\n- 网络安全纳入党委重要议事日程：全年专题会议 1 次，少于要求的 2 次，扣 5 分"
            f"（{ids[('SQ02', 'meeting')][0]}）\n- 自动计分变动：{changed}\n") in text
    assert f"- 通报问题按期整改：通报问题逾期整改 1 项（每项扣 1 分），扣 1 分（{rect7}）\n" in text
    assert f"- 整改按期销号率：按期整改销号率 0%（0/1），扣 6 分（{rect7}）\n" in text
    assert f"- 一票否决：发生较大及以上网络安全事件并被问责（{inc9}（问责 {acc9}））\n" in text
    assert "- 一票否决：考核材料弄虚作假（考核组认定：演练记录系事后补做）\n" in text
    assert "- 一票否决：封锁、瞒报网络安全事件（" + ids["inc8"] + "）\n" in text
    assert text.count("## ") == 12 and text.count("自动计分变动") == 1
    # past policy assessment.artifact_units the artifacts list the first units and count the rest
    policy_file = tmp_path / "policy-few.yaml"
    shipped = yaml.safe_load((Path(__file__).resolve().parent.parent / "deployments" / "policy.yaml").read_text(
        encoding="utf-8"))
    shipped["assessment"]["artifact_units"] = 3
    policy_file.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_POLICY", str(policy_file))
    from tasks.export import publish_results

    publish_results.fn(2026)
    with get_client(sync_client=True) as client:
        few = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["assessment-2026", "assessment-2026-deductions"])))
    few = {a.key: a for a in sorted(few, key=lambda a: a.created)}  # the newest of each key
    table, notes = few["assessment-2026"], few["assessment-2026-deductions"]
    assert len(json.loads(table.data) if isinstance(table.data, str) else table.data) == 3
    assert "共 12 个单位，此处列出名次最前的 3 个；全部单位见导出文件 " in table.description
    assert notes.data.count("## ") == 3 and "共 12 个单位，此处列出名次最前的 3 个" in notes.data
    with session() as s:
        case = case_json(s, load_case(s, cycle))
        [notice] = s.exec(select(Notice).where(Notice.case_id == cycle, Notice.kind == "assessment_result")).all()
    [result_notice] = [n for n in case["notices"] if n["kind"] == "assessment_result"]
    assert len(result_notice["recipients"]) == 12
    assert "p-new-sq03" in result_notice["recipients"] and "p-zhu-hongwei" not in result_notice["recipients"]
    assert "第3名　建设社区（社区书记：朱宏伟）" in notice.text
    assert ("系统自动计分已按截至2026年12月31日24时的全年工作记录重新计算，红旗社区的自动计分较考核启动时有变动，"
            "变动情况见考核结果明细表。") in notice.text
    veto = "一票否决项目，考核等次确定为不合格。"
    assert re.search(r"\d+\.友谊社区：考核得分[\d.]+分，但触及“发生较大及以上网络安全事件并被问责”" + veto, notice.text)
    assert re.search(r"\d+\.繁荣社区：考核得分[\d.]+分，但触及“考核材料弄虚作假”" + veto, notice.text)
    # vetoed units: listed after the ranked ones, without a rank, their score said not to count
    assert re.search(r"\n　　友谊社区（社区书记：[^）]+），得分[\d.]+分，因触及一票否决项目，考核等次为不合格，不参加排名；",
                     notice.text)
    assert "（一票否决）；" not in notice.text and "考核编号" not in notice.text
    assert "未自评的单位" not in notice.text and "逾期自评的单位" not in notice.text  # said once, in 总体情况
    from test_notices import assert_clean_notice

    assert_clean_notice(notice.html, notice.text, cycle)
    [start_notice] = notices_of(cycle, "assessment_notice")
    assert_clean_notice(start_notice.html, start_notice.text, cycle)
    assert "请于2026年12月15日（星期二）24时前完成自评" in start_notice.text
    assert "联系人：街道网络安全和信息化领导小组办公室（网信办）" in start_notice.text
    # the low-risk rectification due in 2027 is not counted in 2026 either way
    assert results["SQ06"]["auto"] == 20 and rect6b not in str(results["SQ06"]["deductions"])


def default_catalogue() -> dict:
    import yaml

    from models.scoring import DEFAULT_CATALOGUE

    return yaml.safe_load(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))


def item(data: dict, iid: str) -> dict:
    return next(i for i in data["items"] if i["id"] == iid)


def test_catalogue_that_does_not_add_up_or_names_an_unknown_rule_is_refused():
    from models.scoring import load_catalogue

    data = default_catalogue()
    assert sum(i["max_points"] for i in load_catalogue(data=data)["items"]) == 100
    data["items"][0]["max_points"] = 11
    with pytest.raises(DomainError) as info:
        load_catalogue(data=data)
    assert "各项分值合计 101 分，不等于总分 100 分" in info.value.message
    assert "组织领导和责任落实 21（org_agenda 11、" in info.value.message  # the items, by category
    data["items"][0]["max_points"] = 10
    data["items"][0]["rule"] = "meetings_at_most"
    with pytest.raises(DomainError) as info:
        load_catalogue(data=data)
    assert info.value.field == "items.org_agenda"


def _set(path: tuple, value=None, delete: bool = False):
    """A change to the default catalogue: the item (by id) or top-level key, then keys."""
    def change(data: dict) -> None:
        target = item(data, path[0][1:]) if path[0].startswith("@") else data
        for key in path[1:-1] if path[0].startswith("@") else path[:-1]:
            target = target[key]
        last = path[-1]
        if delete:
            del target[last]
        else:
            target[last] = value
    return change


BAD_CATALOGUES = {  # change → (field, what the one message says)
    "auto item without params": (
        _set(("@org_agenda", "params"), delete=True), "items.org_agenda.params.count",
        "考核项 org_agenda（网络安全纳入党委重要议事日程）：规则 meetings_at_least 缺少参数 count"),
    "params null": (_set(("@org_agenda", "params"), None), "items.org_agenda.params.count", "缺少参数 count"),
    "mistyped parameter name": (_set(("@org_agenda", "params"), {"cnt": 2, "per_missing": 5}),
                                "items.org_agenda.params.cnt", "规则 meetings_at_least 没有参数 'cnt'"),
    "count as text": (_set(("@org_agenda", "params", "count"), "2"), "items.org_agenda.params.count", "应为整数，实为 '2'"),
    "count not whole": (_set(("@org_agenda", "params", "count"), 1.5), "items.org_agenda.params.count", "应为整数"),
    "count zero": (_set(("@org_agenda", "params", "count"), 0), "items.org_agenda.params.count", "应≥ 1"),
    "per_missing a bool": (_set(("@org_agenda", "params", "per_missing"), True),
                           "items.org_agenda.params.per_missing", "应为数值，实为 True"),
    "per negative": (_set(("@incident_reporting", "params", "per"), -2), "items.incident_reporting.params.per", "应> 0"),
    "per NaN": (_set(("@incident_reporting", "params", "per"), float("nan")), "items.incident_reporting.params.per", "应> 0"),
    "params not a mapping": (_set(("@incident_reporting", "params"), [2]), "items.incident_reporting.params", "params 应为"),
    "params on a rule without any": (_set(("@rectification_on_time", "params"), {"per": 1}),
                                     "items.rectification_on_time.params.per", "没有参数 'per'（规则 rectification_on_time_rate 的参数：无）"),
    "no category": (_set(("@systems", "category"), delete=True), "items.systems", "考核项 systems（网络安全管理制度健全并落实）：缺少考核类别"),
    "blank category": (_set(("@systems", "category"), "  "), "items.systems", "缺少考核类别"),
    "no item name": (_set(("@systems", "item"), delete=True), "items.systems", "缺少考核内容"),
    "max_points a bool": (_set(("@org_agenda", "max_points"), True), "items.org_agenda", "max_points 应为正数，实为 True"),
    "max_points text": (_set(("@org_agenda", "max_points"), "10"), "items.org_agenda", "max_points 应为正数"),
    "max_points infinite": (_set(("@org_agenda", "max_points"), float("inf")), "items.org_agenda", "max_points 应为正数"),
    "manual item with a rule": (_set(("@systems", "rule"), "meetings_at_least"), "items.systems", "人工评分项不设计分规则"),
    "grades without 合格": (_set(("grades",), {"优秀": 90, "良好": 80}), "grades.合格", "grades 缺少等次 合格"),
    "grades out of order": (_set(("grades",), {"优秀": 90, "良好": 95, "合格": 60}), "grades.良好", "应低于优秀"),
    "grade above the total": (_set(("grades",), {"优秀": 120, "良好": 80, "合格": 60}), "grades.优秀", "0 到总分 100"),
    "grade a bool": (_set(("grades",), {"优秀": 90, "良好": 80, "合格": True}), "grades.合格", "实为 True"),
    "unknown grade": (_set(("grades",), {"优秀": 90, "良好": 80, "合格": 60, "较好": 85}), "grades.较好", "无效"),
    "grades a list": (_set(("grades",), [90, 80, 60]), "grades", "grades 应为"),
    "bonus max_points a bool": (_set(("bonus",), [{"id": "commendation", "item": "表扬", "max_points": True}]),
                                "bonus.commendation", "加分项 commendation（表扬）：max_points 应为正数"),
    "veto without a name": (_set(("veto",), [{"id": "concealment", "rule": "veto_concealment"}]), "veto.concealment", "缺少名称"),
    "veto with an unknown rule": (_set(("veto",), [{"id": "x", "item": "某事", "rule": "veto_x"}]), "veto.x", "未知否决规则"),
    "duplicate id": (_set(("@systems", "id"), "org_agenda"), "items.org_agenda", "id 重复"),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGUES))
def test_catalogue_item_checks_name_the_item_in_one_message(case):
    """Each rule declares its parameters (names and types); params, category, max_points
    and the grade bounds are checked when the catalogue is loaded, with the item named."""
    from models.scoring import load_catalogue

    change, field, message = BAD_CATALOGUES[case]
    data = default_catalogue()
    change(data)
    with pytest.raises(DomainError) as info:
        load_catalogue(data=data)
    assert info.value.field == field, info.value.message
    assert message in info.value.message, info.value.message


def test_every_rule_declares_the_parameters_the_shipped_catalogue_gives():
    from models.scoring import RULES, load_catalogue

    cat = load_catalogue()
    for it in cat["items"]:
        if it["method"] == "auto":
            assert set(it["params"]) == set(RULES[it["rule"]].params), it["id"]


def test_start_with_a_mistyped_catalogue_is_refused_naming_the_item(org, clock, tmp_path, monkeypatch):
    """Formerly a bare KeyError('count') while scoring; now one DomainError, nothing written."""
    import yaml
    from support import refused

    from models import assessment as a

    data = default_catalogue()
    item(data, "org_agenda")["params"] = {"cnt": 2, "per_missing": 5}
    path = tmp_path / "criteria.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_CRITERIA", str(path))
    clock("2026-12-01T09:00:00+08:00")
    refused(act, a.start, a.StartAssessmentRequest, actor="system", year=2026, field="items.org_agenda.params.cnt",
            contains="考核项 org_agenda（网络安全纳入党委重要议事日程）：规则 meetings_at_least 没有参数 'cnt'")


def test_falsified_cannot_veto_when_the_catalogue_has_no_such_veto_item(org, clock, tmp_path, monkeypatch):
    """The 考核通知 lists the veto items; a unit cannot be vetoed for one it was not told of."""
    import yaml
    from support import refused

    from models import assessment as a

    data = default_catalogue()
    data["veto"] = [v for v in data["veto"] if v["rule"] != "veto_falsified"]
    path = tmp_path / "criteria.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_CRITERIA", str(path))
    clock("2026-12-01T09:00:00+08:00")
    act(a.start, a.StartAssessmentRequest, actor="system", year=2026, units=["SQ01"])
    refused(act, a.score, a.ScoreAssessmentRequest, actor=OFFICE, year=2026,
            table=[{"unit": "SQ01", "scores": FULL_MANUAL, "falsified": True}], field="table[0].falsified",
            contains="未设“考核材料弄虚作假”一票否决项")


def test_the_served_schedule_is_yearly_in_beijing_time(db):
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
    assert out["delivery"] == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0, "queued": 12}
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
    from models import rectification as r
    from models.case import Case
    from models import scoring

    script_the_year()
    at("2026-07-01T10:00:00+08:00")
    inc = act(i.report, i.ReportIncidentRequest, actor=OFFICE, unit="SQ07", category="ddos",
              level="relatively_major", title="门户网站遭攻击", description="网站中断 3 小时",
              discovered_at="2026-07-01T09:30:00+08:00").case.id
    spared = act(i.report, i.ReportIncidentRequest, actor=OFFICE, unit="SQ07", category="ddos",
                 level="relatively_major", title="门户网站再遭攻击", description="网站中断 2 小时",
                 discovered_at="2026-07-01T09:40:00+08:00").case.id
    t = datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc)

    def decision(forms: list[str]) -> dict:
        return {"decision": {"decided_at": "2026-10-01T10:00:00+08:00", "organisation_forms": [],
                             "persons": {"p-x": {"forms": forms}}}}

    with session() as s:
        s.add(Case(id="ACC-2026-0901", kind="accountability", state="decided", unit="JD01", proposed_from=inc,
                   data=decision(["通报"]), created_at=t, updated_at=t))
        # a decision that gave nobody a form held nobody accountable: no veto for `spared`
        s.add(Case(id="ACC-2026-0902", kind="accountability", state="closed", unit="JD01", proposed_from=spared,
                   data=decision([]), created_at=t, updated_at=t))
    at("2026-11-25T10:00:00+08:00")  # a low risk due in 2027: left out of 2026, counted in 2027
    low = act(r.notify, r.NotifyRiskRequest, actor=OFFICE, unit="SQ06", source="区网信办检查", risk_level="low",
              problem="日志留存不足", requirement="整改").case.id
    at("2026-12-01T09:00:00+08:00")
    cat = scoring.load_catalogue()
    units = [f"SQ{n:02d}" for n in range(1, 13)]

    def compute(year: int, which: list[str], now: str) -> dict:
        at(now)  # by default as of now
        with session() as s:
            return scoring.compute_auto(s, cat, year, which)

    few = compute(2026, units, "2026-12-01T09:00:00+08:00")
    single = compute(2026, ["SQ07"], "2026-12-01T09:00:00+08:00")
    few_2027 = compute(2027, units, "2027-01-10T09:00:00+08:00")
    monkeypatch.setattr(scoring, "UNIT_FILTER_MAX", 0)
    whole = compute(2026, units, "2026-12-01T09:00:00+08:00")
    whole_2027 = compute(2027, units, "2027-01-10T09:00:00+08:00")
    assert few == whole
    assert single["SQ07"] == whole["SQ07"]
    assert few_2027 == whole_2027
    assert whole_2027["SQ06"]["items"]["rectification_on_time"]["deductions"][0]["records"] == [low]
    assert whole["SQ06"]["items"]["rectification_on_time"]["deductions"] == []
    assert whole["SQ07"]["vetoes"] == [{"id": "major_incident_accountability", "item": "发生较大及以上网络安全事件并被问责",
                                        "records": [f"{inc}（问责 ACC-2026-0901）"]}]
    assert [v["id"] for v in whole["SQ08"]["vetoes"]] == ["concealment"]


def test_rectifications_count_as_they_stood_at_the_cutoff(org, clock):
    """按期整改: late = the rectify obligation missed (met late, marked by the sweep, or still
    open past its due time at the cutoff); one not yet due is left out of the rate entirely
    and counts in the year it falls due. The cutoff is never later than now."""
    from datetime import datetime

    from sqlmodel import select

    from models import rectification as r
    from models.case import Obligation
    from models.clock import TZ
    from models import scoring

    units: dict[str, str] = {}

    def notify(unit: str, level: str) -> str:
        case_id = act(r.notify, r.NotifyRiskRequest, actor=OFFICE, unit=unit, source="区网信办检查", risk_level=level,
                      problem="弱口令", requirement="整改").case.id
        units[case_id] = unit
        return case_id

    officers = {"SQ06": "p-deng-hao", "SQ08": "p-wei-shuai", "SQ09": "p-du-yuhang"}  # 网络安全负责人

    def fix(case_id: str) -> None:
        officer = officers[units[case_id]]
        act(r.acknowledge, r.AcknowledgeRiskRequest, actor=officer, case_id=case_id)
        act(r.submit, r.SubmitRectificationRequest, actor=officer, case_id=case_id, measures="已整改", evidence=["截图"])

    def done(case_id: str) -> None:
        fix(case_id)
        act(r.verify, r.VerifyRectificationRequest, actor=OFFICE, case_id=case_id, passed=True, opinion="通过")

    clock("2026-06-01T10:00:00+08:00")
    on_time, met_late, redone = notify("SQ06", "medium"), notify("SQ08", "medium"), notify("SQ09", "medium")
    clock("2026-06-05T10:00:00+08:00")
    done(on_time)
    clock("2026-06-29T10:00:00+08:00")
    done(met_late)  # closed, but after its due time
    fix(redone)
    clock("2026-11-02T10:00:00+08:00")
    open_overdue = notify("SQ06", "medium")  # due mid-November; no sweep has marked it missed
    clock("2026-11-25T10:00:00+08:00")
    not_due6, not_due7 = notify("SQ06", "low"), notify("SQ07", "low")  # due 2027-01-07
    due_dec = notify("SQ07", "medium")  # due 9 Dec 2026
    with session() as s:
        obs = {o.case_id: o for o in s.exec(select(Obligation).where(Obligation.kind == "rectify")).all()}
    assert obs[open_overdue].status == "open" and obs[met_late].status == "missed"
    assert obs[not_due7].due_at == datetime(2027, 1, 7, tzinfo=TZ) and obs[not_due7].calendar_unconfirmed
    assert obs[due_dec].due_at == datetime(2026, 12, 10, tzinfo=TZ)
    cat = scoring.load_catalogue()
    units = ["SQ06", "SQ07", "SQ08", "SQ09"]

    def auto(year: int, cutoff: datetime | None = None) -> dict:
        with session() as s:
            out = scoring.compute_auto(s, cat, year, units, cutoff=cutoff)
        return {u: (out[u]["items"]["rectification_overdue"], out[u]["items"]["rectification_on_time"]) for u in units}

    clock("2026-11-26T10:00:00+08:00")
    now = auto(2026)  # by default: as of now, never as of a year end still to come
    # SQ09's late rectification fails verification on 28 Dec; redone on time in January
    clock("2026-12-28T10:00:00+08:00")
    act(r.verify, r.VerifyRectificationRequest, actor=OFFICE, case_id=redone, passed=False, opinion="未整改到位")
    clock("2027-01-08T10:00:00+08:00")
    act(r.submit, r.SubmitRectificationRequest, actor="p-du-yuhang", case_id=redone, measures="已整改", evidence=["截图"])
    clock("2027-01-20T10:00:00+08:00")  # the cutoffs below are all earlier
    start = auto(2026, datetime(2026, 12, 1, 9, tzinfo=TZ))
    assert start == now
    # SQ06: one on time, one still open past due (late), one not yet due (left out): 1/2
    assert start["SQ06"][1] == {"points": 3, "max": 6, "deductions": [deduction(
        "整改按期销号率", "按期整改销号率 50%（1/2）；另有 1 项未到整改期限，不计入", -3, [open_overdue])]}
    assert start["SQ06"][0]["deductions"] == [deduction(
        "通报问题按期整改", "通报问题逾期整改 1 项（每项扣 1 分）", -1, [open_overdue])]
    # SQ07: its rectifications are not yet due: no deduction either way (formerly 0%, −6)
    assert start["SQ07"] == ({"points": 6, "max": 6, "deductions": []}, {"points": 6, "max": 6, "deductions": []})
    # SQ08: closed, but late
    assert start["SQ08"][1]["deductions"] == [deduction("整改按期销号率", "按期整改销号率 0%（0/1）", -6, [met_late])]
    # published in January: the 2026 cutoff is 31 Dec 24:00 — December's deadline counts, the low
    # risks due in 2027 still do not
    year_end = auto(2026, datetime(2027, 1, 20, 9, tzinfo=TZ))
    assert year_end["SQ07"] == (
        {"points": 5, "max": 6, "deductions": [deduction("通报问题按期整改", "通报问题逾期整改 1 项（每项扣 1 分）", -1, [due_dec])]},
        {"points": 0, "max": 6, "deductions": [deduction(
            "整改按期销号率", "按期整改销号率 0%（0/1）；另有 1 项未到整改期限，不计入", -6, [due_dec])]})
    assert year_end["SQ06"] == start["SQ06"] and year_end["SQ08"] == start["SQ08"]
    assert start["SQ09"][1]["deductions"] == year_end["SQ09"][1]["deductions"] == [deduction(
        "整改按期销号率", "按期整改销号率 0%（0/1）", -6, [redone])]
    # they count in 2027, the year they fall due: open past due on 15 Jan → late
    later = auto(2027, datetime(2027, 1, 15, 9, tzinfo=TZ))
    assert later["SQ07"][1]["deductions"] == [deduction("整改按期销号率", "按期整改销号率 0%（0/1）", -6, [not_due7])]
    assert later["SQ06"][1]["deductions"] == [deduction("整改按期销号率", "按期整改销号率 0%（0/1）", -6, [not_due6])]
    full = ({"points": 6, "max": 6, "deductions": []}, {"points": 6, "max": 6, "deductions": []})
    assert later["SQ08"] == full
    # SQ09 in 2027: only its redo, due in January and done on time, counts (its 2026 lateness did in 2026)
    assert later["SQ09"] == full


UNCONFIRMED = "自评时限所在年度的法定节假日安排尚未公布，上述时限暂按现行工作日计算，安排公布后如有调整，另行通知。"


def notices_of(case_id: str, kind: str) -> list:
    from sqlmodel import select

    from models.notice import Notice

    with session() as s:
        return list(s.exec(select(Notice).where(Notice.case_id == case_id, Notice.kind == kind)).all())


@pytest.mark.usefixtures("prefect_harness")
def test_a_self_assessment_due_in_an_unpublished_year_is_flagged_in_the_notice(org, clock):
    """Started 2026-12-20: 10 working days reach 2027, whose holidays are not published —
    the obligation is flagged and the 考核通知 says so (as the 整改通知 does)."""
    from support import run_flow

    from models.case_view import case_json, load_case
    from models.sweep import sweep

    clock("2026-12-20T10:00:00+08:00")
    out = run_flow("start-annual-assessment", actor="system", year=2026, units=["SQ01", "SQ02"])
    with session() as s:
        case = case_json(s, load_case(s, out["case_id"]))
    obs = [o for o in case["obligations"] if o["kind"] == "self_assessment"]
    assert [(o["due_at"], o["calendar_unconfirmed"]) for o in obs] == [("2027-01-02T00:00:00+08:00", True)] * 2
    [notice] = notices_of(out["case_id"], "assessment_notice")
    assert notice.context["calendar_unconfirmed"] is True
    for body in (notice.text, notice.html):
        assert "请于2027年1月1日（星期五）24时前完成自评" in body and UNCONFIRMED in body
        assert "00:00" not in body and "1月2日" not in body
    assert any("2027年1月1日（星期五）24时" in w and "节假日安排尚未公布" in w for w in out["warnings"])
    clock("2027-01-02T09:00:00+08:00")  # past due: the 自评 reminders say it too
    sweep()
    reminders = notices_of(out["case_id"], "report_reminder")
    assert reminders and all(n.context["calendar_unconfirmed"] and "节假日安排尚未公布" in n.text for n in reminders)


@pytest.mark.usefixtures("prefect_harness")
def test_non_finite_scores_are_refused_and_nothing_is_written(org, clock):
    """NaN and ±Infinity (which ``json.loads`` — so ``dutyflow run --params`` — lets through)
    are refused with the field named; NaN used to pass the range check and score 100."""
    import json

    from support import refused, run_flow

    from models import assessment as a

    clock("2026-12-01T09:00:00+08:00")
    act(a.start, a.StartAssessmentRequest, actor="system", year=2026, units=["SQ01", "SQ02"])
    clock("2026-12-05T10:00:00+08:00")
    for raw, field in (('{"systems": NaN}', "scores.systems"), ('{"plan": Infinity}', "scores.plan")):
        refused(run_flow, "submit-self-assessment", actor=OFFICE, year=2026, unit="SQ01", scores=json.loads(raw),
                field=field, contains="不是有效数字")
    for raw, field in (
            ('[{"unit": "SQ01", "scores": {"org_duties": 10, "systems": 14, "protection": NaN, "plan": 8}}]',
             "table[0].scores.protection"),
            ('[{"unit": "SQ02", "scores": {"org_duties": -Infinity, "systems": 14, "protection": 22, "plan": 8}}]',
             "table[0].scores.org_duties"),
            ('[{"unit": "SQ01", "scores": {"org_duties": 10, "systems": 14, "protection": 22, "plan": 8},'
             ' "bonus": {"commendation": Infinity}}]', "table[0].bonus.commendation")):
        refused(run_flow, "score-assessment", actor=OFFICE, year=2026, table=json.loads(raw), field=field,
                contains="不是有效数字")
    # with ordinary numbers the same requests go through
    run_flow("score-assessment", actor=OFFICE, year=2026, table=[{"unit": u, "scores": manual(40)} for u in ("SQ01", "SQ02")])
    out = run_flow("publish-assessment", actor=STREET, year=2026)
    with session() as s:
        finals = {r["unit"]: r["final"] for r in a.results(s, a.get_cycle(s, 2026))}
    assert out["state"] == "published" and finals == {"SQ01": 20 + 40, "SQ02": 20 + 40}


def test_self_assessment_lateness_sticks_and_publication_ends_what_is_left(org, clock):
    """A late self-assessment stays late when the unit submits again; publishing waives every
    self-assessment still outstanding (missed or not yet due, the latter warned of), so the
    sweep sends no more 催报 for a published cycle and the ledger no longer lists it."""
    from support import refused

    from sqlmodel import select

    from models.case import Obligation
    from models import assessment as a
    from tasks.ledger import ledger_rows
    from models.sweep import sweep

    at("2026-12-01T10:00:00+08:00")
    cycle = act(a.start, a.StartAssessmentRequest, actor="system", year=2026, units=["SQ01", "SQ02", "SQ03"]).case.id
    at("2026-12-16T10:00:00+08:00")  # self-assessment due 12/15 00:00: all three missed
    sweep()
    at("2026-12-17T10:00:00+08:00")
    act(a.self_assess, a.SelfAssessmentRequest, actor=OFFICE, year=2026, unit="SQ01", scores=manual(50))
    at("2026-12-18T10:00:00+08:00")
    act(a.self_assess, a.SelfAssessmentRequest, actor=OFFICE, year=2026, unit="SQ01", scores=manual(52))
    with session() as s:
        row = {r.unit: r for r in s.exec(select(a.AssessmentUnit).where(a.AssessmentUnit.cycle_id == cycle)).all()}["SQ01"]
        assert row.self_scores["late"] is True and row.self_scores["scores"] == manual(52)
    act(a.score, a.ScoreAssessmentRequest, actor=OFFICE, year=2026,
        table=[{"unit": u, "scores": manual(45)} for u in ("SQ01", "SQ02", "SQ03")])
    out = act(a.publish, a.PublishAssessmentRequest, actor=STREET, year=2026)
    assert out.case.state == "published" and not any("自评期限未到" in w for w in out.case.warnings)
    with session() as s:
        obs = {o.unit: (o.status, o.data.get("was")) for o in s.exec(
            select(Obligation).where(Obligation.case_id == cycle, Obligation.kind == "self_assessment")).all()}
        assert obs == {"SQ01": ("missed", None), "SQ02": ("waived", "missed"), "SQ03": ("waived", "missed")}
        assert [r for r in ledger_rows(s) if r["case_id"] == cycle] == []
    at("2026-12-30T10:00:00+08:00")
    assert sweep()["acted"] == 0
    refused(act, a.self_assess, a.SelfAssessmentRequest, actor=OFFICE, year=2026, unit="SQ02", scores=manual(50),
            contains="published")


def test_publishing_before_the_self_assessment_deadline_is_warned_of(org, clock):
    from sqlmodel import select

    from models.case import Obligation
    from models import assessment as a

    at("2026-12-01T10:00:00+08:00")
    cycle = act(a.start, a.StartAssessmentRequest, actor="system", year=2026, units=["SQ01", "SQ02"]).case.id
    act(a.self_assess, a.SelfAssessmentRequest, actor=OFFICE, year=2026, unit="SQ01", scores=manual(50))
    act(a.score, a.ScoreAssessmentRequest, actor=OFFICE, year=2026,
        table=[{"unit": u, "scores": manual(45)} for u in ("SQ01", "SQ02")])
    out = act(a.publish, a.PublishAssessmentRequest, actor=STREET, year=2026)
    assert "自评期限未到即通报考核结果：SQ02 未提交自评" in out.case.warnings
    with session() as s:
        obs = {o.unit: o.status for o in s.exec(
            select(Obligation).where(Obligation.case_id == cycle, Obligation.kind == "self_assessment")).all()}
    assert obs == {"SQ01": "met", "SQ02": "waived"}


def test_start_refuses_a_future_year_and_a_unit_named_twice(org, clock):
    from support import refused

    from models import assessment as a

    at("2026-12-01T10:00:00+08:00")
    refused(act, a.start, a.StartAssessmentRequest, actor="system", year=2027, field="year", contains="尚未开始")
    refused(act, a.start, a.StartAssessmentRequest, actor="system", year=2026, units=["SQ01", "SQ02", "SQ01"],
            field="units", contains="SQ01")
