"""到期巡检 — the deadline sweep (SPEC 3.5), scheduled every minute by ``dutyflow serve``."""

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field, field_validator

from flows.common import flow_run_id
from models import policy
from models.authority import check_actor
from models.clock import now, pinned_note
from models.db import session
from models.outbox import unconfirmed_count
from models.requests import Request
from tasks.ledger import ledger_rows, overdue_counts
from tasks.notify import deliver_due
from tasks.recovery import recover_interrupted_runs
from tasks.sweep import sweep


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


@task(name="act-on-due-obligations")
def act_on_due(batch_size: int) -> dict:
    """逐条处理到期义务：标记逾期，按阶梯催报/催办，每一步只做一次。"""
    return sweep(batch_size, flow_run_id())


@task(name="retry-notifications")
def retry_notifications() -> dict:
    """发送待发通知、重发到期的失败通知（退避）；每次巡检最多用 policy
    ``notifications.sweep_delivery_seconds`` 秒，未发完的下次巡检继续。"""
    return deliver_due(policy.get("notifications", "sweep_delivery_seconds", default=40))


def count_overdue() -> int:
    """How many obligations are overdue now (the 督办台账's total)."""
    with session() as s:
        return sum(overdue_counts(s).values())


@task(name="refresh-overdue-ledger")
def refresh_ledger() -> int:
    """刷新督办台账（表格）和汇总（Markdown）。"""
    limit = policy.get("sweep", "ledger_artifact_rows", default=1000)
    with session() as s:
        rows = ledger_rows(s, overdue=True, limit=limit)
        per_unit = overdue_counts(s)
    total = sum(per_unit.values())
    table = [
        {"单位": f"{r['unit']} {r['unit_name']}", "案件": r["case"], "义务": r["obligation"],
         "义务名称": r["obligation_label"], "时限": r["due_text"], "逾期": r["overdue_by"], "阶梯": r["step"],
         "督办环节": r["step_label"],
         "责任人": "、".join(p["name"] for p in r["responsible"]),
         "日历未确认": "是" if r["calendar_unconfirmed"] else ""}
        for r in rows
    ]
    shown = f"（表格显示时限最早的 {len(rows)} 项，全部见 dutyflow ledger --overdue）" if total > len(rows) else ""
    create_table_artifact(table, key="overdue-ledger", description=f"督办台账（逾期事项）{shown}{pinned_note()}")
    md = ["# 督办台账汇总", "", f"逾期事项 {total} 项{shown}。{pinned_note()}", "",
          "| 单位 | 义务 | 督办环节 | 数量 |", "|---|---|---|---|"]
    md += [f"| {u} | {ob} | {st} | {n} |" for (u, ob, st), n in sorted(per_unit.items())]
    unknown = unconfirmed_count()
    if unknown:  # the request left, no answer came: a person asks the recipient and settles it
        md += ["", f"另有结果不明的通知 {unknown} 条：不自动重发，请向收件人核实后用 "
                   "`dutyflow outbox settle` 处理（`dutyflow outbox` 列出）。"]
    create_markdown_artifact("\n".join(md), key="overdue-summary", description="督办台账汇总")
    return total


@task(name="recover-interrupted-runs")
def recover_runs() -> dict:
    """找出工作节点失联而中断的运行（超过时限没有心跳），标记为中断并重新调度其中的业务办理；
    同一运行再次执行时，已办理的不会重复办理（见 tasks/recovery.py）。"""
    return recover_interrupted_runs(flow_run_id())


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
