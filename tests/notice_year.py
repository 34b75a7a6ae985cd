"""A scripted year that issues every notice kind, as a 公文 clerk's review would read them.

Runs through the domain core and the deadline sweep (no Prefect), the clock pinned day by day:
a late-reported defacement (事件报告, 催报, 问责建议书, 问责决定, 申诉, 申诉处理决定), a
classified leak, rectifications that run the whole ladder (临期提醒, 催办, 约谈, 问责建议) or
get an extension or fail verification (期限调整通知), and the annual assessment (考核通知, 自评
催报, 考核结果通报). ``script()`` returns the case ids; ``all_notices()`` every stored notice.
"""
from __future__ import annotations

import os

OFFICE, STREET, DISCIPLINE = "p-sun-jianhua", "p-wang-zhiqiang", "p-wu-zhendong"
SQ01 = {"principal": "p-zhang-xiuying", "lead": "p-li-guodong", "officer": "p-wang-lei", "liaison": "p-liu-ting"}
SQ03 = {"principal": "p-zhu-hongwei", "lead": "p-hu-haiyan", "officer": "p-guo-tao"}


def at(when: str) -> None:
    os.environ["DUTYFLOW_NOW"] = when


def act(fn, model, **params):
    from models.requests import validate_request

    return fn(validate_request(model, params))


def sweep_at(when: str) -> None:
    from tasks.notify import deliver
    from models.sweep import sweep

    at(when)
    sweep()
    deliver()


