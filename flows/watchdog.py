"""到期巡检 — the deadline sweep (SPEC 3.5), scheduled every minute by ``dutyflow serve``."""

from prefect import flow, get_run_logger

from models.authority import check_actor
from models.clock import now, pinned_note
from models.db import session
from models.sweep import SweepRequest
from tasks.ledger import refresh_ledger
from tasks.notify import retry_notifications
from tasks.recovery import recover_runs
from tasks.sweep import act_on_due


def check_sweep_actor(actor: str) -> None:
    """'system' (the schedule) or a person holding a post today (an operator's manual run)."""
    with session() as s:
        check_actor(s, actor, now(), system_ok=True)


@flow(name=SweepRequest.FLOW)
def sweep_deadlines(request: SweepRequest = SweepRequest()) -> dict:
    """到期巡检（每分钟）：找出到期的义务，标记逾期并按阶梯督办（每步只做一次，停机后自动补做），
    重发失败的通知，刷新督办台账，重新调度因工作节点失联而中断的业务办理。"""
    log = get_run_logger()
    check_sweep_actor(request.actor)
    if request.actor != "system":
        log.info("手动巡检，发起人 %s", request.actor)
    result = act_on_due(request.batch_size)
    result["delivery"] = retry_notifications()
    result["overdue"] = refresh_ledger()
    result["runs"] = recover_runs()
    log.info("%s巡检完成：%s", pinned_note(), result)
    return result
