"""限期整改 — rectification of notified risks (SPEC 3.2).

The rules, deadlines and the escalation ladder live in models/rectification.py.
"""
from prefect import flow

from flows.common import run_action
from models import rectification as core
from models.rectification import (
    AcknowledgeRiskRequest,
    DecideExtensionRequest,
    NotifyRiskRequest,
    RequestExtensionRequest,
    SubmitRectificationRequest,
    VerifyRectificationRequest,
)


@flow(name=NotifyRiskRequest.FLOW, validate_parameters=True)
def notify_risk(request: NotifyRiskRequest) -> dict:
    """下发整改通知：生成带发文字号的《整改通知》，开启签收（1个工作日）和整改（高/中/低 3/10/30 个工作日）时限；
    逾期按阶梯临期提醒、催办、约谈直至提出问责建议。同一单位 12 个月内同一问题再次出现将标注“重复发生”。"""
    return run_action(core.notify, request, "整改通知")


@flow(name=AcknowledgeRiskRequest.FLOW, validate_parameters=True)
def acknowledge_risk(request: AcknowledgeRiskRequest) -> dict:
    """签收整改通知。"""
    return run_action(core.acknowledge, request, "签收整改通知")


@flow(name=SubmitRectificationRequest.FLOW, validate_parameters=True)
def submit_rectification(request: SubmitRectificationRequest) -> dict:
    """报送整改报告（整改措施和佐证材料），开启下发单位 3 个工作日的复核验收时限；待审批的延期申请随之失效。"""
    return run_action(core.submit, request, "整改报告")


@flow(name=VerifyRectificationRequest.FLOW, validate_parameters=True)
def verify_rectification(request: VerifyRectificationRequest) -> dict:
    """复核验收（下发单位或网信办人员办理，责任单位不能自行验收）：通过则销号；不通过则退回重新整改，重新计算整改期限。"""
    return run_action(core.verify, request, "复核验收")


@flow(name=RequestExtensionRequest.FLOW, validate_parameters=True)
def request_extension(request: RequestExtensionRequest) -> dict:
    """延期申请：说明理由和申请的新期限，由下发单位审批。"""
    return run_action(core.request_extension, request, "延期申请")


@flow(name=DecideExtensionRequest.FLOW, validate_parameters=True)
def decide_extension(request: DecideExtensionRequest) -> dict:
    """审批延期申请（下发单位或网信办人员办理）：批准则整改期限顺延、督办阶梯重新开始；不批准则原期限不变。"""
    return run_action(core.decide_extension, request, "延期审批")