def script() -> dict[str, str]:
    """Run the year; returns case ids by role in the script."""
    from models import accountability as a
    from models import assessment as s
    from models import incident as i
    from models import rectification as r

    ids: dict[str, str] = {}
    # ---- 事件: SQ01's portal defaced at 08:00, reported 10:30 (迟报) → c1 proposal
    at("2026-03-10T10:30:00+08:00")
    ids["incident"] = act(
        i.report, i.ReportIncidentRequest, actor=SQ01["officer"], unit="SQ01", category="defacement",
        level="relatively_major", title="社区门户网站首页被篡改", description="首页被植入违法有害信息，约2000人次浏览",
        discovered_at="2026-03-10T08:00:00+08:00", spread_views=2000, measures="已关闭网站并保存日志",
        involved_persons=[SQ01["liaison"]]).case.id
    sweep_at("2026-03-10T13:00:00+08:00")  # external report (4 h) missed → 催报
    act(i.update, i.UpdateIncidentRequest, actor=SQ01["officer"], case_id=ids["incident"],
        note="已向区网信办报告，网站恢复", external_reported_at="2026-03-10T12:40:00+08:00", resolved=True)
    at("2026-03-20T10:00:00+08:00")
    act(i.submit_summary, i.SubmitIncidentSummaryRequest, actor=SQ01["officer"], case_id=ids["incident"],
        cause="后台弱口令被利用", handling="关闭网站、清除篡改内容、修改口令", harm="有害信息浏览约2000人次",
        lessons="对联络员提出批评，全面排查弱口令")
    # ---- a classified leak (涉密) at SQ02
    at("2026-04-02T09:30:00+08:00")
    ids["classified"] = act(
        i.report, i.ReportIncidentRequest, actor="p-zhou-peng", unit="SQ02", category="secret_leak", level="general",
        title="涉密文件外发", description="一份涉密文件经互联网邮箱外发", discovered_at="2026-04-02T09:00:00+08:00",
        classified=True).case.id
    # ---- 问责: accept the c1 proposal, decide, appeal, decide the appeal
    [ids["proposal"]] = _proposals(ids["incident"])
    at("2026-04-07T10:00:00+08:00")
    act(a.open_case, a.OpenAccountabilityRequest, actor=OFFICE, case_id=ids["proposal"])
    at("2026-04-20T10:00:00+08:00")
    act(a.decide, a.RecordAccountabilityDecisionRequest, actor=STREET, case_id=ids["proposal"], decided_by="JD01",
        forms={SQ01["liaison"]: ["诫勉"], SQ01["principal"]: ["通报"]})
    at("2026-04-27T10:00:00+08:00")
    act(a.appeal, a.FileAppealRequest, actor=SQ01["principal"], case_id=ids["proposal"], person=SQ01["principal"],
        reason="事发时已按规定部署防护")
    sweep_at("2026-05-28T09:00:00+08:00")  # the appeal left undecided past its month → reminder
    act(a.decide_appeal, a.DecideAppealRequest, actor=STREET, case_id=ids["proposal"], person=SQ01["principal"],
        upheld=False, opinion="经复查，申诉人已部署基本防护，改为不予问责", forms=[])
    # ---- 整改: SQ03 runs the whole ladder
    at("2026-06-01T10:00:00+08:00")
    notify = dict(actor=OFFICE, source="X区网安〔2026〕3号通报", risk_level="medium", problem="社区门户网站后台存在弱口令",
                  problem_code="WEAK-PWD", requirement="修改口令并启用双因素认证")
    ids["ladder"] = act(r.notify, r.NotifyRiskRequest, unit="SQ03", **notify).case.id
    act(r.acknowledge, r.AcknowledgeRiskRequest, actor=SQ03["officer"], case_id=ids["ladder"])
    for day in ("2026-06-15T09:00:00+08:00", "2026-06-16T09:00:00+08:00", "2026-06-19T09:00:00+08:00",
                "2026-07-01T09:00:00+08:00"):  # 临期提醒, 催办, 约谈, 问责建议 (due 6/15 24时)
        sweep_at(day)
    # ---- 整改: SQ04 gets an extension, then fails verification once, then passes
    at("2026-07-06T10:00:00+08:00")
    ids["extended"] = act(r.notify, r.NotifyRiskRequest, unit="SQ04", **{**notify, "risk_level": "high"}).case.id
    act(r.acknowledge, r.AcknowledgeRiskRequest, actor="p-liang-chen", case_id=ids["extended"])
    act(r.request_extension, r.RequestExtensionRequest, actor="p-liang-chen", case_id=ids["extended"],
        reason="需采购双因素认证设备", new_due_at="2026-07-17T18:00:00+08:00")
    act(r.decide_extension, r.DecideExtensionRequest, actor=OFFICE, case_id=ids["extended"], approved=True,
        opinion="同意延期")
    at("2026-07-15T10:00:00+08:00")
    act(r.submit, r.SubmitRectificationRequest, actor="p-liang-chen", case_id=ids["extended"], measures="已修改口令",
        evidence=["截图1"])
    act(r.verify, r.VerifyRectificationRequest, actor=OFFICE, case_id=ids["extended"], passed=False,
        opinion="未启用双因素认证")
    at("2026-07-20T10:00:00+08:00")
    act(r.submit, r.SubmitRectificationRequest, actor="p-liang-chen", case_id=ids["extended"],
        measures="已启用双因素认证", evidence=["截图2"])
    sweep_at("2026-07-24T09:00:00+08:00")  # verification due 7/23 24时, not done → 督办提醒 to the verifiers
    # ---- 考核
    at("2026-12-01T09:00:00+08:00")
    act(s.start, s.StartAssessmentRequest, actor=OFFICE, year=2026, units=["SQ01", "SQ03", "SQ04"])
    for day in ("2026-12-15T09:00:00+08:00", "2026-12-16T09:00:00+08:00"):  # self-assessment due 12/15 24时
        sweep_at(day)
    manual = {"org_duties": 10, "systems": 14, "protection": 20, "plan": 8}
    act(s.score, s.ScoreAssessmentRequest, actor=OFFICE, year=2026,
        table=[{"unit": u, "scores": manual} for u in ("SQ01", "SQ03", "SQ04")])
    at("2026-12-20T10:00:00+08:00")
    act(s.publish, s.PublishAssessmentRequest, actor=OFFICE, year=2026)
    return ids


def _proposals(source: str) -> list[str]:
    from sqlmodel import select

    from models.case import Case
    from models.db import session

    with session() as s:
        return [c.id for c in s.exec(select(Case).where(Case.proposed_from == source)).all()]


def all_notices() -> list:
    """Every stored notice, oldest first (detached rows)."""
    from sqlmodel import select

    from models.db import session
    from models.notice import Notice

    with session() as s:
        rows = s.exec(select(Notice).order_by(Notice.issued_at, Notice.id)).all()
        for n in rows:
            s.expunge(n)
        return rows
