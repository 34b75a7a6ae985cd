"""年度检查考核 — the annual assessment (SPEC 3.4).

Scoring rules: models/scoring.py and deployments/criteria.yaml; the cycle: models/assessment.py.
"""
from prefect import flow, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.common import refused, run_action
from models import assessment as core
from models.assessment import (
    PublishAssessmentRequest,
    RecordActivityRequest,
    ScoreAssessmentRequest,
    SelfAssessmentRequest,
    StartAssessmentRequest,
)
from models.db import home, session
from tasks.export import write_exports


@flow(name="record-activity", validate_parameters=True)
def record_activity(request: RecordActivityRequest) -> dict:
    """登记全年工作记录（专题会议、培训、应急演练、宣传），年度考核据此自动计分。"""
    return run_action(core.record_activity, request, "工作记录")


@flow(name="start-annual-assessment", validate_parameters=True)
def start_annual_assessment(request: StartAssessmentRequest = StartAssessmentRequest()) -> dict:
    """启动年度检查考核（每年 12 月 1 日自动运行）：按全年记录为每个社区自动计分（批量计算），
    下发《考核通知》，开启 10 个工作日的自评时限；同一年度只启动一次。"""
    return _with_progress(core.start, request, "启动年度考核", "年度考核自动计分进度")


def _with_progress(action, request, headline: str, description: str) -> dict:
    """Run a core action that reports its scoring progress into a progress artifact."""
    progress = create_progress_artifact(0.0, description=description)

    def report(pct: float) -> None:
        update_progress_artifact(progress, pct)

    def act(req, run_id):
        return action(req, run_id, progress=report)

    out = run_action(act, request, headline)
    if refused(out):
        return out
    update_progress_artifact(progress, 100.0)
    return out


@flow(name="submit-self-assessment", validate_parameters=True)
def submit_self_assessment(request: SelfAssessmentRequest) -> dict:
    """提交年度考核自评（人工评分项逐项自评打分并说明）。"""
    return run_action(core.self_assess, request, "考核自评")


@flow(name="score-assessment", validate_parameters=True)
def score_assessment(request: ScoreAssessmentRequest) -> dict:
    """考核组评分：逐个单位（单位 + 得分）或批量（评分表）录入人工评分项得分、加分和一票否决情况；重新评分覆盖该单位原评分。"""
    return run_action(core.score, request, "考核评分")


@task(name="publish-results")
def publish_results(year: int) -> dict:
    """结果表（artifact assessment-<year>）、扣分说明和导出文件（CSV、XLSX）。"""
    with session() as s:
        case = core.get_cycle(s, year)
        rows = core.results(s, case)  # with the secretaries stored at publication
    ordered = sorted(rows, key=lambda r: (r["rank"], r["unit"]))
    create_table_artifact(
        [{"名次": r["rank"], "单位": r["unit_name"], "社区书记": r["secretary"], "总分": r["final"], "等次": r["grade"],
          "自动计分": r["auto"], "人工评分": r["manual"], "加分": r["bonus"], "一票否决": "是" if r["veto"] else "",
          "自评": r["self_assessment"]} for r in ordered],
        key=f"assessment-{year}", description=f"{year}年度网络安全工作责任制检查考核结果")
    cutoff = core.cutoff_text(year, case.data["auto_cutoff"])
    md = [f"# {year}年度考核扣分说明", "",
          f"系统自动计分依据截至{cutoff}的全年工作记录（考核启动时按截至"
          f"{core.cutoff_text(year, case.data.get('auto_cutoff_at_start') or case.data['auto_cutoff'])}的记录计算，"
          "通报时重新计算；自评分和人工评分不变）。", ""]
    for r in ordered:
        md.append(f"## {r['rank']}. {r['unit_name']}（{r['final']:g} 分，{r['grade']}）")
        md += [f"- {line}" for line in r["deduction_lines"]] or ["- 无扣分"]
        md += [f"- 一票否决：{v['item']}（{', '.join(v['records'])}）" for v in r["vetoes"]]
        md += [f"- 自动计分变动：{line}" for line in r["auto_changes"]]
        md.append("")
    create_markdown_artifact("\n".join(md), key=f"assessment-{year}-deductions", description="每个单位的扣分及依据")
    csv_path, xlsx_path = write_exports(rows, home() / "exports", year)
    return {"csv": str(csv_path), "xlsx": str(xlsx_path), "units": len(rows)}


@flow(name="publish-assessment", validate_parameters=True)
def publish_assessment(request: PublishAssessmentRequest) -> dict:
    """通报考核结果：按截至 12 月 31 日 24 时（或通报时，以较早者为准）的全年记录重新自动计分，
    总分 = 自动计分 + 人工评分 + 加分，一票否决为不合格；排名（并列同名次）；自动计分较启动时有变动的逐项说明；
    生成《考核结果通报》并通知各社区主要负责人；导出供社区书记年底考核使用的 CSV 和 XLSX；尚未提交的自评随之终止。"""
    out = _with_progress(core.publish, request, "考核结果通报", "年度考核通报：重新自动计分进度")
    if refused(out):
        return out
    out["export"] = publish_results(request.year)
    return out
