"""逐级倒查问责 — accountability (SPEC 3.3).

The circumstances, the chain (models/tracing.py) and the rules live in models/accountability.py.
"""
from prefect import flow

from flows.common import run_action
from models import accountability as core
from models.accountability import (
    DecideAppealRequest,
    DismissAccountabilityRequest,
    FileAppealRequest,
    OpenAccountabilityRequest,
    RecordAccountabilityDecisionRequest,
)


@flow(name=OpenAccountabilityRequest.FLOW, validate_parameters=True)
def open_accountability(request: OpenAccountabilityRequest) -> dict:
    """立案调查：采纳问责建议或人工立案（情形 5、6），按事实发生之日的岗位逐级倒查（当事人 → 网络安全负责人 →
    直接责任人 → 第一责任人，协调监管不力的追加监管部门负责人），区分集体责任和个人责任，给出建议的问责方式。"""
    return run_action(core.open_case, request, "立案调查（逐级倒查）")


@flow(name=DismissAccountabilityRequest.FLOW, validate_parameters=True)
def dismiss_accountability(request: DismissAccountabilityRequest) -> dict:
    """对问责建议作出不予问责的决定（须说明理由）。"""
    return run_action(core.dismiss, request, "不予问责")


@flow(name=RecordAccountabilityDecisionRequest.FLOW, validate_parameters=True)
def record_accountability_decision(request: RecordAccountabilityDecisionRequest) -> dict:
    """记录有管理权限的党组织作出的问责决定，生成《问责决定》送达每位被问责人员；每人 1 个月申诉期，申诉期间不停止执行。"""
    return run_action(core.decide, request, "问责决定")


@flow(name=FileAppealRequest.FLOW, validate_parameters=True)
def file_appeal(request: FileAppealRequest) -> dict:
    """被问责人员或被问责党组织（申诉人填写单位代码）在 1 个月申诉期内提出申诉（超期不予受理）；申诉期间原决定继续执行。"""
    return run_action(core.appeal, request, "申诉")


@flow(name=DecideAppealRequest.FLOW, validate_parameters=True)
def decide_appeal(request: DecideAppealRequest) -> dict:
    """作出申诉处理决定（维持、变更或撤销原问责方式），生成《申诉处理决定》告知申诉人；没有其他待处理的申诉即办结，其他被问责人员在各自申诉期内仍可申诉。"""
    return run_action(core.decide_appeal, request, "申诉处理决定")
