"""到期巡检 — the deadline sweep (SPEC 3.5), scheduled every minute by ``dutyflow serve``."""

from prefect import flow, get_run_logger
from pydantic import Field, field_validator

from models.authority import check_actor
from models.clock import now, pinned_note
from models.db import session
from models.requests import Request
from tasks.ledger import refresh_ledger
from tasks.notify import retry_notifications
from tasks.recovery import recover_runs
from tasks.sweep import act_on_due


class SweepRequest(Request):
    """到期巡检参数（一般无需填写）。"""

    actor: str = Field(default="system", title="操作人", description="定时巡检为 system；手动发起时可填写本人人员编号")
    batch_size: int = Field(default=200, ge=1, le=10000, title="每批处理条数")

    @field_validator("effective_at")
    @classmethod
    def _now_only(cls, value: str) -> str:
        if value:
            raise ValueError("巡检总按当前时间执行，不能补录（请留空）")
        return value


def check_sweep_actor(actor: str) -> None:
    """'system' (the schedule) or a person holding a post today (an operator's manual run)."""
    with session() as s:
        check_actor(s, actor, now(), system_ok=True)


@flow(name="sweep-deadlines")
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
