"""事件报告和及时处置 — incident reporting and prompt handling (SPEC 3.1).

The rules live in models/incident.py; each flow here is one operator action.
"""

from prefect import flow

from flows.common import run_action
from models import incident
from models.incident import ReportIncidentRequest, SubmitIncidentSummaryRequest, UpdateIncidentRequest


@flow(name=ReportIncidentRequest.FLOW, log_prints=False, validate_parameters=True)
def report_incident(request: ReportIncidentRequest) -> dict:
    """报告网络安全事件：判定内部报告是否及时，开启对外报告（较大及以上，1/2/4 小时）和处置时限，
    按影响数据提示建议级别，生成《事件报告》并通知本单位三类责任人和街道网信办。"""
    return run_action(incident.report, request, "事件报告")


@flow(name=UpdateIncidentRequest.FLOW, validate_parameters=True)
def update_incident(request: UpdateIncidentRequest) -> dict:
    """续报：记录事件进展；填写对外报告时间即完成对外报告；处置完毕后开启 30 日内报送总结报告的时限；办结后仍可补充报告（补录对外报告时间、经查瞒报等）。"""
    return run_action(incident.update, request, "事件续报")


@flow(name=SubmitIncidentSummaryRequest.FLOW, validate_parameters=True)
def submit_incident_summary(request: SubmitIncidentSummaryRequest) -> dict:
    """报送事件处置总结报告（原因、处置、危害、责任追究、整改和教训），事件办结。"""
    return run_action(incident.submit_summary, request, "事件处置总结报告")
