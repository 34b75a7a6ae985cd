"""年度检查考核 — the annual assessment (SPEC 3.4).

Scoring rules: models/scoring.py and deployments/criteria.yaml; the cycle: models/assessment.py.
"""
from prefect import flow
from prefect.artifacts import (
    create_progress_artifact,
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
from tasks.export import publish_results


@flow(name=RecordActivityRequest.FLOW, validate_parameters=True)
def record_activity(request: RecordActivityRequest) -> dict:
    """登记全年工作记录（专题会议、培训、应急演练、宣传），年度考核据此自动计分。"""
    return run_action(core.record_activity, request, "工作记录")


@flow(name=StartAssessmentRequest.FLOW, validate_parameters=True)
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


@flow(name=SelfAssessmentRequest.FLOW, validate_parameters=True)
def submit_self_assessment(request: SelfAssessmentRequest) -> dict:
    """提交年度考核自评（人工评分项逐项自评打分并说明）。"""
    return run_action(core.self_assess, request, "考核自评")


@flow(name=ScoreAssessmentRequest.FLOW, validate_parameters=True)
def score_assessment(request: ScoreAssessmentRequest) -> dict:
    """考核组评分：逐个单位（单位 + 得分）或批量（评分表）录入人工评分项得分、加分和一票否决情况；重新评分覆盖该单位原评分。"""
    return run_action(core.score, request, "考核评分")


@flow(name=PublishAssessmentRequest.FLOW, validate_parameters=True)
def publish_assessment(request: PublishAssessmentRequest) -> dict:
    """通报考核结果：按截至 12 月 31 日 24 时（或通报时，以较早者为准）的全年记录重新自动计分，
    总分 = 自动计分 + 人工评分 + 加分，一票否决为不合格；排名（并列同名次）；自动计分较启动时有变动的逐项说明；
    生成《考核结果通报》并通知各社区主要负责人；导出供社区书记年底考核使用的 CSV 和 XLSX；尚未提交的自评随之终止。"""
    out = _with_progress(core.publish, request, "考核结果通报", "年度考核通报：重新自动计分进度")
    if refused(out):
        return out
    out["export"] = publish_results(request.year)
    return out
